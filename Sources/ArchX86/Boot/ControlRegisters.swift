/// CR0 bits (Intel SDM vol. 3, 2.5).
public enum CR0 {
    public static let pe: UInt64 = 1 << 0  // protection enable
    public static let mp: UInt64 = 1 << 1  // monitor coprocessor
    public static let em: UInt64 = 1 << 2  // x87 emulation
    public static let ts: UInt64 = 1 << 3  // task switched
    public static let et: UInt64 = 1 << 4  // extension type (always 1)
    public static let ne: UInt64 = 1 << 5  // numeric error
    public static let wp: UInt64 = 1 << 16  // write protect
    public static let am: UInt64 = 1 << 18  // alignment mask
    public static let nw: UInt64 = 1 << 29  // not write-through
    public static let cd: UInt64 = 1 << 30  // cache disable
    public static let pg: UInt64 = 1 << 31  // paging
}

/// CR4 bits (Intel SDM vol. 3, 2.5).
public enum CR4 {
    public static let vme: UInt64 = 1 << 0
    public static let pvi: UInt64 = 1 << 1
    public static let tsd: UInt64 = 1 << 2
    public static let de: UInt64 = 1 << 3
    public static let pse: UInt64 = 1 << 4
    public static let pae: UInt64 = 1 << 5
    public static let mce: UInt64 = 1 << 6
    public static let pge: UInt64 = 1 << 7
    public static let pce: UInt64 = 1 << 8
    public static let osfxsr: UInt64 = 1 << 9
    public static let osxmmexcpt: UInt64 = 1 << 10
    public static let umip: UInt64 = 1 << 11
    public static let la57: UInt64 = 1 << 12
    public static let vmxe: UInt64 = 1 << 13
    public static let smxe: UInt64 = 1 << 14
    public static let fsgsbase: UInt64 = 1 << 16
    public static let pcide: UInt64 = 1 << 17
    public static let osxsave: UInt64 = 1 << 18
    public static let smep: UInt64 = 1 << 20
    public static let smap: UInt64 = 1 << 21
    public static let pke: UInt64 = 1 << 22
}

/// IA32_EFER bits.
public enum EFER {
    public static let sce: UInt64 = 1 << 0  // SYSCALL enable
    public static let lme: UInt64 = 1 << 8  // long mode enable
    public static let lma: UInt64 = 1 << 10  // long mode active
    public static let nxe: UInt64 = 1 << 11  // no-execute enable
    public static let svme: UInt64 = 1 << 12
    public static let ffxsr: UInt64 = 1 << 14
}

/// RFLAGS bits.
public enum RFLAGS {
    /// Bit 1 always reads as 1; the boot value of RFLAGS.
    public static let reserved: UInt64 = 1 << 1
    public static let interruptEnable: UInt64 = 1 << 9
}

/// Control-register values at the kernel entry point.
public struct BootControlRegisters: Equatable, Sendable {
    public var cr0: UInt64
    public var cr3: UInt64
    public var cr4: UInt64
    public var efer: UInt64

    public init(cr0: UInt64, cr3: UInt64, cr4: UInt64, efer: UInt64) {
        self.cr0 = cr0
        self.cr3 = cr3
        self.cr4 = cr4
        self.efer = efer
    }

    /// 64-bit entry: protected mode with paging on the boot identity map, PAE, long mode active.
    public static let longMode = BootControlRegisters(
        cr0: CR0.pe | CR0.et | CR0.pg, cr3: BootPageTables.cr3, cr4: CR4.pae, efer: EFER.lme | EFER.lma)
    /// 32-bit (PVH) entry: flat protected mode, paging off.
    public static let protectedMode32 = BootControlRegisters(cr0: CR0.pe | CR0.et, cr3: 0, cr4: 0, efer: 0)

    /// The values for `mode`.
    public static func forMode(_ mode: BootGDT.Mode) -> BootControlRegisters {
        switch mode {
        case .longMode: return .longMode
        case .protectedMode32: return .protectedMode32
        }
    }
}

/// x87/SSE state at the kernel entry point (the values after FNINIT and a power-on MXCSR).
public enum BootFPU {
    public static let controlWord: UInt16 = 0x37F
    public static let mxcsr: UInt32 = 0x1F80
}
