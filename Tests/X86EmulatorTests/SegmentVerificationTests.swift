import Testing
@testable import X86Emulator

/// VERR/VERW against a GDT in guest memory: ZF per the SDM's checks, other flags untouched.
@Suite struct SegmentVerificationTests {
    /// A GDT at the data window: null, kernel code, kernel data, user data, execute-only code,
    /// readable conforming code, a TSS (system), user code.
    static let gdt: [UInt64] = [
        0,
        0x00AF_9B00_0000_FFFF,  // 0x08 64-bit code, DPL 0, readable
        0x00CF_9300_0000_FFFF,  // 0x10 data, DPL 0, writable
        0x00CF_F300_0000_FFFF,  // 0x18 data, DPL 3, writable
        0x00AF_9900_0000_FFFF,  // 0x20 code, DPL 0, execute-only
        0x00AF_9F00_0000_FFFF,  // 0x28 code, DPL 0, readable, conforming
        0x0000_8900_0000_0067,  // 0x30 available 64-bit TSS (S = 0)
        0x00CF_F100_0000_FFFF,  // 0x38 data, DPL 3, read-only
    ]

    /// Runs `verw`/`verr` on `selector` (in AX, or in memory at [rbx] when `memory`).
    func verify(_ selector: UInt16, write: Bool, cpl: UInt8 = 0, memory: Bool = false, zfBefore: Bool = false) -> (EmulationResult, CPUState) {
        var m = LongModeMachine(cpl: cpl)
        let ext: UInt8 = write ? 5 : 4
        m.place(memory ? [0x0F, 0x00, ext << 3 | 3] : [0x0F, 0x00, 0xC0 | ext << 3])
        for (i, d) in Self.gdt.enumerated() { m.memory.store64(d, at: m.dataPhysical(LongModeMachine.dataBase) + UInt64(8 * i)) }
        m.state.gdtBase = LongModeMachine.dataBase
        m.state.gdtLimit = UInt16(8 * Self.gdt.count - 1)
        m.memory.store([UInt8(selector & 0xFF), UInt8(selector >> 8)], at: m.dataPhysical(LongModeMachine.dataBase + 0x1000))
        m.state.gpr[.rbx] = LongModeMachine.dataBase + 0x1000
        m.state.gpr[.rax] = 0xFFFF_0000 | UInt64(selector)
        m.state.rflags = RFlags.reserved1 | RFlags.carry | RFlags.sign | (zfBefore ? RFlags.zero : 0)
        let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        return (r, m.state)
    }

    func zf(_ s: CPUState) -> Bool { s.rflags & RFlags.zero != 0 }

    @Test func verwOfTheKernelDataSegmentSetsZF() {
        // Linux's MDS idiom: verw [rip+mds_verw_sel] with __KERNEL_DS.
        let (r, s) = verify(0x10, write: true, memory: true)
        #expect(r == .completed(changes: .registers))
        #expect(zf(s))
        #expect(s.rflags & (RFlags.carry | RFlags.sign) == RFlags.carry | RFlags.sign, "other flags kept")
        #expect(s.rip == LongModeMachine.codeBase + 3)
    }

    @Test(arguments: [
        (UInt16(0x00), false, "null"), (0x08, false, "code"), (0x30, false, "system"), (0x38, false, "read-only"),
        (0x40, false, "beyond the limit"), (0x14, false, "LDT, none loaded"), (0x18, true, "user data"), (0x1B, true, "user data, RPL 3"),
    ])
    func verwAtCPL0(selector: UInt16, expected: Bool, what: String) {
        let (_, s) = verify(selector, write: true, zfBefore: !expected)
        #expect(zf(s) == expected, "\(what)")
    }

    @Test func verwRespectsPrivilege() {
        #expect(!zf(verify(0x10, write: true, cpl: 3, zfBefore: true).1), "kernel data at CPL 3")
        #expect(!zf(verify(0x13, write: true, cpl: 0, zfBefore: true).1), "kernel data with RPL 3")
        #expect(zf(verify(0x1B, write: true, cpl: 3).1), "user data at CPL 3")
    }

    @Test func verrChecksReadability() {
        #expect(zf(verify(0x08, write: false).1), "readable code")
        #expect(!zf(verify(0x20, write: false, zfBefore: true).1), "execute-only code")
        #expect(zf(verify(0x38, write: false).1), "read-only data")
        #expect(zf(verify(0x28, write: false, cpl: 3).1), "conforming readable code skips the privilege check")
        #expect(!zf(verify(0x08, write: false, cpl: 3, zfBefore: true).1), "non-conforming kernel code at CPL 3")
    }

    @Test func aGDTInAnUnmappedPageIsAPageFault() {
        var m = LongModeMachine(cpl: 0)
        m.place([0x0F, 0x00, 0xE8])  // verw ax
        m.state.gdtBase = 0x7FFF_0000
        m.state.gpr[.rax] = 0x10
        let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        guard case .injectException(let e, _) = r else {
            Issue.record("expected #PF, got \(r)")
            return
        }
        #expect(e.vector == .pageFault)
        #expect(m.state.rip == LongModeMachine.codeBase)
    }

    /// Hostile tables: random descriptors, selectors, GDT limits and LDTRs at every CPL. Each step
    /// completes and changes nothing but ZF and RIP.
    @Test func randomDescriptorsOnlyEverSetOrClearZF() {
        var rng = SeededGenerator(seed: 0x5E6_0000)
        for _ in 0..<2000 {
            let cpl = UInt8(rng.next() % 4)
            var m = LongModeMachine(cpl: cpl)
            m.place([0x0F, 0x00, (rng.next() & 1 == 0) ? 0xE8 : 0xE0])  // verw ax / verr ax
            let descriptor = rng.next()
            let selector = UInt16(truncatingIfNeeded: rng.next()) & 0x7F
            for i in 0..<16 { m.memory.store64(i == Int(selector >> 3) ? descriptor : rng.next(), at: m.dataPhysical(LongModeMachine.dataBase) + UInt64(8 * i)) }
            m.state.gdtBase = LongModeMachine.dataBase
            m.state.gdtLimit = UInt16(truncatingIfNeeded: rng.next() % 0x90)
            if rng.next() & 1 == 0 {
                m.state.ldtr = SegmentRegister(selector: 0x40, base: LongModeMachine.dataBase, limit: UInt32(rng.next() % 0x90), type: 2, codeOrData: false)
            }
            m.state.gpr[.rax] = UInt64(selector)
            var expected = m.state
            let flagsBefore = m.state.rflags
            let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
            #expect(r == .completed(changes: .registers), "descriptor 0x\(String(descriptor, radix: 16)) selector 0x\(String(selector, radix: 16))")
            expected.rip = LongModeMachine.codeBase + 3
            expected.rflags = m.state.rflags
            #expect(m.state == expected)
            #expect(m.state.rflags & ~RFlags.zero == flagsBefore & ~RFlags.zero)
        }
    }
}
