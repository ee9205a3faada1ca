import CX86Host
import Testing
@testable import X86Emulator

@Suite struct SmokeTests {
    @Test func popcntInLongMode() {
        var m = LongModeMachine()
        m.place([0xF3, 0x48, 0x0F, 0xB8, 0xC1])  // popcnt rax, rcx
        m.state.gpr[.rcx] = 0xF0F0
        let emulator = Emulator()
        let r = emulator.step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .completed(changes: .registers))
        #expect(m.state.gpr[.rax] == 8)
        #expect(m.state.rip == LongModeMachine.codeBase + 5)
    }

    @Test func pxorReexecutesOnHost() {
        var m = LongModeMachine()
        m.place([0x66, 0x41, 0x0F, 0xEF, 0xC1])  // pxor xmm0, xmm9
        m.state.xmm[0] = XMMValue(low: 0xFF00, high: 1)
        m.state.xmm[9] = XMMValue(low: 0x0FF0, high: 3)
        let emulator = Emulator()
        let r = emulator.step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .completed(changes: [.registers, .fpu]))
        #expect(m.state.xmm[0] == XMMValue(low: 0xF0F0, high: 2))
    }
}
