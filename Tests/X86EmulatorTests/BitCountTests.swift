import CX86Host
import Testing
@testable import X86Emulator

/// POPCNT, LZCNT and TZCNT against the host CPU: results, upper register bits and flags.
@Suite struct BitCountTests {
    static let ops: [(name: String, oracle: Int32, opcode: UInt8)] = [
        ("popcnt", Int32(CX86_POPCNT), 0xB8), ("lzcnt", Int32(CX86_LZCNT), 0xBD), ("tzcnt", Int32(CX86_TZCNT), 0xBC),
    ]

    static let hostIsAMD: Bool = {
        var vendor = [CChar](repeating: 0, count: 13)
        cx86_vendor(&vendor)
        return String(decoding: vendor.prefix(12).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "AuthenticAMD"
    }()

    /// Flags the SDM defines for the operation (all six for POPCNT; CF and ZF for LZCNT/TZCNT).
    /// The emulator sets the undefined ones as AMD processors do, so on AMD hosts all six are compared.
    static func comparedFlags(_ name: String) -> UInt64 {
        if name == "popcnt" || hostIsAMD { return RFlags.arithmetic }
        return RFlags.carry | RFlags.zero
    }

    /// Instruction bytes: [66] F3 [REX] 0F op ModRM [SIB disp8]; memory operand [rbx+rcx*4+0x10].
    static func encode(opcode: UInt8, size: Int, reg: Int, rm: Int?, long: Bool) -> [UInt8] {
        var b: [UInt8] = size == 2 ? [0x66, 0xF3] : [0xF3]
        var rex: UInt8 = size == 8 ? 0x48 : 0
        if reg >= 8 { rex |= 0x44 }
        if let rm, rm >= 8 { rex |= 0x41 }
        if long && rex != 0 { b.append(rex) }
        b += [0x0F, opcode]
        if let rm {
            b.append(0xC0 | UInt8(reg & 7) << 3 | UInt8(rm & 7))
        } else {
            b += [0x44 | UInt8(reg & 7) << 3, 0x8B, 0x10]
        }
        return b
    }

    static func interestingValue(_ rng: inout SeededGenerator) -> UInt64 {
        switch rng.next() % 6 {
        case 0: return 0
        case 1: return ~0
        case 2: return 1 << (rng.next() % 64)
        case 3: return rng.next() >> (rng.next() % 64)
        case 4: return rng.next() << (rng.next() % 64)
        default: return rng.next()
        }
    }

    @Test(arguments: ops.map(\.name), [2, 4, 8])
    func matchesHostCPU(_ name: String, _ size: Int) throws {
        let op = try #require(Self.ops.first { $0.name == name })
        var rng = SeededGenerator(seed: UInt64(op.opcode) << 8 | UInt64(size))
        let emulator = Emulator()
        let compared = Self.comparedFlags(name)
        for round in 0..<400 {
            var m = LongModeMachine()
            let reg = Int(rng.next() % 16)
            let useMemory = round % 3 == 0
            let rm = useMemory ? nil : Int(rng.next() % 16)
            m.place(Self.encode(opcode: op.opcode, size: size, reg: reg, rm: rm, long: true))
            for i in 0..<16 { m.state.gpr[i] = rng.next() }
            let source = Self.interestingValue(&rng)
            if let rm {
                m.state.gpr[rm] = source
            } else {
                m.state.gpr[.rbx] = LongModeMachine.dataBase + 0x100
                m.state.gpr[.rcx] = rng.next() % 64
                if reg == GPR.rbx.rawValue || reg == GPR.rcx.rawValue { continue }
                m.memory.store64(source, at: m.dataPhysical(LongModeMachine.dataBase + 0x110 + 4 * m.state.gpr[.rcx]))
            }
            let flagsIn = rng.next() & RFlags.arithmetic
            m.state.rflags = RFlags.reserved1 | flagsIn
            let before = m.state

            let r = emulator.step(state: &m.state, memory: m.memory, platform: m.platform)
            #expect(r == .completed(changes: .registers))

            let sourceValue = rm.map { before.gpr[$0] } ?? source
            var result: UInt64 = 0
            var flagsOut: UInt64 = 0
            try #require(cx86_bitcount(op.oracle, Int32(size), sourceValue, before.gpr[reg], flagsIn, &result, &flagsOut) == 0)
            #expect(m.state.gpr[reg] == result, "\(name)/\(size) of \(hex(sourceValue)): \(hex(m.state.gpr[reg])) vs host \(hex(result))")
            #expect(m.state.rflags & compared == flagsOut & compared,
                    "\(name)/\(size) of \(hex(sourceValue)) flags in \(hex(flagsIn)): \(hex(m.state.rflags)) vs host \(hex(flagsOut))")
            // Nothing else changed.
            var expected = before
            expected.gpr[reg] = m.state.gpr[reg]
            expected.rflags = m.state.rflags
            expected.rip = before.rip + UInt64(Self.encode(opcode: op.opcode, size: size, reg: reg, rm: rm, long: true).count)
            #expect(differences(m.state, expected).isEmpty)
        }
    }

