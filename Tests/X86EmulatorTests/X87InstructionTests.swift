import Testing
@testable import X86Emulator

/// FNCLEX, FNINIT, EMMS and FILD m32int: the x87 sequence Linux runs on AMD CPUs
/// (fnclex; emms; fildl) and at FPU initialisation.
@Suite struct X87InstructionTests {
    func step(_ code: [UInt8], _ configure: (inout LongModeMachine) -> Void = { _ in }) -> (EmulationResult, LongModeMachine) {
        var m = LongModeMachine(cpl: 0)
        m.place(code)
        configure(&m)
        let r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        return (r, m)
    }

    @Test func fnclexClearsExceptionFlagsOnly() {
        let (r, m) = step([0xDB, 0xE2]) { $0.state.fsw = 0xFFFF }
        #expect(r == .completed(changes: [.registers, .fpu]))
        #expect(m.state.fsw == 0x7F00)  // C0–C3 and TOP kept; IE..PE, SF, ES, B cleared
        #expect(m.state.rip == LongModeMachine.codeBase + 2)
    }

    @Test func fninitResetsControlStatusTagsAndPointers() {
        let (r, m) = step([0xDB, 0xE3]) { s in
            s.state.fcw = 0x1234
            s.state.fsw = 0x3800
            s.state.ftwx = 0xFF
            s.state.fip = 7
            s.state.fdp = 9
            s.state.fop = 3
        }
        #expect(r == .completed(changes: [.registers, .fpu]))
        #expect(m.state.fcw == 0x037F && m.state.fsw == 0 && m.state.ftwx == 0)
        #expect(m.state.fip == 0 && m.state.fdp == 0 && m.state.fop == 0)
    }

    @Test func emmsEmptiesTags() {
        let (r, m) = step([0x0F, 0x77]) { $0.state.ftwx = 0xA5 }
        #expect(r == .completed(changes: [.registers, .fpu]))
        #expect(m.state.ftwx == 0)
    }

    @Test(arguments: [Int32(0), 1, -1, 5, -5, 1000, Int32.max, Int32.min])
    func fildPushesTheExactValue(value: Int32) {
        let (r, m) = step([0xDB, 0x03]) { s in  // fild dword [rbx]
            s.state.gpr[.rbx] = LongModeMachine.dataBase
            s.memory.store((0..<4).map { UInt8(truncatingIfNeeded: UInt32(bitPattern: value) >> (8 * $0)) }, at: s.dataPhysical(LongModeMachine.dataBase))
            s.state.fsw = 0
            s.state.ftwx = 0
        }
        #expect(r == .completed(changes: [.registers, .fpu]))
        #expect((m.state.fsw >> 11) & 7 == 7, "TOP decremented")
        #expect(m.state.ftwx == 0x80, "physical register 7 valid")
        #expect(Self.decode(m.state.x87[0]) == Double(value))
        #expect(m.state.fdp == LongModeMachine.dataBase)
        #expect(m.state.fop == 0x303)  // (DB & 7) << 8 | ModRM 03
    }

    @Test func fildOntoAFullStackPushesIndefiniteWhenMasked() {
        let (r, m) = step([0xDB, 0x03]) { s in
            s.state.gpr[.rbx] = LongModeMachine.dataBase
            s.state.ftwx = 0xFF
        }
        #expect(r == .completed(changes: [.registers, .fpu]))
        #expect(m.state.x87[0] == [0, 0, 0, 0, 0, 0, 0, 0xC0, 0xFF, 0xFF])
        #expect(m.state.fsw & 0x41 == 0x41)  // IE and SF
    }

    @Test func x87InstructionsFaultWhenTheFPUIsNotAvailable() {
        for code: [UInt8] in [[0xDB, 0xE2], [0xDB, 0xE3], [0x0F, 0x77]] {
            let (r, _) = step(code) { $0.state.cr0 |= CR0.taskSwitched }
            #expect(r == .injectException(ExceptionInjection(vector: .deviceNotAvailable), changes: []), "\(code)")
        }
        let (r, _) = step([0x0F, 0x77]) { $0.state.cr0 |= CR0.emulation }
        #expect(r == .injectException(ExceptionInjection(vector: .invalidOpcode), changes: []))
    }

    /// An 80-bit extended value as a Double (exact for 32-bit integers).
    static func decode(_ bytes: [UInt8]) -> Double {
        var significand: UInt64 = 0
        for i in 0..<8 { significand |= UInt64(bytes[i]) << UInt64(8 * i) }
        let top = UInt16(bytes[8]) | UInt16(bytes[9]) << 8
        let exponent = Int(top & 0x7FFF)
        guard exponent != 0 || significand != 0 else { return 0 }
        let magnitude = Double(significand) * pow2(exponent - 16383 - 63)
        return top & 0x8000 != 0 ? -magnitude : magnitude
    }

    static func pow2(_ e: Int) -> Double {
        var r = 1.0
        if e >= 0 { for _ in 0..<e { r *= 2 } } else { for _ in 0..<(-e) { r /= 2 } }
        return r
    }
}
