import Testing
@testable import X86Emulator

/// Hostile guests: random bytes, instructions running into unmapped pages, absurd prefixes,
/// page tables outside RAM, garbage segment state. Every case ends in a clean result.
@Suite struct HostileInputTests {
    /// Checks the contract of `step`: unsupported leaves the state alone; faults only set CR2;
    /// completions move RIP forward by the instruction length (SYSRET aside).
    func checkContract(_ r: EmulationResult, before: CPUState, after: CPUState, code: [UInt8]) {
        switch r {
        case .unsupported(let u):
            #expect(after == before, "unsupported changed the state: \(code)")
            #expect(u.bytes.count <= 15)
        case .injectException(let e, _) where e.vector != .breakpoint && e.vector != .debug:
            var expected = before
            if e.vector == .pageFault, let a = e.payload { expected.cr2 = a }
            #expect(differences(after, expected).isEmpty, "fault \(e) changed the state: \(code)")
        case .completed, .injectException:
            guard case .success(let i) = Decoder.decode(code, mode: before.mode) else {
                Issue.record("completed an undecodable instruction \(code)")
                return
            }
            #expect(i.length <= 15)
            let jumped = i.map == .map0F && i.opcode == 0x07
            if !jumped {
                #expect(after.rip == before.rip &+ UInt64(i.length) || before.mode != .long64, "\(code)")
            }
        }
    }

    /// Random states in a few modes over the same memory.
    func randomState(_ rng: inout SeededGenerator, _ machine: LongModeMachine) -> CPUState {
        var s: CPUState
        switch rng.next() % 5 {
        case 0, 1:
            s = machine.state
            if rng.next() % 3 == 0 {
                s.ss.dpl = 3
                s.cs.dpl = 3
            }
        case 2:
            s = CPUState.protected32()
            s.rip = LongModeMachine.codeBase
            s.cr4 |= rng.next() & 1 == 0 ? CR4.fsgsbase : 0
        case 3:
            s = CPUState()
            s.cs = .realMode(selector: 0x3000, code: true)
            s.rip = rng.next() & 0xFFFF
        default:
            // Compatibility mode, or protected mode with garbage segments.
            s = machine.state
            s.cs.long = false
            s.cs.defaultBig = rng.next() & 1 == 0
            if rng.next() & 1 == 0 {
                s.efer = 0
                s.cr0 &= ~CR0.paging
                s.ds = SegmentRegister(selector: UInt16(truncatingIfNeeded: rng.next()), base: rng.next() & 0xFFFF_FFFF,
                                       limit: UInt32(truncatingIfNeeded: rng.next()), type: UInt8(truncatingIfNeeded: rng.next()),
                                       present: rng.next() & 1 == 0, dpl: UInt8(truncatingIfNeeded: rng.next()) & 3,
                                       defaultBig: rng.next() & 1 == 0, unusable: rng.next() % 4 == 0)
                s.ss = s.ds
                s.rip = LongModeMachine.codeBase
            }
        }
        for i in 0..<16 {
            // Registers mostly point into the data area so memory operands sometimes hit mapped memory.
            s.gpr[i] = rng.next() % 4 == 0 ? rng.next() : LongModeMachine.dataBase + rng.next() % 0x3000
        }
        s.rflags = RFlags.reserved1 | (rng.next() & (RFlags.arithmetic | RFlags.alignmentCheck | RFlags.direction))
        s.mxcsr = rng.next() % 8 == 0 ? UInt32(truncatingIfNeeded: rng.next()) : 0x1F80
        if rng.next() % 8 == 0 { s.cr0 |= CR0.taskSwitched }
        if rng.next() % 8 == 0 { s.cr4 |= CR4.smap | CR4.smep }
        return s
    }

    /// Byte sequences that start like instructions the emulator knows, with random prefixes and operands.
    static let skeletons: [[UInt8]] = InstructionTable.allForms.map { form in
        var b: [UInt8] = []
        if case .exactly(let p) = form.prefix, let byte = p.byte { b.append(byte) }
        b += form.map.escapeBytes + [form.opcode]
        if let e = form.modRM.exactByte { b.append(e) } else if let r = form.modRM.reg { b.append(r << 3 | (form.modRM.kind == .registerOnly ? 0xC0 : 0)) }
        return b
    }

