import Foundation
import Testing
@testable import X86Emulator

/// Decoder rules that fixtures from an assembler do not reach: prefix precedence, ignored REX,
/// segment defaults, effective addresses, truncation and the 15-byte limit.
@Suite struct DecoderTests {
    func decode(_ bytes: [UInt8], _ mode: ProcessorMode = .long64) -> DecodedInstruction? {
        if case .success(let i) = Decoder.decode(bytes, mode: mode) { return i }
        return nil
    }

    @Test func rexCountsOnlyDirectlyBeforeTheOpcode() throws {
        // 48 66 0F 6E C0: the REX is followed by 66, so it is ignored: movd xmm0, eax.
        let ignored = try #require(decode([0x48, 0x66, 0x0F, 0x6E, 0xC0]))
        #expect(ignored.rex == nil)
        #expect(Disassembler.describe(ignored) == "movd xmm0, eax")
        let used = try #require(decode([0x66, 0x48, 0x0F, 0x6E, 0xC0]))
        #expect(used.rex?.w == true)
        #expect(Disassembler.describe(used) == "movq xmm0, rax")
        // Two REX prefixes: only the last counts.
        let cancelled = try #require(decode([0x41, 0x44, 0xF3, 0x0F, 0xB8, 0xC1]))
        #expect(cancelled.rex == nil)  // F3 after the REX bytes cancels both
        let last = try #require(decode([0xF3, 0x41, 0x44, 0x0F, 0xB8, 0xC1]))
        #expect(last.rex?.raw == 0x44)
        #expect(Disassembler.describe(last) == "popcnt r8d, ecx")
        // Outside 64-bit mode 40–4F are INC/DEC.
        let inc = try #require(decode([0x48], .protected(bits: 32)))
        #expect(inc.length == 1 && inc.rex == nil)
    }

    @Test func mandatoryPrefixPrecedence() throws {
        // F2 then F3: the last wins. 66 with F3: F3 is mandatory, 66 is the operand size.
        #expect(try #require(decode([0xF2, 0xF3, 0x0F, 0xB8, 0xC1])).mandatoryPrefix == .pF3)
        #expect(try #require(decode([0xF3, 0xF2, 0x0F, 0xB8, 0xC1])).mandatoryPrefix == .pF2)
        let popcnt16 = try #require(decode([0x66, 0xF3, 0x0F, 0xB8, 0xC1]))
        #expect(popcnt16.mandatoryPrefix == .pF3 && popcnt16.operandSize == 16)
        #expect(Disassembler.describe(popcnt16) == "popcnt ax, cx")
    }

    @Test func segmentSelection() throws {
        // 64-bit: FS/GS overrides count, others are ignored; RSP/RBP bases default to SS.
        #expect(try #require(decode([0x64, 0xF3, 0x0F, 0xB8, 0x00])).memory?.segment == .fs)
        #expect(try #require(decode([0x26, 0xF3, 0x0F, 0xB8, 0x00])).memory?.segment == .ds)
        #expect(try #require(decode([0xF3, 0x0F, 0xB8, 0x04, 0x24])).memory?.segment == .ss)       // [rsp]
        #expect(try #require(decode([0xF3, 0x0F, 0xB8, 0x45, 0x00])).memory?.segment == .ss)       // [rbp+0]
        #expect(try #require(decode([0xF3, 0x41, 0x0F, 0xB8, 0x45, 0x00])).memory?.segment == .ds) // [r13+0]
        #expect(try #require(decode([0xF3, 0x41, 0x0F, 0xB8, 0x04, 0x24])).memory?.segment == .ds) // [r12]
        #expect(try #require(decode([0x64, 0x65, 0xF3, 0x0F, 0xB8, 0x00])).memory?.segment == .gs)  // last wins
        // 32-bit: every override counts.
        #expect(try #require(decode([0x26, 0xF3, 0x0F, 0xB8, 0x00], .protected(bits: 32))).memory?.segment == .es)
        #expect(try #require(decode([0x3E, 0xF3, 0x0F, 0xB8, 0x04, 0x24], .protected(bits: 32))).memory?.segment == .ds)
        // 16-bit: BP-based forms default to SS.
        #expect(try #require(decode([0xF3, 0x0F, 0xB8, 0x02], .real)).memory?.segment == .ss)  // [bp+si]
        #expect(try #require(decode([0xF3, 0x0F, 0xB8, 0x06, 0x34, 0x12], .real)).memory?.segment == .ds)  // [0x1234]
    }

