/// Model-specific register indices Skiff touches.
public enum MSRIndex {
    public static let tsc: UInt32 = 0x10
    public static let apicBase: UInt32 = 0x1B
    public static let sysenterCS: UInt32 = 0x174
    public static let sysenterESP: UInt32 = 0x175
    public static let sysenterEIP: UInt32 = 0x176
    public static let miscEnable: UInt32 = 0x1A0
    public static let pat: UInt32 = 0x277
    public static let mtrrDefType: UInt32 = 0x2FF
    public static let efer: UInt32 = 0xC000_0080
    public static let star: UInt32 = 0xC000_0081
    public static let lstar: UInt32 = 0xC000_0082
    public static let cstar: UInt32 = 0xC000_0083
    public static let syscallMask: UInt32 = 0xC000_0084
    public static let fsBase: UInt32 = 0xC000_0100
    public static let gsBase: UInt32 = 0xC000_0101
    public static let kernelGSBase: UInt32 = 0xC000_0102
    public static let tscAux: UInt32 = 0xC000_0103
    /// kvmclock wall-clock and system-time MSRs (KVM_FEATURE_CLOCKSOURCE2).
    public static let kvmWallClockNew: UInt32 = 0x4B56_4D00
    public static let kvmSystemTimeNew: UInt32 = 0x4B56_4D01
}

/// Bits of IA32_MISC_ENABLE.
public enum MiscEnable {
    /// Fast-string operations (REP MOVS/STOS) enabled.
    public static let fastStrings: UInt64 = 1 << 0
}

/// Bits of IA32_MTRR_DEF_TYPE.
public enum MTRRDefaultType {
    /// Memory type write-back for memory no MTRR covers.
    public static let writeBack: UInt64 = 6
    /// MTRRs enabled.
    public static let enable: UInt64 = 1 << 11
}

/// One MSR value, as in `struct kvm_msr_entry`.
public struct MSREntry: Equatable, Sendable {
    public var index: UInt32
    public var value: UInt64

    public init(index: UInt32, value: UInt64) {
        self.index = index
        self.value = value
    }
}

/// The MSRs every vCPU gets before its first run (Firecracker's `create_boot_msr_entries`):
/// the SYSENTER/SYSCALL MSRs and KERNEL_GS_BASE cleared, the TSC at 0, fast strings on, and MTRRs
/// enabled with write-back as the default memory type.
public enum BootMSRs {
    public static func entries() -> [MSREntry] {
        [
            MSREntry(index: MSRIndex.sysenterCS, value: 0),
            MSREntry(index: MSRIndex.sysenterESP, value: 0),
            MSREntry(index: MSRIndex.sysenterEIP, value: 0),
            MSREntry(index: MSRIndex.star, value: 0),
            MSREntry(index: MSRIndex.cstar, value: 0),
            MSREntry(index: MSRIndex.kernelGSBase, value: 0),
            MSREntry(index: MSRIndex.syscallMask, value: 0),
            MSREntry(index: MSRIndex.lstar, value: 0),
            MSREntry(index: MSRIndex.tsc, value: 0),
            MSREntry(index: MSRIndex.miscEnable, value: MiscEnable.fastStrings),
            MSREntry(index: MSRIndex.mtrrDefType, value: MTRRDefaultType.enable | MTRRDefaultType.writeBack),
        ]
    }
}
