import Testing
@testable import X86Emulator

/// INT3, CLAC/STAC, FWAIT, LDMXCSR/STMXCSR, ENDBR, UD*, RDTSCP, RDPID, FS/GS base, SWAPGS, XGETBV, SYSRET.
@Suite struct SystemInstructionTests {
    let UD = ExceptionInjection(vector: .invalidOpcode)
    let GP0 = ExceptionInjection(vector: .generalProtection, errorCode: 0)

    func step(_ code: [UInt8], cpl: UInt8 = 0, emulator: Emulator = Emulator(),
              _ configure: (inout LongModeMachine) -> Void = { _ in }) -> (EmulationResult, LongModeMachine, CPUState) {
        var m = LongModeMachine(cpl: cpl)
        m.place(code)
        configure(&m)
        let before = m.state
        let r = emulator.step(state: &m.state, memory: m.memory, platform: m.platform)
        return (r, m, before)
    }

    @Test func int3AdvancesAndRaisesBreakpoint() {
        let (r, m, before) = step([0xCC])
        #expect(r == .injectException(ExceptionInjection(vector: .breakpoint), changes: .registers))
        var expected = before
        expected.rip += 1
        #expect(differences(m.state, expected).isEmpty)
        // Prefixes are ignored, and counted in the length.
        let (r2, m2, _) = step([0x66, 0xF3, 0xCC])
        #expect(r2 == .injectException(ExceptionInjection(vector: .breakpoint), changes: .registers))
        #expect(m2.state.rip == LongModeMachine.codeBase + 3)
        // Real mode: 16-bit IP.
        let memory = TestMemory(size: 0x20000)
        var s = CPUState()
        s.cs = .realMode(selector: 0x1000, code: true)
        s.rip = 0xFFFF
        memory.store([0xCC], at: 0x1FFFF)
        #expect(Emulator().step(state: &s, memory: memory, platform: TestPlatform()) == .injectException(ExceptionInjection(vector: .breakpoint), changes: .registers))
        #expect(s.rip == 0)
    }

    @Test func clacAndStac() {
        var (r, m, _) = step([0x0F, 0x01, 0xCB]) { $0.state.rflags = RFlags.reserved1 }
        #expect(r == .completed(changes: .registers))
        #expect(m.state.rflags == RFlags.reserved1 | RFlags.alignmentCheck)
        #expect(m.state.rip == LongModeMachine.codeBase + 3)
        (r, m, _) = step([0x0F, 0x01, 0xCA]) { $0.state.rflags |= RFlags.alignmentCheck | RFlags.carry }
        #expect(r == .completed(changes: .registers))
        #expect(m.state.rflags == RFlags.reserved1 | RFlags.carry)
        // CPL 3, missing SMAP, real mode: #UD.
        (r, _, _) = step([0x0F, 0x01, 0xCA], cpl: 3)
        #expect(r == .injectException(UD, changes: []))
        (r, _, _) = step([0x0F, 0x01, 0xCA], emulator: Emulator(configuration: EmulatorConfiguration(guestFeatures: CPUFeatures.all.subtracting(.smap))))
        #expect(r == .injectException(UD, changes: []))
        let memory = TestMemory(size: 0x10000)
        var s = CPUState()
        memory.store([0x0F, 0x01, 0xCB], at: 0)
        #expect(Emulator().step(state: &s, memory: memory, platform: TestPlatform()) == .injectException(UD, changes: []))
        // F3 0F 01 CA is a different instruction (ERETU): not emulated.
        (r, _, _) = step([0xF3, 0x0F, 0x01, 0xCA])
        guard case .unsupported = r else { Issue.record("\(r)"); return }
    }

    @Test func fwait() {
        var (r, m, _) = step([0x9B])
        #expect(r == .completed(changes: .registers))
        #expect(m.state.rip == LongModeMachine.codeBase + 1)
        (r, _, _) = step([0x9B]) { $0.state.cr0 |= CR0.taskSwitched }  // MP is set in the test state
        #expect(r == .injectException(ExceptionInjection(vector: .deviceNotAvailable), changes: []))
        (r, _, _) = step([0x9B]) { $0.state.cr0 = ($0.state.cr0 | CR0.taskSwitched) & ~CR0.monitorCoprocessor }
        #expect(r == .completed(changes: .registers))
        (r, _, _) = step([0x9B]) { $0.state.fsw = 0x80 }
        #expect(r == .injectException(ExceptionInjection(vector: .x87FloatingPoint), changes: []))
    }

