/// A PCI function's 256-byte type-0 configuration space with per-byte write masks.
///
/// The guest may read and write any offset and size; bytes outside the space read as zero
/// and read-only bits keep their value. BAR registers implement size probing (write all
/// ones, read back the size mask) and report address changes to the owner.
public struct PCIConfiguration: Sendable {
    public static let size = 256
    // Standard header offsets.
    public static let vendorID = 0x00
    public static let deviceID = 0x02
    public static let command = 0x04
    public static let status = 0x06
    public static let revisionID = 0x08
    public static let classCode = 0x09
    public static let headerType = 0x0e
    public static let bar0 = 0x10
    public static let subsystemVendorID = 0x2c
    public static let subsystemID = 0x2e
    public static let capabilitiesPointer = 0x34
    public static let interruptLine = 0x3c
    public static let interruptPin = 0x3d

    /// Command register bits.
    public static let commandIOSpace: UInt16 = 1 << 0
    public static let commandMemorySpace: UInt16 = 1 << 1
    public static let commandBusMaster: UInt16 = 1 << 2
    public static let commandInterruptDisable: UInt16 = 1 << 10
    /// Status register: a capabilities list is present.
    public static let statusCapabilities: UInt16 = 1 << 4

    /// A base address register.
    public struct BAR: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            case memory32
            case memory64(prefetchable: Bool)
            case io
        }
        public let index: Int
        public let size: UInt64
        public let kind: Kind
        public var address: UInt64

        /// The low type bits of the register.
        var typeBits: UInt64 { kind.typeBits }
    }

    // bytes, writable and bars are internal rather than private for PCIConfiguration+Persist.swift.
    var bytes = [UInt8](repeating: 0, count: size)
    private(set) var writable = [UInt8](repeating: 0, count: size)
    /// Registered BARs.
    public internal(set) var bars: [BAR] = []
    private var lastCapability = 0
    private var nextCapabilityOffset = 0x40

    /// A header for a function with these identifiers.
    public init(vendor: UInt16, device: UInt16, classCode: UInt32, revision: UInt8 = 0, subsystemVendor: UInt16 = 0,
                subsystem: UInt16 = 0, interruptPin: UInt8 = 0) {
        set16(Self.vendorID, vendor)
        set16(Self.deviceID, device)
        bytes[Self.revisionID] = revision
        bytes[Self.classCode] = UInt8(truncatingIfNeeded: classCode)
        bytes[Self.classCode + 1] = UInt8(truncatingIfNeeded: classCode >> 8)
        bytes[Self.classCode + 2] = UInt8(truncatingIfNeeded: classCode >> 16)
        set16(Self.subsystemVendorID, subsystemVendor)
        set16(Self.subsystemID, subsystem)
        bytes[Self.interruptPin] = interruptPin
        // Command: I/O, memory, bus master and interrupt disable are the guest's to set.
        let commandMask = Self.commandIOSpace | Self.commandMemorySpace | Self.commandBusMaster | Self.commandInterruptDisable
        writable[Self.command] = UInt8(truncatingIfNeeded: commandMask)
        writable[Self.command + 1] = UInt8(truncatingIfNeeded: commandMask >> 8)
        writable[Self.interruptLine] = 0xff
    }

    // MARK: Raw access

    /// Reads `size` (1, 2 or 4) bytes at `offset`; out-of-range bytes read as zero.
    public func read(offset: Int, size: Int) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<min(size, 4) where offset + i >= 0 && offset + i < Self.size {
            v |= UInt32(bytes[offset + i]) << (8 * i)
        }
        return v
    }

    /// Writes `size` bytes honouring the masks; returns the BAR indices whose address changed.
    @discardableResult
    public mutating func write(offset: Int, size: Int, value: UInt32) -> [Int] {
        guard offset >= 0, size > 0, size <= 4, offset < Self.size else { return [] }
        if offset >= Self.bar0, offset < Self.bar0 + 24 {
            return writeBAR(offset: offset, size: size, value: value)
        }
        for i in 0..<size where offset + i < Self.size {
            let o = offset + i
            let b = UInt8(truncatingIfNeeded: value >> (8 * i))
            bytes[o] = (bytes[o] & ~writable[o]) | (b & writable[o])
        }
        return []
    }

    public func get16(_ offset: Int) -> UInt16 { UInt16(truncatingIfNeeded: read(offset: offset, size: 2)) }
    public func get32(_ offset: Int) -> UInt32 { read(offset: offset, size: 4) }

    /// Sets bytes without masks (device-side initialisation).
    public mutating func set16(_ offset: Int, _ v: UInt16) {
        bytes[offset] = UInt8(truncatingIfNeeded: v)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: v >> 8)
    }

    public mutating func set32(_ offset: Int, _ v: UInt32) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
    }

    public mutating func setBytes(_ offset: Int, _ values: [UInt8], writableMask: UInt8 = 0) {
        for (i, b) in values.enumerated() {
            bytes[offset + i] = b
            writable[offset + i] = writableMask
        }
    }

    /// Marks bits of a 16-bit register as guest-writable.
    public mutating func setWritable16(_ offset: Int, mask: UInt16) {
        writable[offset] = UInt8(truncatingIfNeeded: mask)
        writable[offset + 1] = UInt8(truncatingIfNeeded: mask >> 8)
    }

    public var command: UInt16 { get16(Self.command) }
    public var memoryDecodingEnabled: Bool { command & Self.commandMemorySpace != 0 }
    public var busMasterEnabled: Bool { command & Self.commandBusMaster != 0 }

    // MARK: BARs

    /// Adds a BAR of `size` bytes (a power of two ≥ 16) at `address`, which is aligned down to
    /// the size and cut to the BAR's width (32 bits for `.memory32`, 16 for `.io`) as a guest
    /// write would be, so that the BAR's address is always what its register reads.
    public mutating func addBAR(index: Int, size: UInt64, kind: BAR.Kind, address: UInt64) {
        precondition(size >= 16 && size & (size - 1) == 0, "BAR size must be a power of two")
        var aligned = address & ~(size - 1)
        if case .memory32 = kind { aligned &= 0xffff_ffff }
        if case .io = kind { aligned &= 0xffff }
        let bar = BAR(index: index, size: size, kind: kind, address: aligned)
        bars.append(bar)
        storeBAR(bar)
    }

    private mutating func storeBAR(_ bar: BAR) {
        let value = (bar.address & ~(bar.size - 1)) | bar.typeBits
        set32(Self.bar0 + 4 * bar.index, UInt32(truncatingIfNeeded: value))
        if case .memory64 = bar.kind {
            set32(Self.bar0 + 4 * (bar.index + 1), UInt32(truncatingIfNeeded: value >> 32))
        }
    }

    private mutating func writeBAR(offset: Int, size: Int, value: UInt32) -> [Int] {
        // Merge the write into the dword, then apply the BAR's address mask.
        let dwordOffset = offset & ~3
        let slot = (dwordOffset - Self.bar0) / 4
        var dword = get32(dwordOffset)
        for i in 0..<size {
            let shift = UInt32(8 * ((offset & 3) + i))
            guard shift < 32 else { break }
            dword = (dword & ~(0xff << shift)) | (((value >> (8 * UInt32(i))) & 0xff) << shift)
        }
        for (n, var bar) in bars.enumerated() {
            let isHigh: Bool
            if bar.index == slot { isHigh = false }
            else if case .memory64 = bar.kind, bar.index + 1 == slot { isHigh = true }
            else { continue }
            let mask = ~(bar.size - 1)
            let old = bar.address
            if isHigh {
                bar.address = (bar.address & 0xffff_ffff) | (UInt64(dword) << 32)
            } else {
                bar.address = (bar.address & 0xffff_ffff_0000_0000) | UInt64(dword & ~0xf)
            }
            bar.address &= mask
            if case .memory32 = bar.kind { bar.address &= 0xffff_ffff }
            if case .io = bar.kind { bar.address &= 0xffff }
            bars[n] = bar
            storeBAR(bar)
            return bar.address != old ? [bar.index] : []
        }
        return []  // unimplemented BAR slots read as zero
    }

    /// The BAR with `index`.
    public func bar(_ index: Int) -> BAR? { bars.first { $0.index == index } }

    // MARK: Capabilities

    /// Appends a capability (`id`, then `body` after the next pointer) and returns its offset.
    @discardableResult
    public mutating func addCapability(id: UInt8, body: [UInt8], writableMask: [UInt8]? = nil) -> Int {
        let offset = nextCapabilityOffset
        let length = 2 + body.count
        precondition(offset + length <= Self.size, "capabilities overflow configuration space")
        bytes[offset] = id
        bytes[offset + 1] = 0
        for (i, b) in body.enumerated() {
            bytes[offset + 2 + i] = b
            writable[offset + 2 + i] = writableMask?[i] ?? 0
        }
        if lastCapability == 0 {
            bytes[Self.capabilitiesPointer] = UInt8(offset)
            set16(Self.status, get16(Self.status) | Self.statusCapabilities)
        } else {
            bytes[lastCapability + 1] = UInt8(offset)
        }
        lastCapability = offset
        nextCapabilityOffset = (offset + length + 3) & ~3
        return offset
    }
}

extension PCIConfiguration.BAR.Kind {
    /// The low type bits of a BAR register of this kind.
    var typeBits: UInt64 {
        switch self {
        case .memory32: return 0
        case .memory64(let p): return 0b100 | (p ? 0b1000 : 0)
        case .io: return 0b1
        }
    }
}