    @Test func effectiveAddresses() throws {
        var s = CPUState.long64(cr3: 0)
        s.rip = 0x1000
        s.gpr[.rbx] = 0xFFFF_FFFF_0000_0010
        s.gpr[.rcx] = 3
        func ea(_ bytes: [UInt8], _ state: CPUState, _ mode: ProcessorMode = .long64) throws -> UInt64 {
            let i = try #require(decode(bytes, mode))
            let m = try #require(i.memory)
            let c = InstructionContext(instruction: i, memory: TestMemory(size: 0), platform: TestPlatform(), walker: PageWalker(),
                                       configuration: EmulatorConfiguration())
            return c.effectiveAddress(m, state)
        }
        // [rip+0x10] is relative to the next instruction (7 bytes long here).
        #expect(try ea([0xF3, 0x0F, 0xB8, 0x05, 0x10, 0x00, 0x00, 0x00], s) == 0x1000 + 8 + 0x10)
        // [rbx+rcx*8-8] wraps modulo 2^64; with 67 it is truncated to 32 bits.
        #expect(try ea([0xF3, 0x0F, 0xB8, 0x44, 0xCB, 0xF8], s) == 0xFFFF_FFFF_0000_0020)
        #expect(try ea([0x67, 0xF3, 0x0F, 0xB8, 0x44, 0xCB, 0xF8], s) == 0x20)
        // 16-bit: [bx+si+0xFFF0] wraps at 64 KiB.
        var r = CPUState()
        r.gpr[.rbx] = 0x20
        r.gpr[.rsi] = 0x5
        #expect(try ea([0xF3, 0x0F, 0xB8, 0x80, 0xF0, 0xFF], r, .real) == 0x15)
        // No base, index only: [rcx*4+0x100].
        #expect(try ea([0xF3, 0x0F, 0xB8, 0x04, 0x8D, 0x00, 0x01, 0x00, 0x00], s) == 0x10C)
    }

    @Test func truncationAndLength() {
        // Every proper prefix of a valid instruction is truncated at the next byte.
        let full: [UInt8] = [0x66, 0x41, 0x0F, 0x3A, 0x0F, 0x84, 0x24, 0x00, 0x01, 0x00, 0x00, 0x04]  // palignr xmm0, [r12+0x100], 4
        #expect(decode(full)?.length == full.count)
        for n in 0..<full.count {
            #expect(Decoder.decode(Array(full.prefix(n)), mode: .long64) == .failure(.truncated(at: n)))
        }
        // 15 bytes of prefixes with nothing after them: too long, not truncated.
        #expect(Decoder.decode([UInt8](repeating: 0x66, count: 15), mode: .long64) == .failure(.tooLong))
        #expect(Decoder.decode([UInt8](repeating: 0x66, count: 20), mode: .long64) == .failure(.tooLong))
    }

    @Test func invalidAndRefusedEncodings() {
        #expect(Decoder.decode([0x06], mode: .long64) == .failure(.invalidOpcode))
        #expect(Decoder.decode([0x06], mode: .protected(bits: 32)).map(\.length) == .success(1))
        #expect(Decoder.decode([0x0F, 0x0B], mode: .long64).map(\.length) == .success(2))
        #expect(Decoder.decode([0x0F, 0x0F, 0xC0, 0x9E], mode: .long64) == .failure(.unsupportedEncoding("3DNow! instruction")))
        #expect(Decoder.decode([0xC5, 0xF9, 0xEF, 0xC0], mode: .protected(bits: 32)) == .failure(.unsupportedEncoding("VEX-encoded instruction")))
        #expect(Decoder.decode([0xC5, 0x00], mode: .protected(bits: 32)).map(\.length) == .success(2))  // lds eax, [eax]
        // AMD SSE4a EXTRQ with its two immediates.
        #expect(Decoder.decode([0x66, 0x0F, 0x78, 0xC1, 0x04, 0x08], mode: .long64).map(\.length) == .success(6))
    }

    @Test func describeGivesReadableText() {
        #expect(Disassembler.describe(bytes: [0x66, 0x0F, 0xEF, 0x05, 0x40, 0x1F, 0x00, 0x00], mode: .long64) == "pxor xmm0, xmmword [rip+0x1f40]")
        #expect(Disassembler.describe(bytes: [0x64, 0x66, 0x41, 0x0F, 0x6F, 0x44, 0x24, 0xF0], mode: .long64) == "movdqa xmm0, xmmword fs:[r12-0x10]")
        #expect(Disassembler.describe(bytes: [0x0F, 0x38, 0xF0, 0x08], mode: .long64) == "opcode 0f 38 f0 /1, [rax]")
        #expect(Disassembler.describe(bytes: [0xF3, 0x0F], mode: .long64) == "(incomplete instruction: needs byte 3)")
    }

    /// The committed fixtures are what the generator produces from the installed assembler.
    @Test(.enabled(if: HostTools.shouldRun("python3", "as", "objdump"), HostTools.skipReason("python3", "as", "objdump")))
    func fixturesAreUpToDate() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
        let script = directory.appendingPathComponent("generate-fixtures.py").path
        for tool in ["python3", "as", "objdump"] {
            try #require(HostTools.find(tool) != nil, "\(tool) is required with CI=true")
        }
        let generated = try #require(HostTools.run("python3", [script, "--check"]))
        let committed = try String(contentsOfFile: directory.appendingPathComponent("AssembledFixtures.swift").path, encoding: .utf8)
        #expect(generated == committed, "regenerate with Tests/X86EmulatorTests/Fixtures/generate-fixtures.py")
    }
}
