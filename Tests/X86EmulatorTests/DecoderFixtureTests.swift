import Testing
@testable import X86Emulator

/// The decoder against instructions assembled by GNU as and printed by objdump.
@Suite struct DecoderFixtureTests {
    static let modes: [(String, [AssembledInstruction], ProcessorMode)] = [
        ("64-bit", AssembledFixtures.long64 + AssembledFixtures.sse64, .long64),
        ("32-bit", AssembledFixtures.protected32, .protected(bits: 32)),
        ("16-bit", AssembledFixtures.real16, .real),
    ]

    /// Every fixture decodes to exactly as many bytes as `as` emitted, even with bytes after it.
    @Test(arguments: modes.map(\.0))
    func lengthsMatchAssembler(_ name: String) throws {
        let (_, fixtures, mode) = try #require(Self.modes.first { $0.0 == name })
        #expect(fixtures.count > 30)
        for f in fixtures where !f.objdump.contains("(bad)") {
            let padded = f.bytes + [UInt8](repeating: 0x90, count: 15)
            switch Decoder.decode(padded, mode: mode) {
            case .success(let i):
                #expect(i.length == f.bytes.count, "\(f.source): decoded \(i.length) bytes, as emitted \(f.bytes.count)")
                #expect(i.bytes == f.bytes, "\(f.source)")
            case .failure(.invalidOpcode):
                Issue.record("\(f.source): decoded as invalid, objdump says \(f.objdump)")
            case .failure(let e):
                // Only VEX/3DNow!-style encodings may be refused, and none are in the fixtures.
                Issue.record("\(f.source): \(e)")
            }
        }
    }

    /// Instructions the emulator knows are named and printed as objdump prints them (sizes aside).
    @Test(arguments: modes.map(\.0))
    func knownFormsMatchObjdumpText(_ name: String) throws {
        let (_, fixtures, mode) = try #require(Self.modes.first { $0.0 == name })
        var compared = 0
        for f in fixtures {
            guard case .success(let i) = Decoder.decode(f.bytes, mode: mode), case .form = InstructionTable.lookup(i) else { continue }
            compared += 1
            #expect(normalized(Disassembler.describe(i)) == normalized(f.objdump), "\(f.source)")
        }
        #expect(compared >= 5)
    }

    /// Every allow-listed SSE form is exercised by at least one assembled instruction that maps to it.
    @Test func everyAllowListedFormHasAnAssembledExample() {
        var seen = Set<String>()
        for f in AssembledFixtures.sse64 {
            guard case .success(let i) = Decoder.decode(f.bytes, mode: .long64), case .form(let form) = InstructionTable.lookup(i),
                  case .sse(let sse) = form.operation else {
                Issue.record("\(f.source) does not map to an SSE form")
                continue
            }
            seen.insert(key(sse))
        }
        for form in SSEAllowList.forms {
            #expect(seen.contains(key(form)), "no assembled example of \(form.mnemonic) (\(form.prefix) \(form.map) \(hexByte(form.opcode)))")
        }
    }

    /// Allow-list entries are unique: no two forms claim the same encoding shape.
    @Test func allowListHasNoDuplicateShapes() {
        var seen = Set<String>()
        for form in SSEAllowList.forms {
            let shape = key(form) + "\(form.modRMRequirement)"
            #expect(!seen.contains(shape), "duplicate \(form.mnemonic)")
            seen.insert(shape)
        }
    }

    /// The decoder's immediate matches the allow-list's claim for every SSE example.
    @Test func immediatesAgreeWithAllowList() {
        for f in AssembledFixtures.sse64 {
            guard case .success(let i) = Decoder.decode(f.bytes, mode: .long64), case .form(let form) = InstructionTable.lookup(i),
                  case .sse(let sse) = form.operation else { continue }
            #expect((i.immediateSize == 1) == sse.hasImmediate, "\(f.source)")
            #expect(i.immediateSize <= 1, "\(f.source)")
        }
    }

    private func key(_ f: SSEForm) -> String { "\(f.mnemonic) \(f.prefix) \(f.map) \(f.opcode) \(f.reg) \(f.rm)" }

    /// Lowercase, without size keywords, spaces, objdump comments and segment-prefix mnemonics.
    private func normalized(_ s: String) -> String {
        var t = s.lowercased()
        if let hash = t.firstIndex(of: "#") { t = String(t[..<hash]) }
        for word in ["xmmword ptr", "qword ptr", "dword ptr", "word ptr", "byte ptr", "xmmword ", "qword ", "dword ", "word ", "byte "] {
            t = t.replacing(word, with: "")
        }
        t = t.replacing("sysretd", with: "sysret")
        return t.filter { $0 != " " }
    }
}