    func randomCode(_ rng: inout SeededGenerator) -> [UInt8] {
        let prefixes: [UInt8] = [0x66, 0x67, 0xF2, 0xF3, 0xF0, 0x2E, 0x3E, 0x26, 0x64, 0x65, 0x36, 0x40, 0x48, 0x4C, 0x41, 0x45]
        var code: [UInt8] = []
        switch rng.next() % 4 {
        case 0:
            code = rng.bytes(15)
        default:
            let count = rng.next() % 4 == 0 ? Int(rng.next() % 16) : Int(rng.next() % 3)
            for _ in 0..<count { code.append(prefixes[Int(rng.next() % UInt64(prefixes.count))]) }
            code += Self.skeletons[Int(rng.next() % UInt64(Self.skeletons.count))]
            code += rng.bytes(15)
        }
        return Array(code.prefix(15))
    }

    @Test func randomBytesAtRIPGiveCleanResults() {
        var rng = SeededGenerator(seed: 0xF022)
        let machine = LongModeMachine()
        machine.platform.msrs[MSRIndex.tscAux] = 1
        machine.platform.msrs[MSRIndex.kernelGSBase] = 0
        machine.platform.msrs[MSRIndex.star] = 0x0023_0010_0000_0000
        let emulator = Emulator()
        var completed = 0
        var faults = 0
        var unsupported = 0
        for _ in 0..<20_000 {
            let code = randomCode(&rng)
            var state = randomState(&rng, machine)
            // Place the code where this state fetches from.
            let fetchPhysical: UInt64
            switch state.mode {
            case .long64, .compatibility: fetchPhysical = 0x20_0000
            case .real: fetchPhysical = (state.cs.base + state.rip) & 0xF_FFFF
            default: fetchPhysical = LongModeMachine.codeBase
            }
            machine.memory.store(code, at: fetchPhysical)
            let before = state
            let r = emulator.step(state: &state, memory: machine.memory, platform: machine.platform)
            checkContract(r, before: before, after: state, code: code)
            switch r {
            case .completed: completed += 1
            case .injectException: faults += 1
            case .unsupported: unsupported += 1
            }
        }
        // The mix reaches all three outcomes in quantity.
        #expect(completed > 1000 && faults > 1000 && unsupported > 1000, "\(completed) \(faults) \(unsupported)")
    }

