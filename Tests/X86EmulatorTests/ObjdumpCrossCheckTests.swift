import Testing
@testable import X86Emulator

/// Instruction lengths against objdump on thousands of random, instruction-shaped byte sequences.
///
/// Each candidate sits at the start of its own 32-byte slot padded with NOPs, so objdump
/// resynchronizes at every slot even where it disagrees, and each candidate is compared alone.
@Suite struct ObjdumpCrossCheckTests {
    static let cases: [(name: String, mode: ProcessorMode, machine: String, count: Int)] = [
        ("64-bit", .long64, "i386:x86-64", 4000),
        ("32-bit", .protected(bits: 32), "i386", 1500),
        ("16-bit", .real, "i8086", 1500),
    ]

    func candidate(_ rng: inout SeededGenerator, mode: ProcessorMode) -> [UInt8] {
        let prefixes: [UInt8] = [0x66, 0x67, 0xF2, 0xF3, 0x2E, 0x3E, 0x26, 0x64, 0x65, 0x36]
        var b: [UInt8] = []
        for _ in 0..<Int(rng.next() % 4) { b.append(prefixes[Int(rng.next() % UInt64(prefixes.count))]) }
        // objdump prints a REX prefix that does not directly precede the opcode as an instruction of
        // its own (the processor ignores it); so REX goes only in its proper place here.
        if mode.is64Bit && rng.next() % 2 == 0 { b.append(0x40 | UInt8(rng.next() % 16)) }
        switch rng.next() % 8 {
        case 0, 1, 2:
            // A one-byte opcode that is not itself a prefix (or REX, in 64-bit mode). FWAIT (9B) is left
            // out too: objdump treats it as a prefix of the next x87 instruction and splits off any
            // prefixes before it, while the processor runs it as one instruction with those prefixes.
            var opcode = UInt8(truncatingIfNeeded: rng.next())
            while prefixes.contains(opcode) || opcode == 0xF0 || opcode == 0x0F || opcode == 0x9B || (mode.is64Bit && opcode & 0xF0 == 0x40) {
                opcode = UInt8(truncatingIfNeeded: rng.next())
            }
            b.append(opcode)
        case 3, 4, 5: b += [0x0F, UInt8(truncatingIfNeeded: rng.next())]
        case 6: b += [0x0F, 0x38, UInt8(truncatingIfNeeded: rng.next())]
        default: b += [0x0F, 0x3A, UInt8(truncatingIfNeeded: rng.next())]
        }
        return b + rng.bytes(15)
    }

    @Test(.enabled(if: HostTools.shouldRun("objdump"), HostTools.skipReason("objdump")), arguments: cases.map(\.name))
    func lengthsAgreeWithObjdump(_ name: String) throws {
        let c = try #require(Self.cases.first { $0.name == name })
        try #require(HostTools.find("objdump") != nil, "objdump is required with CI=true")
        var rng = SeededGenerator(seed: 0x0B7D_0000 | UInt64(c.count))
        var lengths: [Int] = []
        var stream: [UInt8] = []
        while lengths.count < c.count {
            let bytes = candidate(&rng, mode: c.mode)
            guard case .success(let i) = Decoder.decode(bytes, mode: c.mode) else { continue }
            lengths.append(i.length)
            stream += i.bytes + [UInt8](repeating: 0x90, count: 32 - i.length)
        }
        let listing = try #require(HostTools.objdump(stream, machine: c.machine))
        // Instructions by address.
        var byAddress: [Int: (length: Int, text: String)] = [:]
        var address = 0
        for entry in listing {
            byAddress[address] = (entry.bytes.count, entry.text)
            address += entry.bytes.count
        }
        var compared = 0
        var mismatches: [String] = []
        for (slot, length) in lengths.enumerated() {
            guard let seen = byAddress[slot * 32], !seen.text.contains("(bad)") else { continue }
            compared += 1
            if seen.length != length {
                let bytes = stream[(slot * 32)..<(slot * 32 + max(length, seen.length))].map(hexByte).joined(separator: " ")
                mismatches.append("\(bytes): decoder \(length), objdump \(seen.length) `\(seen.text)`")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(compared):\n\(mismatches.prefix(20).joined(separator: "\n"))")
        #expect(compared > c.count / 2, "only \(compared) comparable")
    }
}
