import ArchX86
import CKVM
import KVM

/// Programs one vCPU before it first runs: CPUID, MSRs, FPU, local APIC LINT pins, and for
/// the boot processor the registers its kernel entry expects.
enum VCPUSetup {
    static let lapicLVT0Offset = 0x350
    static let lapicLVT1Offset = 0x360
    static let deliveryModeExtINT: UInt32 = 0x7
    static let deliveryModeNMI: UInt32 = 0x4

    static func configure(_ vcpu: VCPUFD, cpuid: [kvm_cpuid_entry2], msrs: [(index: UInt32, value: UInt64)]) throws(KVMError) {
        try vcpu.setCPUID(cpuid)
        try vcpu.setMSRs(msrs)
        var fpu = kvm_fpu()
        fpu.fcw = BootFPU.controlWord
        fpu.mxcsr = BootFPU.mxcsr
        try vcpu.setFPU(fpu)
        try configureLINT(vcpu)
    }

    /// LINT0 = ExtINT (the 8259 reaches the BSP), LINT1 = NMI, as a PC BIOS leaves them.
    static func configureLINT(_ vcpu: VCPUFD) throws(KVMError) {
        var state = try vcpu.lapic()
        unsafe withUnsafeMutableBytes(of: &state.regs) { regs in
            func update(_ offset: Int, mode: UInt32) {
                let old = unsafe regs.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                let new = (old & ~0x700) | (mode << 8)
                unsafe regs.storeBytes(of: new, toByteOffset: offset, as: UInt32.self)
            }
            update(lapicLVT0Offset, mode: deliveryModeExtINT)
            update(lapicLVT1Offset, mode: deliveryModeNMI)
        }
        try vcpu.setLAPIC(state)
    }
}
