/// The six data and code segment registers.
public enum SegmentName: Int, Sendable, CaseIterable, CustomStringConvertible {
    // Encoding order of the sreg field (ES=0, CS=1, SS=2, DS=3, FS=4, GS=5).
    case es = 0, cs, ss, ds, fs, gs

    public var description: String {
        switch self {
        case .es: return "es"
        case .cs: return "cs"
        case .ss: return "ss"
        case .ds: return "ds"
        case .fs: return "fs"
        case .gs: return "gs"
        }
    }
}

/// A segment register with its hidden (cached descriptor) part, field for field like KVM's `kvm_segment`.
///
/// `limit` is the byte-granular limit as KVM reports it (granularity already applied).
public struct SegmentRegister: Sendable, Equatable {
    public var selector: UInt16
    /// Linear base address.
    public var base: UInt64
    /// Byte-granular limit.
    public var limit: UInt32
    /// The 4-bit descriptor type (for code/data: bit 3 code, bit 2 conforming/expand-down, bit 1 readable/writable, bit 0 accessed).
    public var type: UInt8
    /// P: the segment is present.
    public var present: Bool
    /// Descriptor privilege level (0–3).
    public var dpl: UInt8
    /// D/B: default operand size (CS) or stack size (SS) 32-bit; upper bound of expand-down segments.
    public var defaultBig: Bool
    /// S: code or data segment (as opposed to a system segment).
    public var codeOrData: Bool
    /// L: 64-bit code segment.
    public var long: Bool
    /// G: limit granularity 4 KiB (informational; `limit` is already in bytes).
    public var granularity: Bool
    /// AVL.
    public var available: Bool
    /// The register holds a null selector or is otherwise unusable (VMX "unusable" bit).
    public var unusable: Bool

    /// A segment register; defaults describe a present 64 KiB read/write data segment at 0.
    public init(selector: UInt16 = 0, base: UInt64 = 0, limit: UInt32 = 0xFFFF, type: UInt8 = 3, present: Bool = true, dpl: UInt8 = 0,
                defaultBig: Bool = false, codeOrData: Bool = true, long: Bool = false, granularity: Bool = false,
                available: Bool = false, unusable: Bool = false) {
        self.selector = selector
        self.base = base
        self.limit = limit
        self.type = type & 0xF
        self.present = present
        self.dpl = dpl & 3
        self.defaultBig = defaultBig
        self.codeOrData = codeOrData
        self.long = long
        self.granularity = granularity
        self.available = available
        self.unusable = unusable
    }

    /// Whether the descriptor is a code segment.
    public var isCode: Bool { type & 0x8 != 0 }
    /// For data segments: writable. For code segments: readable.
    var readableOrWritable: Bool { type & 0x2 != 0 }
    /// For data segments: expand-down.
    var expandDown: Bool { !isCode && type & 0x4 != 0 }

    /// A flat 4 GiB read/write data segment (base 0, 32-bit).
    public static func flatData(selector: UInt16 = 0x18, dpl: UInt8 = 0) -> SegmentRegister {
        SegmentRegister(selector: selector, base: 0, limit: 0xFFFF_FFFF, type: 3, dpl: dpl, defaultBig: true, granularity: true)
    }

    /// A flat 64-bit code segment.
    public static func code64(selector: UInt16 = 0x10, dpl: UInt8 = 0) -> SegmentRegister {
        SegmentRegister(selector: selector, base: 0, limit: 0xFFFF_FFFF, type: 0xB, dpl: dpl, long: true, granularity: true)
    }

    /// A flat 32-bit code segment.
    public static func code32(selector: UInt16 = 0x08, dpl: UInt8 = 0) -> SegmentRegister {
        SegmentRegister(selector: selector, base: 0, limit: 0xFFFF_FFFF, type: 0xB, dpl: dpl, defaultBig: true, granularity: true)
    }

    /// A real-mode segment: base = selector × 16, 64 KiB limit.
    public static func realMode(selector: UInt16, code: Bool = false) -> SegmentRegister {
        SegmentRegister(selector: selector, base: UInt64(selector) << 4, limit: 0xFFFF, type: code ? 0xB : 3)
    }
}
