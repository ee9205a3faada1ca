import CKVM

/// The VM-wide state KVM emulates in the kernel: both 8259 PICs, the IOAPIC, the PIT and
/// kvmclock. Byte images of the `kvm_*` structs, size-checked before use.
public struct VMPlatformState: Codable, Sendable, Equatable {
    /// `kvm_irqchip` images for chip 0 (master PIC), 1 (slave PIC) and 2 (IOAPIC).
    public var irqChips: [[UInt8]]
    /// `kvm_pit_state2` image.
    public var pit: [UInt8]
    /// kvmclock in nanoseconds when the VM was paused.
    public var clockNanoseconds: UInt64
    /// KVM_GET_CLOCK flags (e.g. KVM_CLOCK_TSC_STABLE), for information.
    public var clockFlags: UInt32

    public func validate() throws(KVMError) {
        guard irqChips.count == 3, irqChips.allSatisfy({ $0.count == MemoryLayout<kvm_irqchip>.size }) else {
            throw .invalidState("platform: interrupt controllers are \(irqChips.map(\.count)) bytes")
        }
        for (i, image) in irqChips.enumerated() {
            guard let chip = RawStruct.load(kvm_irqchip.self, from: image), chip.chip_id == UInt32(i) else {
                throw .invalidState("platform: interrupt controller \(i) has another chip id")
            }
        }
        guard pit.count == MemoryLayout<kvm_pit_state2>.size else { throw .invalidState("platform: PIT state is \(pit.count) bytes") }
    }
}

extension VirtualMachineFD {
    /// Size of a vCPU's XSAVE area as KVM_GET_XSAVE2 returns it (at least 4096).
    public var xsaveSize: Int {
        max(Int(ckvm_ioctl_val(fd.rawValue, CKVM_CHECK_EXTENSION, UInt(KVM_CAP_XSAVE2))), MemoryLayout<kvm_xsave>.size)
    }

    /// Value of KVM_CHECK_EXTENSION asked of this VM (0 = absent).
    public func checkExtension(_ capability: Int32) -> Int32 {
        max(0, ckvm_ioctl_val(fd.rawValue, CKVM_CHECK_EXTENSION, UInt(capability)))
    }

    /// Captures the in-kernel PICs, IOAPIC, PIT and kvmclock (VM paused).
    public func savePlatformState() throws(KVMError) -> VMPlatformState {
        var chips: [[UInt8]] = []
        for id in UInt32(0)...2 { chips.append(RawStruct.bytes(of: try irqChip(id))) }
        let pitImage = RawStruct.bytes(of: try pit())
        let c = try clock()
        return VMPlatformState(irqChips: chips, pit: pitImage, clockNanoseconds: c.clock, clockFlags: c.flags)
    }

    /// Restores a platform state onto a VM whose irqchip and PIT exist (nothing running yet).
    public func restorePlatformState(_ state: VMPlatformState) throws(KVMError) {
        try state.validate()
        for image in state.irqChips {
            guard let chip = RawStruct.load(kvm_irqchip.self, from: image) else { throw .invalidState("platform: interrupt controller image") }
            try setIRQChip(chip)
        }
        guard let p = RawStruct.load(kvm_pit_state2.self, from: state.pit) else { throw .invalidState("platform: PIT image") }
        try setPIT(p)
        var c = kvm_clock_data()
        c.clock = state.clockNanoseconds
        try setClock(c)
    }
}
