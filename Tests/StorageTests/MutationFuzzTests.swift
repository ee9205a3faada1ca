import Foundation
import Testing
@testable import Storage

/// Random corruption of a valid image: opening, reading, writing, checking and repairing it must end in
/// success or a StorageError, never a crash, and never touch another file.
@Suite struct MutationFuzzTests {
    @Test func randomlyCorruptedImagesNeverCrash() throws {
        let seedImage = try fileBytes(HostileImageTests.corpus + "/valid.qcow2")
        let dir = TempDir()
        try Data([UInt8](repeating: 0x42, count: 1 << 20)).write(to: URL(fileURLWithPath: dir.file("other.raw")))
        let other = try fileBytes(dir.file("other.raw"))
        var random = TestRandom(seed: UInt64(ProcessInfo.processInfo.environment["SKIFF_FUZZ_SEED"] ?? "") ?? 31337)
        var outcomes = [String: Int]()
        for round in 0..<(Int(ProcessInfo.processInfo.environment["SKIFF_FUZZ_ROUNDS"] ?? "") ?? 400) {
            var bytes = seedImage
            for _ in 0..<(1 + Int(random.below(4))) {
                let position = Int(random.below(UInt64(bytes.count - 8)))
                if random.below(2) == 0 {
                    bytes[position] = UInt8(truncatingIfNeeded: random.next())
                } else {
                    // An 8-byte table entry or header field replaced by a random (often huge) value.
                    let aligned = position & ~7
                    var value = random.next()
                    if random.below(2) == 0 { value &= 0x00ff_ffff_ffff_fe00 }
                    for k in 0..<8 { bytes[aligned + k] = UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64(k))) }
                }
            }
            let path = dir.file("fuzz.qcow2")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            do {
                let image = try DiskImage.openQCOW2(path: path, readOnly: false)
                _ = try? image.readBytes(at: 0, count: Int(min(image.size, 1 << 20)))
                try? image.writeBytes([UInt8](repeating: UInt8(round & 0xff), count: 6000), at: random.below(max(image.size, 6000) - 6000))
                try? image.writeZeroes(at: 0, length: min(image.size, 8192), unmap: true)
                _ = try? image.check(repairing: round % 3 == 0)
                try? image.close()
                outcomes["opened", default: 0] += 1
            } catch is StorageError {
                outcomes["refused", default: 0] += 1
            }
            #expect(try fileBytes(dir.file("other.raw")) == other)
        }
        #expect(outcomes["opened", default: 0] > 20)
        #expect(outcomes["refused", default: 0] > 20)
    }
}
