import BinaryCoding
import Testing

/// Seeded random corruption of a realistic encoding: decoding must never crash, and must
/// either succeed or throw a `BinaryCodingError` (the typed `throws` guarantees the type; a
/// trap would end the test process).
struct MutationTests {
    static let iterations = 20_000

    @Test func randomMutationsNeverCrashTheDecoder() throws {
        let original = try encode(MachineSnapshot.sample(vcpuCount: 2, xsaveSize: 48, msrCount: 3, cpuidCount: 2))
        var random = SeededGenerator(seed: 0xF022)
        var decoded = 0
        var failed = 0
        var kinds = Set<String>()
        for _ in 0..<Self.iterations {
            var bytes = original
            for _ in 0..<Int.random(in: 1...3, using: &random) { mutate(&bytes, using: &random) }
            do {
                _ = try decode(MachineSnapshot.self, from: bytes)
                decoded += 1
            } catch {
                failed += 1
                kinds.insert(String(describing: error).split(separator: ":").last.map(String.init) ?? "")
                #expect(!error.description.contains("\n"))
            }
            // Read the same bytes as other types, so other paths (skipping, dictionaries) run too.
            _ = try? decode([String: [UInt8]].self, from: bytes)
            _ = try? decode(RoundTripTests.ConfigV1.self, from: bytes)
        }
        // The mutations reach both outcomes and many kinds of error.
        #expect(decoded > 100)
        #expect(failed > Self.iterations / 2)
        #expect(kinds.count > 20)
    }

    private func mutate(_ bytes: inout [UInt8], using random: inout SeededGenerator) {
        let interesting: [UInt8] = [0x00, 0x01, 0x04, 0x05, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x7F, 0x80, 0xFF]
        let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
        switch Int.random(in: 0..<6, using: &random) {
        case 0 where !bytes.isEmpty:
            bytes[position] ^= 1 << UInt8.random(in: 0..<8, using: &random)
        case 1 where !bytes.isEmpty:
            bytes[position] = interesting.randomElement(using: &random) ?? 0
        case 2 where !bytes.isEmpty:
            bytes[position] = UInt8.random(in: .min ... .max, using: &random)
        case 3:
            let count = Int.random(in: 1...4, using: &random)
            bytes.insert(contentsOf: (0..<count).map { _ in interesting.randomElement(using: &random) ?? 0 }, at: position)
        case 4 where !bytes.isEmpty:
            bytes.removeSubrange(position..<min(bytes.count, position + Int.random(in: 1...8, using: &random)))
        default:
            bytes.removeLast(min(bytes.count, Int.random(in: 0...3, using: &random)))
        }
    }
}