    @Test func ldmxcsrAndStmxcsr() {
        // ldmxcsr [rax]
        var (r, m, _) = step([0x0F, 0xAE, 0x10]) { m in
            m.state.gpr[.rax] = LongModeMachine.dataBase
            m.memory.store32(0x9FC0, at: m.dataPhysical(LongModeMachine.dataBase))
        }
        #expect(r == .completed(changes: [.registers, .fpu]))
        #expect(m.state.mxcsr == 0x9FC0)
        // Reserved bits → #GP(0), MXCSR unchanged.
        (r, m, _) = step([0x0F, 0xAE, 0x10]) { m in
            m.state.gpr[.rax] = LongModeMachine.dataBase
            m.memory.store32(0x1_1F80, at: m.dataPhysical(LongModeMachine.dataBase))
        }
        #expect(r == .injectException(GP0, changes: []))
        #expect(m.state.mxcsr == 0x1F80)
        // DAZ (bit 6) is refused where the mask says the CPU lacks it.
        (r, _, _) = step([0x0F, 0xAE, 0x10], emulator: Emulator(configuration: EmulatorConfiguration(mxcsrMask: 0xFFBF))) { m in
            m.state.gpr[.rax] = LongModeMachine.dataBase
            m.memory.store32(0x1FC0, at: m.dataPhysical(LongModeMachine.dataBase))
        }
        #expect(r == .injectException(GP0, changes: []))
        // stmxcsr [rax+4]
        (r, m, _) = step([0x0F, 0xAE, 0x58, 0x04]) { m in
            m.state.gpr[.rax] = LongModeMachine.dataBase
            m.state.mxcsr = 0x1234
        }
        #expect(r == .completed(changes: .registers))
        #expect(m.memory.load32(m.dataPhysical(LongModeMachine.dataBase + 4)) == 0x1234)
        // Register form does not exist (that is LFENCE-space / #UD territory): not LDMXCSR.
        (r, _, _) = step([0x0F, 0xAE, 0xD0])
        guard case .unsupported = r else { Issue.record("\(r)"); return }
        // CR0.TS → #NM; unmapped operand → #PF with W for the store.
        (r, _, _) = step([0x0F, 0xAE, 0x10]) { $0.state.cr0 |= CR0.taskSwitched }
        #expect(r == .injectException(ExceptionInjection(vector: .deviceNotAvailable), changes: []))
        (r, _, _) = step([0x0F, 0xAE, 0x18]) { $0.state.gpr[.rax] = 0x7000_0000 }
        #expect(r == .injectException(ExceptionInjection(vector: .pageFault, errorCode: 2, payload: 0x7000_0000), changes: .specialRegisters))
    }

    @Test func endbrAndUndefined() {
        var (r, m, _) = step([0xF3, 0x0F, 0x1E, 0xFA])
        #expect(r == .completed(changes: .registers))
        #expect(m.state.rip == LongModeMachine.codeBase + 4)
        (r, m, _) = step([0xF3, 0x0F, 0x1E, 0xFB])
        #expect(r == .completed(changes: .registers))
        for code: [UInt8] in [[0x0F, 0x0B], [0x0F, 0xB9, 0x00], [0x0F, 0xFF, 0xC1], [0x0F, 0x04], [0x06], [0xD6]] {
            (r, m, _) = step(code)
            #expect(r == .injectException(UD, changes: []), "\(code)")
            #expect(m.state.rip == LongModeMachine.codeBase)
        }
    }

