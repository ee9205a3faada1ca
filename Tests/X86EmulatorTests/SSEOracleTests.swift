import CX86Host
import Testing
@testable import X86Emulator

/// Allow-listed SSE instructions run through the emulator (decode, operand fetch, re-encoding,
/// host re-execution, write-back) against the same operations compiled natively by the C compiler.
@Suite struct SSEOracleTests {
    static let memoryLinear: UInt64 = LongModeMachine.dataBase + 0x40

    @Test(arguments: AssembledFixtures.sseOracle)
    func matchesNativeExecution(_ c: SSEOracleCase) throws {
        var rng = SeededGenerator(seed: UInt64(c.op) &* 7919 &+ UInt64(c.immediate ?? 0))
        let emulator = Emulator()
        for round in 0..<12 {
            var m = LongModeMachine()
            m.place(c.bytes)
            for i in 0..<16 {
                let v = rng.xmm()
                m.state.xmm[i] = XMMValue(low: v.low, high: v.high)
                m.state.gpr[i] = rng.next()
            }
            if c.op == CX86_PCMPISTRI_I {
                // Short strings over a small alphabet so matches and terminators occur.
                for i in 0..<16 { m.state.xmm[i] = XMMValue(bytes: (0..<16).map { _ in [0, 0x61, 0x62, 0x63][Int.random(in: 0..<4, using: &rng)] }) }
            }
            if round % 3 == 0 {
                // Equal operands exercise the "all equal" paths (PCMPEQ, PTEST, COMISS).
                if let s = c.xmmSource { m.state.xmm[s] = m.state.xmm[c.xmmDestination] }
            }
            m.state.rflags = RFlags.reserved1 | (rng.next() & RFlags.arithmetic)
            // [rdx+rsi*2+0x30] = memoryLinear, 16-byte aligned.
            m.state.gpr[.rsi] = 8
            m.state.gpr[.rdx] = Self.memoryLinear - 0x40
            let memoryBytes = rng.bytes(16)
            m.memory.store(memoryBytes, at: m.dataPhysical(Self.memoryLinear))
            let before = m.state

            let result = emulator.step(state: &m.state, memory: m.memory, platform: m.platform)
            guard case .completed = result else {
                Issue.record("\(c.source): \(result)")
                return
            }
            #expect(m.state.rip == before.rip + UInt64(c.bytes.count))

            // The oracle.
            let dst = before.xmm[c.xmmDestination].bytes
            let src = c.memory ? memoryBytes : (c.xmmSource.map { before.xmm[$0].bytes } ?? [UInt8](repeating: 0, count: 16))
            let gprIn = c.gpr.map { before.gpr[$0] } ?? 0
            var out = [UInt8](repeating: 0, count: 16)
            var gprOut: UInt64 = 0
            var flags: UInt64 = 0
            let rc = cx86_sse(Int32(c.op), dst, src, gprIn, UInt8(c.immediate ?? 0), &out, &gprOut, &flags)
            try #require(rc == 0, "oracle refused \(c.source)")

            var expected = before
            switch c.op {
            case CX86_PMOVMSKB_G, CX86_MOVD_FROM_XMM_G, CX86_MOVQ_FROM_XMM_G, CX86_PEXTRW_GI:
                expected.gpr[c.gpr ?? 0] = gprOut
            case CX86_PTEST, CX86_COMISS, CX86_UCOMISD:
                expected.rflags = (before.rflags & ~RFlags.arithmetic) | (flags & RFlags.arithmetic)
            case CX86_PCMPISTRI_I:
                expected.rflags = (before.rflags & ~RFlags.arithmetic) | (flags & RFlags.arithmetic)
                expected.gpr[.rcx] = gprOut
            default:
                expected.xmm[c.xmmDestination] = XMMValue(bytes: out)
            }
            expected.rip = m.state.rip
            expected.mxcsr = m.state.mxcsr  // status flags of FP forms are not compared
            let diff = differences(m.state, expected)
            #expect(diff.isEmpty, "\(c.source) round \(round): \(diff)")
            #expect(m.memory.load(m.dataPhysical(Self.memoryLinear), count: 16) == memoryBytes, "\(c.source) changed memory")
        }
    }
}