    @Test func instructionRunningIntoAnUnmappedPage() {
        var m = LongModeMachine(cpl: 3)
        // The last byte of the second code page starts popcnt; the rest would be on the unmapped third page.
        let last = LongModeMachine.codeBase + 0x1FFF
        m.place([0xF3], at: last)
        m.state.rip = last
        let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        let next = LongModeMachine.codeBase + 0x2000
        // Not present, user, instruction fetch (NXE is on).
        #expect(r == .injectException(ExceptionInjection(vector: .pageFault, errorCode: 0x14, payload: next), changes: .specialRegisters))
        #expect(m.state.cr2 == next)
        #expect(m.state.rip == last)
        // A one-byte instruction at the same spot completes: the next page is never needed.
        m.place([0xCC], at: last)
        let r2 = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r2 == .injectException(ExceptionInjection(vector: .breakpoint), changes: .registers))
        #expect(m.state.rip == next)
    }

    @Test func instructionSpanningTwoMappedPages() {
        var m = LongModeMachine()
        // pxor xmm1, xmm2 split 2 + 2 across the first and second code pages.
        let start = LongModeMachine.codeBase + 0xFFE
        m.place([0x66, 0x0F, 0xEF, 0xCA], at: start)
        m.state.rip = start
        m.state.xmm[1] = XMMValue(low: 5, high: 6)
        m.state.xmm[2] = XMMValue(low: 1, high: 2)
        let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .completed(changes: [.registers, .fpu]))
        #expect(m.state.xmm[1] == XMMValue(low: 4, high: 4))
        #expect(m.state.rip == start + 4)
    }

    @Test func fetchFaultsAndLimits() {
        // RIP on a no-execute page.
        var m = LongModeMachine()
        m.state.rip = LongModeMachine.dataBase
        var r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .pageFault, errorCode: 0x11, payload: LongModeMachine.dataBase), changes: .specialRegisters))
        // Non-canonical RIP.
        m = LongModeMachine()
        m.state.rip = 0x0000_8000_0000_0000
        r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .generalProtection, errorCode: 0), changes: []))
        // 32-bit code segment limit cutting an instruction short.
        let memory = TestMemory(size: 0x10000)
        var s = CPUState.protected32()
        s.cs.limit = 0x1001
        s.rip = 0x1000
        memory.store([0x0F, 0x01, 0xCA], at: 0x1000)
        r = Emulator().step(state: &s, memory: memory, platform: TestPlatform())
        #expect(r == .injectException(ExceptionInjection(vector: .generalProtection, errorCode: 0), changes: []))
        // The same in real mode: no error code.
        var real = CPUState()
        real.cs.limit = 0x0001
        memory.store([0xF3, 0x0F, 0xB8, 0xC0], at: 0)
        r = Emulator().step(state: &real, memory: memory, platform: TestPlatform())
        #expect(r == .injectException(ExceptionInjection(vector: .generalProtection), changes: []))
    }

    @Test func fifteenByteLimit() {
        var m = LongModeMachine()
        // 14 prefixes + int3 = 15 bytes: fine.
        m.place([UInt8](repeating: 0x66, count: 14) + [0xCC])
        var r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .breakpoint), changes: .registers))
        #expect(m.state.rip == LongModeMachine.codeBase + 15)
        // 15 prefixes + int3 = 16 bytes: #GP(0).
        m = LongModeMachine()
        m.place([UInt8](repeating: 0x2E, count: 15) + [0xCC])
        r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .generalProtection, errorCode: 0), changes: []))
        // An SSE instruction made too long by prefixes and a displacement.
        m = LongModeMachine()
        m.place([0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x2E, 0x66, 0x0F, 0xEF, 0x84, 0x24, 0x00, 0x10, 0x00, 0x00])
        r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .generalProtection, errorCode: 0), changes: []))
    }

    @Test func lockPrefixRules() {
        var m = LongModeMachine()
        m.place([0xF0, 0x90])  // lock nop
        var r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .invalidOpcode), changes: []))
        m.place([0xF0, 0x01, 0x03])  // lock add [rbx], eax: valid, but not emulated
        r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        guard case .unsupported(let u) = r else { Issue.record("\(r)"); return }
        #expect(u.disassembly == "lock opcode 01 /0, [rbx]")
        m.place([0xF0, 0x01, 0xC3])  // lock add ebx, eax: register destination
        r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .invalidOpcode), changes: []))
    }

    @Test func pageTablesOutsideRAM() {
        var m = LongModeMachine()
        m.state.cr3 = 0x7000_0000  // beyond the 8 MiB of RAM
        let before = m.state
        let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        guard case .unsupported(let u) = r else { Issue.record("\(r)"); return }
        #expect(u.reason.contains("outside guest RAM"))
        #expect(u.bytes.isEmpty)
        #expect(m.state == before)
        #expect(u.description.contains("RIP 0x400000 (64-bit mode)"))
    }

    @Test func dataOutsideRAMStops() {
        // A data page mapped to a guest-physical address with no RAM (think MMIO).
        var m = LongModeMachine()
        m.tables.map(0x70_0000, to: 0xFEC0_0000, flags: PTE.rw)
        m.place([0xF3, 0x0F, 0xB8, 0x03])  // popcnt eax, [rbx]
        m.state.gpr[.rbx] = 0x70_0000
        let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        guard case .unsupported(let u) = r else { Issue.record("\(r)"); return }
        #expect(u.reason.contains("0xfec00000"))
        #expect(u.disassembly == "popcnt eax, dword [rbx]")
    }

    @Test func vectorEncodingsAreRefused() {
        for code: [UInt8] in [[0xC5, 0xF9, 0xEF, 0xC1], [0xC4, 0xE2, 0x79, 0x00, 0xC1], [0x62, 0xF1, 0x7D, 0x48, 0xEF, 0xC1], [0x8F, 0xE8, 0x78, 0xC2, 0xC1, 0x01], [0x0F, 0x0F, 0xC1, 0xB4]] {
            var m = LongModeMachine()
            m.place(code)
            let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
            guard case .unsupported(let u) = r else { Issue.record("\(code): \(r)"); continue }
            #expect(u.reason.contains("not emulated"))
        }
        // In 32-bit mode C5 with a memory ModRM is LDS, not VEX.
        #expect(Disassembler.describe(bytes: [0xC5, 0x03], mode: .protected(bits: 32)) == "opcode c5 /0, [ebx]")
    }

    @Test func memoryThatRefusesEveryAccess() {
        struct NoMemory: GuestPhysicalMemory {
            func read(_ address: UInt64, _ buffer: UnsafeMutableRawBufferPointer) -> Bool { false }
            func write(_ address: UInt64, _ buffer: UnsafeRawBufferPointer) -> Bool { false }
        }
        var rng = SeededGenerator(seed: 9)
        let emulator = Emulator()
        let machine = LongModeMachine()
        for _ in 0..<500 {
            var s = randomState(&rng, machine)
            let before = s
            let r = emulator.step(state: &s, memory: NoMemory(), platform: TestPlatform())
            switch r {
            case .unsupported: #expect(s == before)
            case .injectException(let e, _): #expect(e.vector == .generalProtection || e.vector == .pageFault)
            case .completed: Issue.record("completed without memory")
            }
        }
    }
}
