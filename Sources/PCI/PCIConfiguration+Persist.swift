import DeviceModel

/// One base address register in a saved configuration space.
public struct PCIBARState: Codable, Sendable, Equatable {
    /// What the BAR decodes, with its register's type bits.
    public enum Kind: UInt8, Codable, Sendable {
        /// 32-bit memory space (type bits 0b0000).
        case memory32 = 0
        /// 64-bit memory space, not prefetchable (0b0100); takes two register slots.
        case memory64 = 1
        /// 64-bit prefetchable memory space (0b1100); takes two register slots.
        case prefetchableMemory64 = 2
        /// I/O space (0b01); 16-bit port addresses on x86.
        case io = 3
    }

    /// The register slot, 0–5 (BAR n at configuration offset 0x10 + 4n); a 64-bit BAR also
    /// takes slot + 1 for the upper half of its address.
    public var slot: UInt8
    public var kind: Kind
    /// Size in bytes: a power of two, at least 16; at most 2 GiB for `.memory32`, 32 KiB for
    /// `.io`. Fixed by the device model: a restore checks it against the rebuilt device.
    public var size: UInt64
    /// The base address as the guest programmed it (or the device was built with): aligned to
    /// `size`, and the whole BAR inside the 32-bit (`.memory32`), 64-bit or 16-bit (`.io`) space.
    public var address: UInt64

    public init(slot: UInt8, kind: Kind, size: UInt64, address: UInt64) {
        self.slot = slot
        self.kind = kind
        self.size = size
        self.address = address
    }
}

/// The saved state of a `PCIConfiguration`: the configuration space as the guest reads it and
/// the BARs.
///
/// What is rebuilt rather than restored: the write masks and the capability layout come from
/// the device's constructor, as do the BARs' sizes and kinds. A restore therefore starts from
/// the configuration the owner's constructor built for the same device model, checks the saved
/// space against it (every bit the guest cannot write must be what the constructor put there:
/// vendor and device ID, class, header type, status, capability IDs and pointers, ...) and takes
/// from the state only what the guest can change: the writable bits (command, interrupt line,
/// capability control fields) and the BAR addresses.
public struct PCIConfigurationState: ValidatedState {
    /// The 256 bytes of configuration space (type-0 header and capabilities), as reads return
    /// them; the BAR registers hold the BARs' addresses and type bits.
    public var space: [UInt8]
    /// The BARs the function implements, in the order the device model added them.
    public var bars: [PCIBARState]

    public init(space: [UInt8], bars: [PCIBARState]) {
        self.space = space
        self.bars = bars
    }

    static let component = "pci-config"

    public func validate() throws(DeviceStateError) {
        let c = Self.component
        try DeviceStateError.require(
            space.count == PCIConfiguration.size, c, "space has \(space.count) bytes, not \(PCIConfiguration.size)")
        try DeviceStateError.require(bars.count <= 6, c, "bars has \(bars.count) entries, more than 6")
        var slotsTaken: UInt8 = 0
        for (n, bar) in bars.enumerated() {
            let name = "bars[\(n)]"
            let wide = bar.kind == .memory64 || bar.kind == .prefetchableMemory64
            try DeviceStateError.require(bar.slot <= (wide ? 4 : 5), c, "\(name).slot \(bar.slot) is past the last \(wide ? "64-bit " : "")BAR slot")
            let slots: UInt8 = (wide ? 0b11 : 0b1) << bar.slot
            try DeviceStateError.require(slotsTaken & slots == 0, c, "\(name).slot \(bar.slot) overlaps another BAR")
            slotsTaken |= slots
            try DeviceStateError.require(
                bar.size >= 16 && bar.size & (bar.size &- 1) == 0, c, "\(name).size \(bar.size) is not a power of two of at least 16")
            let limit: UInt64
            switch bar.kind {
            case .memory32: limit = 1 << 32
            case .io: limit = 1 << 16
            case .memory64, .prefetchableMemory64: limit = 0  // 2^64
            }
            if limit != 0 {
                try DeviceStateError.require(bar.size <= limit / 2, c, "\(name).size \(bar.size) is too large for a \(bar.kind) BAR")
            }
            try DeviceStateError.require(
                bar.address & (bar.size &- 1) == 0, c,
                "\(name).address \(StateText.hex(bar.address)) is not aligned to its size \(StateText.hex(bar.size))")
            // The last byte, not the end: a BAR being sized (all ones written) ends at the top.
            let (last, overflow) = bar.address.addingReportingOverflow(bar.size &- 1)
            try DeviceStateError.require(
                !overflow && (limit == 0 || last < limit), c,
                "\(name).address \(StateText.hex(bar.address)) + size \(StateText.hex(bar.size)) runs past the \(bar.kind) address space")
            // The BAR registers in the space say the same.
            let register = PCIConfiguration.bar0 + 4 * Int(bar.slot)
            let encoded = bar.address | PCIConfiguration.BAR.Kind(bar.kind).typeBits
            let low = Self.dword(space, register)
            try DeviceStateError.require(
                low == UInt32(truncatingIfNeeded: encoded), c,
                "space[\(StateText.hex(register))] (BAR \(bar.slot)) is \(StateText.hex(low)), but \(name) encodes as \(StateText.hex(UInt32(truncatingIfNeeded: encoded)))")
            if wide {
                let high = Self.dword(space, register + 4)
                try DeviceStateError.require(
                    high == UInt32(truncatingIfNeeded: encoded >> 32), c,
                    "space[\(StateText.hex(register + 4))] (BAR \(bar.slot + 1), upper half of BAR \(bar.slot)) is \(StateText.hex(high)), but \(name) encodes as \(StateText.hex(UInt32(truncatingIfNeeded: encoded >> 32)))")
            }
        }
    }