    @Test func rdtscpAndRdpid() {
        var (r, m, _) = step([0x0F, 0x01, 0xF9]) { m in
            m.platform.tsc = 0xAABB_CCDD_1122_3344
            m.platform.msrs[MSRIndex.tscAux] = 0x1_0000_0007
            m.state.gpr[.rax] = ~0
            m.state.gpr[.rcx] = ~0
            m.state.gpr[.rdx] = ~0
        }
        #expect(r == .completed(changes: .registers))
        #expect(m.state.gpr[.rax] == 0x1122_3344)
        #expect(m.state.gpr[.rdx] == 0xAABB_CCDD)
        #expect(m.state.gpr[.rcx] == 7)
        // CR4.TSD at CPL 3 → #GP(0).
        (r, _, _) = step([0x0F, 0x01, 0xF9], cpl: 3) { m in
            m.state.cr4 |= CR4.timeStampDisable
            m.platform.msrs[MSRIndex.tscAux] = 1
        }
        #expect(r == .injectException(GP0, changes: []))
        // No TSC_AUX available → stop, not a guess.
        (r, _, _) = step([0x0F, 0x01, 0xF9])
        guard case .unsupported = r else { Issue.record("\(r)"); return }
        // rdpid r13 (64-bit operand in 64-bit mode).
        (r, m, _) = step([0xF3, 0x41, 0x0F, 0xC7, 0xFD]) { m in m.platform.msrs[MSRIndex.tscAux] = 0x1234_5678_9ABC }
        #expect(r == .completed(changes: .registers))
        #expect(m.state.gpr[.r13] == 0x1234_5678_9ABC)
        // rdpid with a memory operand does not exist.
        (r, _, _) = step([0xF3, 0x0F, 0xC7, 0x38]) { m in m.platform.msrs[MSRIndex.tscAux] = 1 }
        guard case .unsupported = r else { Issue.record("\(r)"); return }
    }

    @Test func fsAndGsBase() {
        let enable: (inout LongModeMachine) -> Void = { $0.state.cr4 |= CR4.fsgsbase }
        // wrfsbase rbx; rdgsbase eax; wrgsbase r12 with a non-canonical value.
        var (r, m, _) = step([0xF3, 0x48, 0x0F, 0xAE, 0xD3]) { m in enable(&m); m.state.gpr[.rbx] = 0x7FFF_1234_5000 }
        #expect(r == .completed(changes: [.registers, .specialRegisters]))
        #expect(m.state.fs.base == 0x7FFF_1234_5000)
        (r, m, _) = step([0xF3, 0x0F, 0xAE, 0xC8]) { m in enable(&m); m.state.gs.base = 0xFFFF_8880_1234_5678; m.state.gpr[.rax] = ~0 }
        #expect(r == .completed(changes: .registers))
        #expect(m.state.gpr[.rax] == 0x1234_5678)
        (r, m, _) = step([0xF3, 0x49, 0x0F, 0xAE, 0xDC]) { m in enable(&m); m.state.gpr[.r12] = 0x0000_8000_0000_0000 }
        #expect(r == .injectException(GP0, changes: []))
        // wrgsbase with a 32-bit operand zero-extends.
        (r, m, _) = step([0xF3, 0x0F, 0xAE, 0xD9]) { m in enable(&m); m.state.gpr[.rcx] = 0xFFFF_FFFF_8000_0000 }
        #expect(r == .completed(changes: [.registers, .specialRegisters]))
        #expect(m.state.gs.base == 0x8000_0000)
        // Without CR4.FSGSBASE: #UD.
        (r, _, _) = step([0xF3, 0x48, 0x0F, 0xAE, 0xC0])
        #expect(r == .injectException(UD, changes: []))
    }

    @Test func swapgs() {
        var (r, m, _) = step([0x0F, 0x01, 0xF8]) { m in
            m.state.gs.base = 0x1111
            m.platform.msrs[MSRIndex.kernelGSBase] = 0xFFFF_8880_0000_2222
        }
        #expect(r == .completed(changes: [.registers, .specialRegisters]))
        #expect(m.state.gs.base == 0xFFFF_8880_0000_2222)
        #expect(m.platform.msrs[MSRIndex.kernelGSBase] == 0x1111)
        (r, _, _) = step([0x0F, 0x01, 0xF8], cpl: 3) { m in m.platform.msrs[MSRIndex.kernelGSBase] = 0 }
        #expect(r == .injectException(GP0, changes: []))
        // Outside 64-bit mode: #UD.
        let memory = TestMemory(size: 0x10000)
        var s = CPUState.protected32()
        memory.store([0x0F, 0x01, 0xF8], at: 0)
        #expect(Emulator().step(state: &s, memory: memory, platform: TestPlatform()) == .injectException(UD, changes: []))
    }

