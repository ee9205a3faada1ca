import Foundation
import Testing
@testable import Storage
@testable import ImageStore

@Suite struct ImageStoreTests {
    static func writeImage(_ path: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test func fastCDCBoundariesSurviveAnInsertion() throws {
        var random = TestRandom(seed: 3)
        let data = random.bytes(4 << 20)
        let shifted = random.bytes(100) + data
        let chunker = try FastCDC(averageSize: 16 << 10)
        func chunks(_ bytes: [UInt8]) -> Set<[UInt8]> {
            var out: Set<[UInt8]> = []
            bytes.withUnsafeBytes { raw in
                var position = 0
                while position < raw.count {
                    let n = chunker.cut(UnsafeRawBufferPointer(rebasing: raw[position...]))
                    #expect(n >= 1 && n <= chunker.maxSize)
                    out.insert(Array(raw[position..<(position + n)]))
                    position += n
                }
            }
            return out
        }
        let a = chunks(data)
        let b = chunks(shifted)
        #expect(a.count > 100)
        // All but the chunks around the insertion are shared.
        #expect(a.intersection(b).count >= a.count - 3)
    }

    @Test func importDeduplicatesExportsAndVerifies() throws {
        let dir = TempDir()
        var random = TestRandom(seed: 4)
        let common = random.bytes(3 << 20)
        let first = common + [UInt8](repeating: 0, count: 1 << 20) + random.bytes(1 << 20)
        var second = first
        second.replaceSubrange(100_000..<100_100, with: random.bytes(100))
        second += random.bytes(512 << 10)
        try Self.writeImage(dir.file("a.raw"), first)
        try Self.writeImage(dir.file("b.raw"), second)
        let store = try ImageStore.open(root: dir.file("store"), create: true, averageChunkSize: 16 << 10)
        for (name, file) in [("a", "a.raw"), ("b", "b.raw")] {
            let device = try DiskImage.open(path: dir.file(file), format: .raw, readOnly: true)
            _ = try store.importImage(from: device, name: name)
            try device.close()
        }
        let stats = try store.stats()
        #expect(stats.images == 2)
        #expect(stats.logicalBytes == UInt64(first.count + second.count))
        // Zero runs lose at most a maximum-size chunk at each edge.
        #expect(stats.zeroBytes >= (2 << 20) - 4 * (64 << 10))
        #expect(stats.ratio > 2.0, "ratio \(stats.ratio)")
        // Export both ways and read through the store directly.
        try store.export(name: "b", to: dir.file("b.qcow2"), format: .qcow2)
        let exported = try DiskImage.open(path: dir.file("b.qcow2"), format: .qcow2, readOnly: true)
        #expect(try exported.readBytes(at: 0, count: second.count) == second)
        try exported.close()
        let live = try store.openImage(named: "a")
        #expect(try live.readBytes(at: 123_457, count: 200_000) == Array(first[123_457..<323_457]))
        #expect(try store.verify().isClean)
        // Damage one chunk: verify names the images that use it.
        let manifest = try store.manifest(named: "a")
        guard case .chunk(let hash, _)? = manifest.entries.first else {
            Issue.record("first entry is not a chunk")
            return
        }
        var damaged = try fileBytes(store.chunkPath(hash))
        damaged[damaged.count - 1] ^= 0xff
        try Data(damaged).write(to: URL(fileURLWithPath: store.chunkPath(hash)))
        let result = try store.verify()
        #expect(result.badChunks == [hash])
        #expect(result.affectedImages.sorted() == ["a", "b"])
        #expect(throws: StorageError.self) { _ = try store.openImage(named: "a").readBytes(at: 0, count: 10) }
    }

    @Test func gcRemovesOnlyUnreferencedChunks() throws {
        let dir = TempDir()
        var random = TestRandom(seed: 5)
        let shared = random.bytes(1 << 20)
        try Self.writeImage(dir.file("a.raw"), shared + random.bytes(1 << 20))
        try Self.writeImage(dir.file("b.raw"), shared + random.bytes(1 << 20))
        let store = try ImageStore.open(root: dir.file("store"), create: true, averageChunkSize: 16 << 10, compress: true)
        for name in ["a", "b"] {
            let device = try DiskImage.open(path: dir.file(name + ".raw"), format: .raw, readOnly: true)
            _ = try store.importImage(from: device, name: name)
        }
        // A crashed import leaves a half-written file in tmp/ and no manifest.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir.file("store/tmp/chunk.1.1.1")))
        #expect(try store.collectGarbage().removedChunks == 0)
        try store.remove(name: "a")
        let gc = try store.collectGarbage()
        #expect(gc.removedChunks > 10)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("store/tmp")).isEmpty)
        let b = try store.openImage(named: "b")
        #expect(try b.readBytes(at: 0, count: 1 << 20) == shared)
        #expect(try store.verify().isClean)
        #expect(try store.imageNames() == ["b"])
    }

    @Test func tornManifestsAreRejected() throws {
        let manifest = Manifest(name: "x", size: 10, entries: [.zero(length: 4), .chunk(hash: String(repeating: "a", count: 64), length: 6)])
        let text = manifest.serialize()
        #expect(try Manifest.parse(text, path: "m") == manifest)
        #expect(throws: StorageError.self) { try Manifest.parse(String(text.dropLast(4)), path: "m") }
        #expect(throws: StorageError.self) { try Manifest.parse(text.replacingOccurrences(of: "size 10", with: "size 11"), path: "m") }
        #expect(throws: StorageError.self) { try Manifest.validateName("../etc") }
        let huge = "skiff-manifest 1\nname x\nsize 18446744073709551615\nzero 18446744073709551615\nend\n"
        #expect(throws: StorageError.self) { try Manifest.parse(huge, path: "m") }
    }
}
