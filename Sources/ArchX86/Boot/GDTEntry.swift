/// One 8-byte segment descriptor of a global descriptor table (Intel SDM vol. 3, 3.4.5).
///
/// `flags` uses the compact notation of Linux's `GDT_ENTRY` and Firecracker: the access byte
/// (P, DPL, S, type) in bits 7–0 and the G, D/B, L, AVL nibble in bits 15–12, so `0xA09B` is a
/// present, ring-0, execute/read, accessed 64-bit code segment with 4 KiB granularity.
public struct GDTEntry: Equatable, Sendable {
    public var flags: UInt16
    public var base: UInt32
    /// 20-bit segment limit, in bytes or (with granularity) 4 KiB units.
    public var limit: UInt32

    public init(flags: UInt16, base: UInt32, limit: UInt32) {
        self.flags = flags & 0xF0FF
        self.base = base
        self.limit = limit & 0xF_FFFF
    }

    /// Decodes a descriptor.
    public init(encoded value: UInt64) {
        let access = UInt16(truncatingIfNeeded: value >> 40) & 0xFF
        let nibble = UInt16(truncatingIfNeeded: value >> 52) & 0xF
        let base = UInt32(truncatingIfNeeded: (value >> 16) & 0xFF_FFFF) | UInt32(truncatingIfNeeded: (value >> 56) & 0xFF) << 24
        let limit = UInt32(truncatingIfNeeded: value & 0xFFFF) | UInt32(truncatingIfNeeded: (value >> 48) & 0xF) << 16
        self.init(flags: access | nibble << 12, base: base, limit: limit)
    }

    /// The descriptor as stored in the GDT.
    public var encoded: UInt64 {
        let base = UInt64(base)
        let limit = UInt64(limit)
        let flags = UInt64(flags)
        return (limit & 0xFFFF)
            | (base & 0xFF_FFFF) << 16
            | (flags & 0xFF) << 40
            | (limit >> 16 & 0xF) << 48
            | (flags >> 12 & 0xF) << 52
            | (base >> 24 & 0xFF) << 56
    }

    // Decoded fields.
    /// Segment type (bits 3–0 of the access byte).
    public var type: UInt8 { UInt8(flags & 0xF) }
    /// S: code or data segment (rather than a system segment such as a TSS).
    public var isCodeOrData: Bool { flags & 0x10 != 0 }
    public var privilegeLevel: UInt8 { UInt8(flags >> 5 & 0x3) }
    public var present: Bool { flags & 0x80 != 0 }
    public var available: Bool { flags & 0x1000 != 0 }
    /// L: 64-bit code segment.
    public var longMode: Bool { flags & 0x2000 != 0 }
    /// D/B: 32-bit default operand size.
    public var defaultOperationSize32: Bool { flags & 0x4000 != 0 }
    /// G: limit counts 4 KiB units.
    public var granularity4K: Bool { flags & 0x8000 != 0 }
    /// The limit in bytes (last valid offset).
    public var limitInBytes: UInt32 { granularity4K ? (limit << 12) | 0xFFF : limit }

    /// The segment register contents (`struct kvm_segment`) for this descriptor loaded with `selector`.
    public func segment(selector: UInt16) -> SegmentState {
        SegmentState(
            base: UInt64(base), limit: limitInBytes, selector: selector, type: type, present: present, dpl: privilegeLevel,
            db: defaultOperationSize32, s: isCodeOrData, l: longMode, g: granularity4K, avl: available, unusable: !present)
    }

    public static let null = GDTEntry(flags: 0, base: 0, limit: 0)
    /// 64-bit code: present, ring 0, execute/read, L, 4 KiB granularity.
    public static let code64 = GDTEntry(flags: 0xA09B, base: 0, limit: 0xF_FFFF)
    /// Flat 32-bit code: present, ring 0, execute/read, D, 4 KiB granularity.
    public static let code32 = GDTEntry(flags: 0xC09B, base: 0, limit: 0xF_FFFF)
    /// Flat data: present, ring 0, read/write, B, 4 KiB granularity.
    public static let data = GDTEntry(flags: 0xC093, base: 0, limit: 0xF_FFFF)
    /// Busy TSS for the 64-bit boot GDT (never used for task switching).
    public static let tss64 = GDTEntry(flags: 0x808B, base: 0, limit: 0xF_FFFF)
    /// Busy 32-bit TSS of 104 bytes for the 32-bit (PVH) boot GDT.
    public static let tss32 = GDTEntry(flags: 0x008B, base: 0, limit: 0x67)
}

/// A segment register as KVM's `struct kvm_segment` holds it (selector plus hidden part).
public struct SegmentState: Equatable, Sendable {
    public var base: UInt64
    /// Limit in bytes.
    public var limit: UInt32
    public var selector: UInt16
    public var type: UInt8
    public var present: Bool
    public var dpl: UInt8
    public var db: Bool
    public var s: Bool
    public var l: Bool
    public var g: Bool
    public var avl: Bool
    public var unusable: Bool

    public init(
        base: UInt64, limit: UInt32, selector: UInt16, type: UInt8, present: Bool, dpl: UInt8, db: Bool, s: Bool, l: Bool, g: Bool,
        avl: Bool, unusable: Bool
    ) {
        self.base = base
        self.limit = limit
        self.selector = selector
        self.type = type
        self.present = present
        self.dpl = dpl
        self.db = db
        self.s = s
        self.l = l
        self.g = g
        self.avl = avl
        self.unusable = unusable
    }
}

/// The four-entry GDT (null, code, data, TSS) Skiff loads at `Layout.gdtAddress`, and the
/// one-entry IDT at `Layout.idtAddress`.
public enum BootGDT {
    /// The CPU mode the kernel entry expects.
    public enum Mode: Sendable {
        /// 64-bit Linux boot protocol entry: long mode, paging on.
        case longMode
        /// PVH / 32-bit entry: flat protected mode, paging off.
        case protectedMode32
    }

    public static let codeSelector: UInt16 = 0x08
    public static let dataSelector: UInt16 = 0x10
    public static let tssSelector: UInt16 = 0x18
    /// GDTR limit: four 8-byte entries.
    public static let limit: UInt16 = 4 * 8 - 1
    /// IDTR limit: one 8-byte (zero) entry.
    public static let idtLimit: UInt16 = 7

    /// The entries: null, code, data, TSS.
    public static func entries(_ mode: Mode) -> [GDTEntry] {
        switch mode {
        case .longMode: return [.null, .code64, .data, .tss64]
        case .protectedMode32: return [.null, .code32, .data, .tss32]
        }
    }

    /// The GDT bytes to write at `Layout.gdtAddress`.
    public static func bytes(_ mode: Mode) -> [UInt8] {
        var bytes: [UInt8] = []
        for entry in entries(mode) { bytes.appendLittleEndian(entry.encoded) }
        return bytes
    }

    /// The IDT bytes to write at `Layout.idtAddress`.
    public static let idtBytes = [UInt8](repeating: 0, count: 8)

    /// Segment register contents for CS, DS/ES/FS/GS/SS, and TR.
    public static func segments(_ mode: Mode) -> (code: SegmentState, data: SegmentState, tss: SegmentState) {
        let table = entries(mode)
        return (table[1].segment(selector: codeSelector), table[2].segment(selector: dataSelector), table[3].segment(selector: tssSelector))
    }
}
