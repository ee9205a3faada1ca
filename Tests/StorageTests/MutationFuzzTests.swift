import Foundation
import Testing
@testable import Storage

/// Random corruption of a valid image: opening, reading, writing, checking and repairing it must end in
/// success or a StorageError (never another error, never a crash), never touch another file, and on an
/// image that still checks clean, data written must read back.
///
/// 400 mutated images by default (`SKIFF_FUZZ_ROUNDS`, seed `SKIFF_FUZZ_SEED`); CI runs the default.
@Suite struct MutationFuzzTests {
    /// Outcomes of the operations on the opened images, by name.
    final class Tally {
        var counts: [String: Int] = [:]

        /// Runs `body`; a StorageError is counted and gives nil, any other error is an issue.
        func attempt<T>(_ what: String, _ body: () throws -> T) -> T? {
            do {
                let value = try body()
                counts[what + " ok", default: 0] += 1
                return value
            } catch is StorageError {
                counts[what + " refused", default: 0] += 1
                return nil
            } catch {
                Issue.record("\(what) threw \(type(of: error)), not a StorageError: \(error)")
                return nil
            }
        }
    }

    @Test func randomlyCorruptedImagesNeverCrash() throws {
        let seedImage = try fileBytes(HostileImageTests.corpus + "/valid.qcow2")
        let dir = TempDir()
        try Data([UInt8](repeating: 0x42, count: 1 << 20)).write(to: URL(fileURLWithPath: dir.file("other.raw")))
        let other = try fileBytes(dir.file("other.raw"))
        var random = TestRandom(seed: UInt64(ProcessInfo.processInfo.environment["SKIFF_FUZZ_SEED"] ?? "") ?? 31337)
        let tally = Tally()
        var opened = 0, refused = 0, readBackChecked = 0
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
            let image: QCOW2Image
            do {
                image = try DiskImage.openQCOW2(path: path, readOnly: false)
                opened += 1
            } catch is StorageError {
                refused += 1
                continue
            } catch {
                Issue.record("round \(round): open threw \(type(of: error)): \(error)")
                continue
            }
            // A mutation the check finds nothing wrong with must still behave like a disk.
            let clean = tally.attempt("check") { try image.check(repairing: false) }.map { $0.corruptions == 0 && $0.checkErrors == 0 } ?? false
            _ = tally.attempt("read") { try image.readBytes(at: 0, count: Int(min(image.size, 1 << 20))) }
            let data = [UInt8](repeating: UInt8(round & 0xff), count: 6000)
            let offset = random.below(max(image.size, 6000) - 6000)
            if tally.attempt("write", { try image.writeBytes(data, at: offset) }) != nil, clean,
               let back = tally.attempt("read back", { try image.readBytes(at: offset, count: data.count) }) {
                #expect(back == data, "round \(round): a clean image did not return what was written at \(offset)")
                readBackChecked += 1
            }
            _ = tally.attempt("write zeroes") { try image.writeZeroes(at: 0, length: min(image.size, 8192), unmap: true) }
            _ = tally.attempt(round % 3 == 0 ? "repair" : "check") { try image.check(repairing: round % 3 == 0) }
            _ = tally.attempt("close") { try image.close() }
            #expect(try fileBytes(dir.file("other.raw")) == other)
        }
        #expect(opened > 20, "\(opened) opened")
        #expect(refused > 20, "\(refused) refused")
        #expect(readBackChecked > 20, "\(readBackChecked) clean images checked for read-after-write")
        print("MutationFuzzTests: \(opened) opened, \(refused) refused, \(readBackChecked) read-after-write checks; \(tally.counts.sorted { $0.key < $1.key })")
    }
}
