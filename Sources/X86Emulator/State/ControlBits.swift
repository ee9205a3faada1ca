/// Bits of RFLAGS the emulator reads or writes.
public enum RFlags {
    public static let carry: UInt64 = 1 << 0
    public static let reserved1: UInt64 = 1 << 1
    public static let parity: UInt64 = 1 << 2
    public static let auxiliaryCarry: UInt64 = 1 << 4
    public static let zero: UInt64 = 1 << 6
    public static let sign: UInt64 = 1 << 7
    public static let trap: UInt64 = 1 << 8
    public static let interrupt: UInt64 = 1 << 9
    public static let direction: UInt64 = 1 << 10
    public static let overflow: UInt64 = 1 << 11
    public static let iopl: UInt64 = 3 << 12
    public static let nestedTask: UInt64 = 1 << 14
    public static let resume: UInt64 = 1 << 16
    public static let virtual8086: UInt64 = 1 << 17
    public static let alignmentCheck: UInt64 = 1 << 18
    /// CF, PF, AF, ZF, SF, OF.
    public static let arithmetic: UInt64 = carry | parity | auxiliaryCarry | zero | sign | overflow
}

/// Bits of CR0.
public enum CR0 {
    public static let protectionEnable: UInt64 = 1 << 0
    public static let monitorCoprocessor: UInt64 = 1 << 1
    public static let emulation: UInt64 = 1 << 2
    public static let taskSwitched: UInt64 = 1 << 3
    public static let numericError: UInt64 = 1 << 5
    public static let writeProtect: UInt64 = 1 << 16
    public static let alignmentMask: UInt64 = 1 << 18
    public static let paging: UInt64 = 1 << 31
}

/// Bits of CR4.
public enum CR4 {
    public static let timeStampDisable: UInt64 = 1 << 2
    public static let pageSizeExtensions: UInt64 = 1 << 4
    public static let physicalAddressExtension: UInt64 = 1 << 5
    public static let osfxsr: UInt64 = 1 << 9
    public static let osxmmexcpt: UInt64 = 1 << 10
    public static let la57: UInt64 = 1 << 12
    public static let fsgsbase: UInt64 = 1 << 16
    public static let osxsave: UInt64 = 1 << 18
    public static let smep: UInt64 = 1 << 20
    public static let smap: UInt64 = 1 << 21
    public static let protectionKeys: UInt64 = 1 << 22
}

/// Bits of IA32_EFER.
public enum EFER {
    public static let syscallEnable: UInt64 = 1 << 0
    public static let longModeEnable: UInt64 = 1 << 8
    public static let longModeActive: UInt64 = 1 << 10
    public static let noExecuteEnable: UInt64 = 1 << 11
}

/// MSR numbers the emulator asks the platform for.
public enum MSRIndex {
    public static let tsc: UInt32 = 0x10
    public static let star: UInt32 = 0xC000_0081
    public static let lstar: UInt32 = 0xC000_0082
    public static let fmask: UInt32 = 0xC000_0084
    public static let kernelGSBase: UInt32 = 0xC000_0102
    public static let tscAux: UInt32 = 0xC000_0103
}