    @Test func protectedModeForms() throws {
        var rng = SeededGenerator(seed: 32)
        let memory = TestMemory(size: 0x10000)
        for op in Self.ops {
            for size in [2, 4] {
                for _ in 0..<50 {
                    var s = CPUState.protected32()
                    s.rip = 0x1000
                    let reg = Int(rng.next() % 8)
                    let rm = Int(rng.next() % 8)
                    memory.store(Self.encode(opcode: op.opcode, size: size, reg: reg, rm: rm, long: false), at: 0x1000)
                    for i in 0..<8 { s.gpr[i] = rng.next() & 0xFFFF_FFFF }
                    let source = Self.interestingValue(&rng) & 0xFFFF_FFFF
                    s.gpr[rm] = source
                    let before = s
                    #expect(Emulator().step(state: &s, memory: memory, platform: TestPlatform()) == .completed(changes: .registers))
                    var result: UInt64 = 0
                    var flags: UInt64 = 0
                    try #require(cx86_bitcount(op.oracle, Int32(size), source, before.gpr[reg], 0, &result, &flags) == 0)
                    #expect(s.gpr[reg] == result)
                    #expect(s.rflags & Self.comparedFlags(op.name) == flags & Self.comparedFlags(op.name))
                }
            }
        }
    }

    @Test func faultsAndFeatureChecks() {
        // popcnt rax, [rbx+rcx*4+0x10] with the operand on an unmapped page.
        var m = LongModeMachine()
        let popcntMemory = Self.encode(opcode: 0xB8, size: 8, reg: 0, rm: nil, long: true)
        m.place(popcntMemory)
        m.state.gpr[.rbx] = 0x7000_0000
        m.state.gpr[.rcx] = 0
        var r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .pageFault, errorCode: 0, payload: 0x7000_0010), changes: .specialRegisters))
        #expect(m.state.cr2 == 0x7000_0010)
        #expect(m.state.rip == LongModeMachine.codeBase)

        // Non-canonical address → #GP(0); relative to RSP/RBP → #SS(0).
        m.state.gpr[.rbx] = 0x8000_0000_0000_0000
        r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .generalProtection, errorCode: 0), changes: []))
        m.place([0xF3, 0x48, 0x0F, 0xB8, 0x44, 0x24, 0x08])  // popcnt rax, [rsp+8]
        m.state.gpr[.rsp] = 0x0000_8000_0000_0000
        r = Emulator().step(state: &m.state, memory: m.memory, platform: m.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .stackFault, errorCode: 0), changes: []))

        // Alignment check at CPL 3 with CR0.AM and RFLAGS.AC.
        var user = LongModeMachine(cpl: 3)
        user.place([0xF3, 0x0F, 0xB8, 0x03])  // popcnt eax, [rbx]
        user.state.gpr[.rbx] = LongModeMachine.dataBase + 2
        user.state.cr0 |= CR0.alignmentMask
        user.state.rflags |= RFlags.alignmentCheck
        r = Emulator().step(state: &user.state, memory: user.memory, platform: user.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .alignmentCheck, errorCode: 0), changes: []))
        user.state.gpr[.rbx] = LongModeMachine.dataBase + 4
        r = Emulator().step(state: &user.state, memory: user.memory, platform: user.platform)
        #expect(r == .completed(changes: .registers))

        // Without the CPUID feature: #UD.
        var plain = LongModeMachine()
        plain.place([0xF3, 0x0F, 0xBD, 0xC1])
        r = Emulator(configuration: EmulatorConfiguration(guestFeatures: CPUFeatures.all.subtracting(.lzcnt)))
            .step(state: &plain.state, memory: plain.memory, platform: plain.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .invalidOpcode), changes: []))
        // LOCK: #UD.
        plain.place([0xF0, 0xF3, 0x0F, 0xB8, 0x03])
        r = Emulator().step(state: &plain.state, memory: plain.memory, platform: plain.platform)
        #expect(r == .injectException(ExceptionInjection(vector: .invalidOpcode), changes: []))
    }
}
