import DeviceModel

/// The saved state of a `PCIResetControl` (port 0xCF9).
public struct PCIResetControlState: ValidatedState {
    /// The register as it reads back: bit 1 (system reset) and bit 3 (full reset) as last
    /// written. Bit 2 (reset CPU) acts when written and is never kept; other bits are 0.
    public var register: UInt8

    public init(register: UInt8) {
        self.register = register
    }

    static let component = "pci-reset-control"

    public func validate() throws(DeviceStateError) {
        try DeviceStateError.require(
            register & ~PCIResetControl.keptBits == 0, Self.component,
            "register \(StateText.hex(register)) has bits other than 1 (system reset) and 3 (full reset)")
    }
}

extension PCIResetControl: StatePersistable {
    public func saveState() -> PCIResetControlState {
        PCIResetControlState(register: value.withLock { $0 })
    }

    /// Validates `saved` and takes its register value; on error nothing changes. Restoring
    /// never requests a reset (bit 2 is never in a valid state).
    public func restoreState(_ saved: PCIResetControlState) throws(DeviceStateError) {
        try saved.validate()
        value.withLock { $0 = saved.register }
    }
}
