/// Privileged and system instructions: CLAC/STAC, SWAPGS, RDTSCP, RDPID, RD/WR FS/GS BASE, XGETBV, SYSRET.
extension InstructionContext {
    /// CLAC / STAC: clear or set RFLAGS.AC. #UD outside protected mode, in virtual-8086 mode or at CPL > 0.
    func executeAlignmentFlag(set: Bool, _ state: inout CPUState) -> Result<Completion, AccessFault> {
        switch state.mode {
        case .real, .virtual8086: return .failure(.invalidOpcode)
        default: break
        }
        guard state.cpl == 0 else { return .failure(.invalidOpcode) }
        if set { state.rflags |= RFlags.alignmentCheck } else { state.rflags &= ~RFlags.alignmentCheck }
        return .success(.done(.registers))
    }

    /// SWAPGS: exchange GS.base with IA32_KERNEL_GS_BASE. 64-bit mode only (#UD), CPL 0 only (#GP(0)).
    func executeSwapGS(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        guard state.mode.is64Bit else { return .failure(.invalidOpcode) }
        guard state.cpl == 0 else { return .failure(.generalProtection(state)) }
        guard let kernel = platform.readMSR(MSRIndex.kernelGSBase) else { return .failure(.stop("cannot read IA32_KERNEL_GS_BASE")) }
        guard platform.writeMSR(MSRIndex.kernelGSBase, state.gs.base) else { return .failure(.stop("cannot write IA32_KERNEL_GS_BASE")) }
        state.gs.base = kernel
        return .success(.done([.registers, .specialRegisters]))
    }

    /// RDTSCP: EDX:EAX = TSC, ECX = IA32_TSC_AUX. #GP(0) with CR4.TSD at CPL > 0.
    func executeRDTSCP(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        if state.cr4 & CR4.timeStampDisable != 0 && state.cpl != 0 { return .failure(.generalProtection(state)) }
        guard let tsc = platform.readTSC() else { return .failure(.stop("cannot read the guest TSC")) }
        guard let aux = platform.readMSR(MSRIndex.tscAux) else { return .failure(.stop("cannot read IA32_TSC_AUX")) }
        state.gpr[.rax] = tsc & 0xFFFF_FFFF
        state.gpr[.rdx] = tsc >> 32
        state.gpr[.rcx] = aux & 0xFFFF_FFFF
        return .success(.done(.registers))
    }

    /// RDPID: the register operand = IA32_TSC_AUX (64 bits in 64-bit mode, else 32).
    func executeRDPID(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        guard let aux = platform.readMSR(MSRIndex.tscAux) else { return .failure(.stop("cannot read IA32_TSC_AUX")) }
        Self.writeGPR(&state, instruction.rmField, aux, size: state.mode.is64Bit ? 8 : 4)
        return .success(.done(.registers))
    }

    /// RDFSBASE / RDGSBASE / WRFSBASE / WRGSBASE: 64-bit mode with CR4.FSGSBASE (#UD otherwise).
    /// Writing a non-canonical base raises #GP(0).
    func executeSegmentBase(_ segment: SegmentName, write: Bool, _ state: inout CPUState) -> Result<Completion, AccessFault> {
        guard state.mode.is64Bit, state.cr4 & CR4.fsgsbase != 0 else { return .failure(.invalidOpcode) }
        let size = instruction.rex?.w == true ? 8 : 4
        let register = instruction.rmField
        if write {
            let value = state.gpr[register] & mask(bytes: size)
            guard Segmentation(state: state).isCanonical(value) else { return .failure(.generalProtection(state)) }
            state[segment].base = value
            return .success(.done([.registers, .specialRegisters]))
        }
        Self.writeGPR(&state, register, state[segment].base, size: size)
        return .success(.done(.registers))
    }

    /// XGETBV: EDX:EAX = XCR[ECX]. #UD without CR4.OSXSAVE; #GP(0) for an XCR other than 0.
    func executeXGETBV(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        guard state.cr4 & CR4.osxsave != 0 else { return .failure(.invalidOpcode) }
        guard state.gpr[.rcx] & 0xFFFF_FFFF == 0 else { return .failure(.generalProtection(state)) }
        state.gpr[.rax] = state.xcr0 & 0xFFFF_FFFF
        state.gpr[.rdx] = state.xcr0 >> 32
        return .success(.done(.registers))
    }

    /// SYSRET: return from SYSCALL to CPL 3 (64-bit mode only).
    ///
    /// RIP = RCX (non-canonical → #GP(0), as Intel does), RFLAGS = R11 with RF cleared and bit 1 set;
    /// CS and SS come from IA32_STAR[63:48] (+16/+8 with REX.W, else +0/+8) with RPL 3 and flat
    /// descriptors. The caller does not advance RIP (this handler sets it).
    func executeSYSRET(_ state: inout CPUState) -> Result<Completion, AccessFault> {
        guard state.mode.is64Bit, state.efer & EFER.syscallEnable != 0 else { return .failure(.invalidOpcode) }
        guard state.cpl == 0 else { return .failure(.generalProtection(state)) }
        guard let star = platform.readMSR(MSRIndex.star) else { return .failure(.stop("cannot read IA32_STAR")) }
        let wide = instruction.rex?.w == true
        let target = wide ? state.gpr[.rcx] : state.gpr[.rcx] & 0xFFFF_FFFF
        guard Segmentation(state: state).isCanonical(target) else { return .failure(.generalProtection(state)) }
        let selectorBase = UInt16(truncatingIfNeeded: star >> 48)
        let csSelector = (wide ? selectorBase &+ 16 : selectorBase) | 3
        let ssSelector = (selectorBase &+ 8) | 3
        state.rip = target
        state.rflags = (state.gpr[.r11] & 0x3C_7FD7) | RFlags.reserved1
        state.cs = SegmentRegister(selector: csSelector, base: 0, limit: 0xFFFF_FFFF, type: 0xB, dpl: 3, defaultBig: !wide,
                                   long: wide, granularity: true)
        state.ss = SegmentRegister(selector: ssSelector, base: 0, limit: 0xFFFF_FFFF, type: 3, dpl: 3, defaultBig: true, granularity: true)
        return .success(.jumped([.registers, .specialRegisters]))
    }
}
