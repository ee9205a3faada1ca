import CX86Host
import Testing
@testable import X86Emulator

/// A BLAKE2s-style SSE sequence (loads, RIP-relative constants, rotations by shifts and PSHUFB,
/// shuffles, stores, PMOVMSKB, PTEST) run instruction by instruction through the emulator and
/// natively on the host; registers, flags and memory must end up identical.
@Suite struct SSEProgramTests {
    @Test func blake2sStyleSequenceMatchesNativeRun() throws {
        let program = AssembledFixtures.sseProgram
        var rng = SeededGenerator(seed: 0xB1A4E)
        let emulator = Emulator()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 64)
        defer { buffer.deallocate() }
        for round in 0..<25 {
            // Random XMM state and 128 bytes of message/output memory.
            let input = rng.bytes(256)
            let message = rng.bytes(128)

            // Native run: XMM0-15 in, XMM0-15, RAX and RFLAGS out.
            var native = input + [UInt8](repeating: 0, count: 16)
            buffer.copyMemory(from: message, byteCount: 128)
            let rc = program.bytes.withUnsafeBufferPointer { code in
                native.withUnsafeMutableBufferPointer { cx86_run_program(code.baseAddress, code.count, $0.baseAddress, buffer) }
            }
            try #require(rc == 0)
            let nativeMemory = (0..<128).map { buffer.load(fromByteOffset: $0, as: UInt8.self) }

            // Emulated run of `block`, one instruction per step, up to its RET.
            var m = LongModeMachine()
            m.place(program.bytes)
            m.memory.store(message, at: m.dataPhysical(LongModeMachine.dataBase))
            for i in 0..<16 { m.state.xmm[i] = XMMValue(bytes: input[(16 * i)..<(16 * i + 16)]) }
            m.state.rip = LongModeMachine.codeBase + UInt64(program.block)
            m.state.gpr[.rdi] = LongModeMachine.dataBase
            m.state.gpr[.rax] = 0
            let end = LongModeMachine.codeBase + UInt64(program.blockEnd)
            var steps = 0
            while m.state.rip != end && steps < 100 {
                let r = emulator.step(state: &m.state, memory: m.memory, platform: m.platform)
                guard case .completed = r else {
                    Issue.record("round \(round), step \(steps) at \(hex(m.state.rip)): \(r)")
                    return
                }
                steps += 1
            }
            #expect(m.state.rip == end)
            for i in 0..<16 {
                #expect(m.state.xmm[i] == XMMValue(bytes: native[(16 * i)..<(16 * i + 16)]), "round \(round): xmm\(i)")
            }
            #expect(m.state.gpr[.rax] == littleEndian(Array(native[256..<264])))
            let nativeFlags = littleEndian(Array(native[264..<272]))
            #expect(m.state.rflags & RFlags.arithmetic == nativeFlags & RFlags.arithmetic)
            #expect(m.memory.load(m.dataPhysical(LongModeMachine.dataBase), count: 128) == nativeMemory, "round \(round)")
        }
        #expect(emulator.statistics().instructions["pshufb"] == 50)
    }
}