    @Test func xgetbv() {
        var (r, m, _) = step([0x0F, 0x01, 0xD0]) { m in
            m.state.cr4 |= CR4.osxsave
            m.state.xcr0 = 0x2_0000_0007
            m.state.gpr[.rcx] = 0xFFFF_FFFF_0000_0000
        }
        #expect(r == .completed(changes: .registers))
        #expect(m.state.gpr[.rax] == 7)
        #expect(m.state.gpr[.rdx] == 2)
        (r, m, _) = step([0x0F, 0x01, 0xD0]) { m in m.state.cr4 |= CR4.osxsave; m.state.gpr[.rcx] = 1 }
        #expect(r == .injectException(GP0, changes: []))
        (r, m, _) = step([0x0F, 0x01, 0xD0])
        #expect(r == .injectException(UD, changes: []))
    }

    @Test func sysret() {
        // sysretq: RIP = RCX, RFLAGS = R11 (masked), CS = STAR[63:48]+16 | 3, SS = STAR[63:48]+8 | 3.
        var (r, m, _) = step([0x48, 0x0F, 0x07]) { m in
            m.platform.msrs[MSRIndex.star] = 0x0023_0010_0000_0000
            m.state.gpr[.rcx] = 0x7FFF_0000_1234
            m.state.gpr[.r11] = 0x246 | RFlags.resume | RFlags.virtual8086
        }
        #expect(r == .completed(changes: [.registers, .specialRegisters]))
        #expect(m.state.rip == 0x7FFF_0000_1234)
        #expect(m.state.rflags == 0x246)
        #expect(m.state.cs.selector == 0x33 && m.state.cs.long && m.state.cs.dpl == 3)
        #expect(m.state.ss.selector == 0x2B && m.state.ss.dpl == 3)
        #expect(m.state.cpl == 3)
        #expect(m.state.mode == .long64)
        // sysretl returns to 32-bit compatibility mode with EIP = ECX.
        (r, m, _) = step([0x0F, 0x07]) { m in
            m.platform.msrs[MSRIndex.star] = 0x0023_0010_0000_0000
            m.state.gpr[.rcx] = 0xFFFF_FFFF_0804_8000
            m.state.gpr[.r11] = 0x202
        }
        #expect(r == .completed(changes: [.registers, .specialRegisters]))
        #expect(m.state.rip == 0x0804_8000)
        #expect(m.state.cs.selector == 0x23 && !m.state.cs.long && m.state.cs.defaultBig)
        #expect(m.state.mode == .compatibility(bits: 32))
        // Non-canonical RCX (Intel behaviour: #GP(0) in ring 0), CPL 3, no EFER.SCE.
        (r, _, _) = step([0x48, 0x0F, 0x07]) { m in
            m.platform.msrs[MSRIndex.star] = 0x0023_0010_0000_0000
            m.state.gpr[.rcx] = 0x8000_0000_0000_0000
        }
        #expect(r == .injectException(GP0, changes: []))
        (r, _, _) = step([0x48, 0x0F, 0x07], cpl: 3) { m in m.platform.msrs[MSRIndex.star] = 0 }
        #expect(r == .injectException(GP0, changes: []))
        (r, _, _) = step([0x48, 0x0F, 0x07]) { m in m.state.efer &= ~EFER.syscallEnable }
        #expect(r == .injectException(UD, changes: []))
    }

    @Test func singleStepAndResumeFlag() {
        // With TF set, a completed instruction is followed by a #DB trap (DR6.BS); RF is cleared.
        let (r, m, _) = step([0xF3, 0x0F, 0x1E, 0xFA]) { m in m.state.rflags |= RFlags.trap | RFlags.resume }
        #expect(r == .injectException(ExceptionInjection(vector: .debug, payload: 0x4000), changes: .registers))
        #expect(m.state.rip == LongModeMachine.codeBase + 4)
        #expect(m.state.rflags & RFlags.resume == 0)
    }

    @Test func statisticsCountMnemonicsAndOutcomes() {
        let emulator = Emulator()
        _ = step([0xCC], emulator: emulator)
        _ = step([0xCC], emulator: emulator)
        _ = step([0x0F, 0x01, 0xCB], emulator: emulator)
        _ = step([0x0F, 0x0B], emulator: emulator)
        _ = step([0x0F, 0x05], emulator: emulator)  // syscall: not emulated
        let s = emulator.statistics()
        #expect(s.instructions == ["int3": 2, "stac": 1, "ud2": 1])
        #expect(s.exceptions == ["#BP": 2, "#UD": 1])
        #expect(s.unsupported == 1)
        #expect(s.summary == "int3 2, stac 1, ud2 1; exceptions #BP 2, #UD 1; unsupported 1")
    }
}
