/// What the emulator asks of the VMM besides memory: model-specific registers and the TSC.
///
/// A KVM-based VMM implements these with KVM_GET_MSRS / KVM_SET_MSRS on the vCPU being
/// emulated (IA32_TSC read through KVM_GET_MSRS is the guest's TSC).
public protocol EmulatorPlatform {
    /// The value of MSR `index`, or nil if it cannot be read (the emulator then stops with `.unsupported`).
    func readMSR(_ index: UInt32) -> UInt64?
    /// Sets MSR `index`; false if that failed.
    func writeMSR(_ index: UInt32, _ value: UInt64) -> Bool
    /// The guest's current time-stamp counter. Defaults to reading IA32_TSC with `readMSR`.
    func readTSC() -> UInt64?
}

extension EmulatorPlatform {
    public func readTSC() -> UInt64? { readMSR(MSRIndex.tsc) }
}
