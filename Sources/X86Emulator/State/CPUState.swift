/// The vCPU state the emulator reads and updates.
///
/// Fields map one to one onto KVM's structures: `gpr`, `rip`, `rflags` onto `kvm_regs` (mind the
/// register order, `GPR.kvmRegsOrder`); segments, `cr0`…`cr4` and `efer` onto `kvm_sregs`;
/// `xmm`, `mxcsr`, `fcw`, `fsw` onto `kvm_fpu`; `xcr0` onto `kvm_xcrs`. Every value is treated as
/// untrusted: odd combinations give an exception or an `.unsupported` result, never a trap.
public struct CPUState: Sendable, Equatable {
    /// General-purpose registers in encoding order.
    public var gpr = GeneralPurposeRegisters()
    public var rip: UInt64 = 0
    public var rflags: UInt64 = RFlags.reserved1

    /// Segment registers with their cached descriptors (`kvm_sregs.cs` …).
    public var cs = SegmentRegister.realMode(selector: 0, code: true)
    public var ds = SegmentRegister.realMode(selector: 0)
    public var es = SegmentRegister.realMode(selector: 0)
    public var fs = SegmentRegister.realMode(selector: 0)
    public var gs = SegmentRegister.realMode(selector: 0)
    public var ss = SegmentRegister.realMode(selector: 0)

    /// GDTR base and limit (`kvm_sregs.gdt`) and LDTR (`kvm_sregs.ldt`): read by VERR/VERW.
    public var gdtBase: UInt64 = 0
    public var gdtLimit: UInt16 = 0xFFFF
    public var ldtr = SegmentRegister(type: 2, codeOrData: false, unusable: true)

    /// Control registers and IA32_EFER (`kvm_sregs`).
    public var cr0: UInt64 = 0x10
    public var cr2: UInt64 = 0
    public var cr3: UInt64 = 0
    public var cr4: UInt64 = 0
    public var efer: UInt64 = 0
    /// XCR0 (for XGETBV); KVM_GET_XCRS. Defaults to x87 only.
    public var xcr0: UInt64 = 1
    /// PKRU (protection keys for user pages), checked when CR4.PKE is set.
    public var pkru: UInt32 = 0

    /// XMM0–15 (`kvm_fpu.xmm`).
    public var xmm = XMMRegisters()
    /// MXCSR (`kvm_fpu.mxcsr`).
    public var mxcsr: UInt32 = 0x1F80
    /// x87 control word.
    public var fcw: UInt16 = 0x037F
    /// x87 status word (FWAIT raises #MF when its ES bit is set).
    public var fsw: UInt16 = 0
    /// x87 tag word in FXSAVE's abridged form: bit i set = physical register i is valid (`kvm_fpu.ftwx`).
    public var ftwx: UInt8 = 0
    /// ST(0)–ST(7) as FXSAVE stores them: 80-bit values in stack order (`kvm_fpu.fpr`).
    public var x87 = X87Registers()
    /// Last x87 opcode (11 bits), instruction pointer and data pointer (`kvm_fpu.last_opcode/ip/dp`).
    public var fop: UInt16 = 0
    public var fip: UInt64 = 0
    public var fdp: UInt64 = 0

    /// Power-on-like real-mode state; fill in what the vCPU reports.
    public init() {}

    /// The current privilege level: 0 in real mode, 3 in virtual-8086 mode, else SS.DPL (what VMX and SVM report).
    public var cpl: Int {
        if cr0 & CR0.protectionEnable == 0 { return 0 }
        if rflags & RFlags.virtual8086 != 0 && efer & EFER.longModeActive == 0 { return 3 }
        return Int(ss.dpl & 3)
    }

    /// The operating mode derived from CR0.PE, EFER.LMA, RFLAGS.VM, CS.L and CS.D.
    public var mode: ProcessorMode {
        if cr0 & CR0.protectionEnable == 0 { return .real }
        if efer & EFER.longModeActive != 0 {
            if cs.long { return .long64 }
            return .compatibility(bits: cs.defaultBig ? 32 : 16)
        }
        if rflags & RFlags.virtual8086 != 0 { return .virtual8086 }
        return .protected(bits: cs.defaultBig ? 32 : 16)
    }

    /// A segment register by name.
    public subscript(segment: SegmentName) -> SegmentRegister {
        get {
            switch segment {
            case .es: return es
            case .cs: return cs
            case .ss: return ss
            case .ds: return ds
            case .fs: return fs
            case .gs: return gs
            }
        }
        set {
            switch segment {
            case .es: es = newValue
            case .cs: cs = newValue
            case .ss: ss = newValue
            case .ds: ds = newValue
            case .fs: fs = newValue
            case .gs: gs = newValue
            }
        }
    }

    /// A 64-bit mode state with flat segments, 4-level paging at `cr3` and SSE enabled (for tests and tools).
    public static func long64(cr3: UInt64, cpl: UInt8 = 0) -> CPUState {
        var s = CPUState()
        s.cr0 = CR0.protectionEnable | CR0.monitorCoprocessor | CR0.numericError | CR0.writeProtect | CR0.paging
        s.cr3 = cr3
        s.cr4 = CR4.physicalAddressExtension | CR4.osfxsr | CR4.osxmmexcpt
        s.efer = EFER.syscallEnable | EFER.longModeEnable | EFER.longModeActive | EFER.noExecuteEnable
        s.cs = .code64(selector: cpl == 0 ? 0x10 : 0x33, dpl: cpl)
        let data = SegmentRegister.flatData(selector: cpl == 0 ? 0x18 : 0x2B, dpl: cpl)
        s.ds = data
        s.es = data
        s.ss = data
        s.fs = data
        s.gs = data
        s.rflags = RFlags.reserved1
        return s
    }

    /// A 32-bit protected mode state with flat segments, paging off and SSE enabled (for tests and tools).
    public static func protected32(cpl: UInt8 = 0) -> CPUState {
        var s = CPUState()
        s.cr0 = CR0.protectionEnable | CR0.monitorCoprocessor | CR0.numericError
        s.cr4 = CR4.osfxsr | CR4.osxmmexcpt
        s.cs = .code32(selector: 0x08, dpl: cpl)
        let data = SegmentRegister.flatData(selector: 0x10, dpl: cpl)
        s.ds = data
        s.es = data
        s.ss = data
        s.fs = data
        s.gs = data
        return s
    }
}