    /// The little-endian dword at `offset` (within bounds: `space` has 256 bytes, offset ≤ 0x24).
    static func dword(_ space: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(space[offset + $1]) << (8 * UInt32($1)) }
    }
}

extension PCIConfiguration.BAR.Kind {
    init(_ kind: PCIBARState.Kind) {
        switch kind {
        case .memory32: self = .memory32
        case .memory64: self = .memory64(prefetchable: false)
        case .prefetchableMemory64: self = .memory64(prefetchable: true)
        case .io: self = .io
        }
    }

    var saved: PCIBARState.Kind {
        switch self {
        case .memory32: return .memory32
        case .memory64(let prefetchable): return prefetchable ? .prefetchableMemory64 : .memory64
        case .io: return .io
        }
    }
}

extension PCIConfiguration {
    /// The guest-visible state to save.
    public var savedState: PCIConfigurationState {
        PCIConfigurationState(
            space: bytes,
            bars: bars.map { PCIBARState(slot: UInt8(clamping: $0.index), kind: $0.kind.saved, size: $0.size, address: $0.address) })
    }

    /// `layout` (the configuration the owner's constructor built for this device model) with
    /// the guest-written content of `state`, or an error naming the first thing that does not
    /// fit: `state` invalid on its own, a BAR that differs in slot, kind or size from the
    /// rebuilt one, or a bit the guest cannot write that differs from the rebuilt space.
    ///
    /// Changes nothing: an owner restoring several parts builds all of them first and then
    /// takes them together. BAR mappings are the PCI root's (`PCIRoot.remapAllBARs()`).
    public init(restoring state: PCIConfigurationState, layout: PCIConfiguration) throws(DeviceStateError) {
        try state.validate()
        let c = PCIConfigurationState.component
        try DeviceStateError.require(
            state.bars.count == layout.bars.count, c,
            "bars has \(state.bars.count) entries, the device has \(layout.bars.count) BARs")
        var restored = layout
        var barBytes = Set<Int>()
        for (n, bar) in layout.bars.enumerated() {
            guard let saved = state.bars.first(where: { Int($0.slot) == bar.index }) else {
                throw DeviceStateError(c, "bars has no BAR in slot \(bar.index), which the device implements")
            }
            try DeviceStateError.require(
                saved.kind == bar.kind.saved && saved.size == bar.size, c,
                "bars: slot \(bar.index) is a \(saved.size)-byte \(saved.kind) BAR, the device has a \(bar.size)-byte \(bar.kind.saved) BAR")
            restored.bars[n].address = saved.address
            let register = Self.bar0 + 4 * bar.index
            let length = saved.kind == .memory32 || saved.kind == .io ? 4 : 8
            barBytes.formUnion(register..<(register + length))
        }
        for offset in 0..<Self.size where !barBytes.contains(offset) {
            let fixed = ~layout.writable[offset]
            let difference = (state.space[offset] ^ layout.bytes[offset]) & fixed
            guard difference == 0 else {
                throw DeviceStateError(
                    c,
                    "space[\(StateText.hex(offset))] (\(layout.describe(offset))) is \(StateText.hex(state.space[offset])), "
                        + "the device has \(StateText.hex(layout.bytes[offset])) in its read-only bits \(StateText.hex(fixed))")
            }
        }
        restored.bytes = state.space
        self = restored
    }

    /// Replaces the guest-written content with `state`'s after the checks of
    /// `init(restoring:layout:)` against this configuration; on error nothing changes.
    public mutating func restore(_ state: PCIConfigurationState) throws(DeviceStateError) {
        self = try PCIConfiguration(restoring: state, layout: self)
    }

    /// What configuration-space byte `offset` is, for error messages.
    func describe(_ offset: Int) -> String {
        switch offset {
        case 0x00...0x01: return "vendor ID"
        case 0x02...0x03: return "device ID"
        case 0x04...0x05: return "command"
        case 0x06...0x07: return "status"
        case 0x08: return "revision ID"
        case 0x09...0x0b: return "class code"
        case 0x0c: return "cache line size"
        case 0x0d: return "latency timer"
        case 0x0e: return "header type"
        case 0x0f: return "BIST"
        case 0x10...0x27: return "BAR \((offset - 0x10) / 4)"
        case 0x28...0x2b: return "CardBus CIS pointer"
        case 0x2c...0x2d: return "subsystem vendor ID"
        case 0x2e...0x2f: return "subsystem ID"
        case 0x30...0x33: return "expansion ROM base"
        case 0x34: return "capabilities pointer"
        case 0x35...0x3b: return "reserved"
        case 0x3c: return "interrupt line"
        case 0x3d: return "interrupt pin"
        case 0x3e: return "min grant"
        case 0x3f: return "max latency"
        default:
            // The capability that starts at or most closely before `offset`.
            var start: Int?
            var next = Int(bytes[Self.capabilitiesPointer])
            var steps = 0
            while next >= 0x40, next < Self.size, steps < 64 {
                if next <= offset, next > (start ?? 0) { start = next }
                next = next + 1 < Self.size ? Int(bytes[next + 1]) : 0
                steps += 1
            }
            guard let start else { return "outside every capability" }
            let id = StateText.hex(bytes[start])
            switch offset - start {
            case 0: return "ID of capability \(id) at \(StateText.hex(start))"
            case 1: return "next pointer of capability \(id) at \(StateText.hex(start))"
            default: return "byte \(offset - start) of capability \(id) at \(StateText.hex(start))"
            }
        }
    }
}
