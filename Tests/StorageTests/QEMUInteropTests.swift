import Foundation
import Testing
@testable import Storage

/// Cross-checks against QEMU's own tools: images QEMU writes read back identically in Skiff, images
/// Skiff writes pass `qemu-img check` and `qemu-img compare`, and `info` agrees.
@Suite(.serialized, .enabled(if: QEMU.shouldRun)) struct QEMUInteropTests {
    static let size = 8 << 20

    /// A raw reference file: random data with holes, a few all-zero ranges, sizes not cluster aligned.
    static func makeReference(_ path: String, seed: UInt64) throws -> [UInt8] {
        var random = TestRandom(seed: seed)
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        while offset < size {
            let length = min(Int(random.below(300_000)) + 1, size - offset)
            if random.below(3) != 0 {
                let data = random.bytes(length)
                bytes.replaceSubrange(offset..<(offset + length), with: data)
            }
            offset += length
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return bytes
    }

    static func readAll(_ device: any BlockDevice) throws -> [UInt8] {
        try device.readBytes(at: 0, count: Int(device.size))
    }

    struct Variant: CustomTestStringConvertible, Sendable {
        var options: String
        var compress: Bool = false
        var testDescription: String { options + (compress ? ",compressed" : "") }
    }

    static let qemuVariants: [Variant] = [
        Variant(options: "compat=0.10,cluster_size=4096"),
        Variant(options: "compat=0.10,cluster_size=65536"),
        Variant(options: "compat=1.1,cluster_size=4096,refcount_bits=1"),
        Variant(options: "compat=1.1,cluster_size=65536,refcount_bits=16"),
        Variant(options: "compat=1.1,cluster_size=2097152,refcount_bits=64"),
        Variant(options: "compat=1.1,cluster_size=16384,refcount_bits=8,lazy_refcounts=on"),
        Variant(options: "compat=1.1,cluster_size=512,refcount_bits=2"),
        Variant(options: "compat=1.1,cluster_size=32768,refcount_bits=32"),
        Variant(options: "compat=1.1,cluster_size=8192,refcount_bits=4"),
        Variant(options: "compat=1.1,cluster_size=65536", compress: true),
        Variant(options: "compat=0.10,cluster_size=4096", compress: true),
        Variant(options: "compat=1.1,cluster_size=65536,compression_type=zstd", compress: true),
    ]

    /// FNV-1a of the variant's options: the same seed in every run (String.hashValue is
    /// randomized per process, so a failure would not reproduce).
    static func stableSeed(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash | 1
    }

    @Test(arguments: qemuVariants)
    func qemuWrittenImagesReadBackIdentically(variant: Variant) throws {
        let dir = TempDir()
        let reference = try Self.makeReference(dir.file("ref.raw"), seed: Self.stableSeed(variant.options))
        var args = ["convert", "-f", "raw", "-O", "qcow2", "-o", variant.options]
        if variant.compress { args.append("-c") }
        try #require(try QEMU.imgRun(args + [dir.file("ref.raw"), dir.file("q.qcow2")]).status == 0)
        var expected = reference
        if variant.options.contains("compat=1.1") {
            // Zero clusters (with and without unmap) over data.
            let io = try run(try QEMU.io(), ["-f", "qcow2", "-c", "write -z 1M 512K", "-c", "write -z -u 3M 1M",
                                             "-c", "write -P 0x5c 5M 4k", dir.file("q.qcow2")])
            try #require(io.status == 0, "\(io.stderr)")
            for i in (1 << 20)..<(3 << 19) { expected[i] = 0 }
            for i in (3 << 20)..<(4 << 20) { expected[i] = 0 }
            for i in (5 << 20)..<((5 << 20) + 4096) { expected[i] = 0x5c }
        }
        let image = try DiskImage.open(path: dir.file("q.qcow2"), format: .qcow2, readOnly: true)
        let back = try Self.readAll(image)
        #expect(back == expected)
        try image.close()
    }

    @Test func qemuBackingChainOfDepthThreeReadsThrough() throws {
        let dir = TempDir()
        let reference = try Self.makeReference(dir.file("ref.raw"), seed: 77)
        try #require(try QEMU.imgRun(["convert", "-f", "raw", "-O", "qcow2", dir.file("ref.raw"), dir.file("l0.qcow2")]).status == 0)
        try #require(try QEMU.imgRun(["create", "-f", "qcow2", "-b", "l0.qcow2", "-F", "qcow2", dir.file("l1.qcow2")]).status == 0)
        try #require(try QEMU.imgRun(["create", "-f", "qcow2", "-b", "l1.qcow2", "-F", "qcow2", "-o", "cluster_size=4096", dir.file("l2.qcow2")]).status == 0)
        try #require(try QEMU.imgRun(["create", "-f", "qcow2", "-b", "l2.qcow2", "-F", "qcow2", dir.file("l3.qcow2"), "12M"]).status == 0)
        try #require(try run(try QEMU.io(), ["-c", "write -P 0x11 100k 200k", dir.file("l1.qcow2")]).status == 0)
        try #require(try run(try QEMU.io(), ["-c", "write -P 0x22 150k 10k", "-c", "write -z 2M 64k", dir.file("l2.qcow2")]).status == 0)
        try #require(try run(try QEMU.io(), ["-c", "write -P 0x33 7M 2M", dir.file("l3.qcow2")]).status == 0)
        var expected = reference + [UInt8](repeating: 0, count: 4 << 20)
        for i in (100 << 10)..<(300 << 10) { expected[i] = 0x11 }
        for i in (150 << 10)..<(160 << 10) { expected[i] = 0x22 }
        for i in (2 << 20)..<((2 << 20) + (64 << 10)) { expected[i] = 0 }
        for i in (7 << 20)..<(9 << 20) { expected[i] = 0x33 }
        let image = try DiskImage.open(path: dir.file("l3.qcow2"), format: .qcow2, readOnly: true)
        #expect(image.size == 12 << 20)
        #expect(try Self.readAll(image) == expected)
    }

    struct WriteVariant: CustomTestStringConvertible, Sendable {
        var creator: String
        var options: String
        var backing: Bool
        var testDescription: String { "\(creator) \(options)\(backing ? " +backing" : "")" }
    }

    static let writeVariants: [WriteVariant] = [
        WriteVariant(creator: "skiff", options: "compat=1.1,cluster_size=65536", backing: false),
        WriteVariant(creator: "skiff", options: "compat=0.10,cluster_size=4096", backing: true),
        WriteVariant(creator: "skiff", options: "compat=1.1,cluster_size=512,refcount_bits=1", backing: false),
        WriteVariant(creator: "skiff", options: "compat=1.1,cluster_size=2097152,refcount_bits=64", backing: true),
        WriteVariant(creator: "qemu", options: "compat=1.1,cluster_size=4096,refcount_bits=4", backing: true),
        WriteVariant(creator: "qemu", options: "compat=0.10,cluster_size=65536", backing: false),
        WriteVariant(creator: "qemu", options: "compat=1.1,cluster_size=1048576,refcount_bits=32", backing: false),
        WriteVariant(creator: "qemu", options: "compat=1.1,cluster_size=8192,lazy_refcounts=on", backing: true),
    ]

    /// Random writes, zeroes and discards through Skiff, mirrored into a raw model; then QEMU checks.
    @Test(arguments: writeVariants)
    func skiffWrittenImagesPassQemuCheckAndCompare(variant: WriteVariant) throws {
        let dir = TempDir()
        let image = dir.file("w.qcow2")
        var model = [UInt8](repeating: 0, count: Self.size)
        var backingArgs: [String] = []
        if variant.backing {
            model = try Self.makeReference(dir.file("base.raw"), seed: 5)
            backingArgs = ["-b", dir.file("base.raw"), "-F", "raw"]
        }
        if variant.creator == "qemu" {
            try #require(try QEMU.imgRun(["create", "-f", "qcow2", "-o", variant.options] + backingArgs + [image, "\(Self.size)"]).status == 0)
        } else {
            var options = QCOW2CreateOptions(size: UInt64(Self.size))
            for pair in variant.options.split(separator: ",") {
                let kv = pair.split(separator: "=")
                switch kv[0] {
                case "compat": options.version = kv[1] == "0.10" ? 2 : 3
                case "cluster_size": options.clusterSize = UInt64(kv[1]) ?? 65536
                case "refcount_bits": options.refcountBits = UInt64(kv[1]) ?? 16
                default: break
                }
            }
            if variant.backing {
                options.backingFile = dir.file("base.raw")
                options.backingFormat = .raw
            }
            try QCOW2Image.create(path: image, options: options)
        }
        var random = TestRandom(seed: 99)
        do {
            let device = try DiskImage.open(path: image, format: .qcow2, readOnly: false)
            for step in 0..<300 {
                let length = Int(random.below(70_000)) + 1
                let offset = Int(random.below(UInt64(Self.size - length)))
                switch random.below(10) {
                case 0:
                    try device.writeZeroes(at: UInt64(offset), length: UInt64(length), unmap: step % 2 == 0)
                    for i in offset..<(offset + length) { model[i] = 0 }
                case 1:
                    // Discard leaves the content undefined; rewrite it right after so the model stays exact.
                    try device.discard(at: UInt64(offset), length: UInt64(length))
                    let data = random.bytes(length)
                    try device.writeBytes(data, at: UInt64(offset))
                    model.replaceSubrange(offset..<(offset + length), with: data)
                default:
                    let data = random.bytes(length)
                    try device.writeBytes(data, at: UInt64(offset))
                    model.replaceSubrange(offset..<(offset + length), with: data)
                }
                if step % 50 == 49 { try device.flush() }
            }
            #expect(try Self.readAll(device) == model)
            try device.close()
        }
        try Data(model).write(to: URL(fileURLWithPath: dir.file("model.raw")))
        let check = try QEMU.imgRun(["check", image])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let compare = try QEMU.imgRun(["compare", "-f", "qcow2", "-F", "raw", image, dir.file("model.raw")])
        #expect(compare.status == 0, "\(compare.stdout)\(compare.stderr)")
        let info = try QEMU.imgRun(["info", "--output=json", image])
        #expect(info.stdout.contains("\"dirty-flag\": false"))
    }

    @Test func infoAgreesWithQemuImg() throws {
        let dir = TempDir()
        try #require(try QEMU.imgRun(["create", "-f", "raw", dir.file("r.raw"), "3M"]).status == 0)
        try #require(try QEMU.imgRun(["create", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4096", dir.file("v2.qcow2"), "5M"]).status == 0)
        try #require(try QEMU.imgRun(["create", "-f", "qcow2", "-o", "cluster_size=2M,refcount_bits=64", "-b", "v2.qcow2", "-F", "qcow2", dir.file("v3.qcow2")]).status == 0)
        var options = QCOW2CreateOptions(size: 7 << 20)
        options.backingFile = "r.raw"
        options.backingFormat = .raw
        options.clusterSize = 16384
        try QCOW2Image.create(path: dir.file("s.qcow2"), options: options)
        for (name, format) in [("r.raw", DiskFormat.raw), ("v2.qcow2", .qcow2), ("v3.qcow2", .qcow2), ("s.qcow2", .qcow2)] {
            let ours = try ImageInfo.inspect(path: dir.file(name), format: format)
            let result = try QEMU.imgRun(["info", "--output=json", "-f", format.rawValue, dir.file(name)])
            let theirs = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            #expect(theirs["virtual-size"] as? UInt64 == ours.virtualSize, "\(name)")
            #expect(theirs["format"] as? String == ours.format, "\(name)")
            #expect(theirs["backing-filename"] as? String == ours.backingFilename, "\(name)")
            #expect(theirs["backing-filename-format"] as? String == ours.backingFilenameFormat, "\(name)")
            #expect(theirs["cluster-size"] as? UInt64 == ours.clusterSize, "\(name)")
            #expect(theirs["dirty-flag"] as? Bool == ours.dirtyFlag, "\(name)")
            let data = (theirs["format-specific"] as? [String: Any])?["data"] as? [String: Any]
            #expect(data?["compat"] as? String == ours.formatSpecific?.data.compat, "\(name)")
            #expect(data?["refcount-bits"] as? UInt64 == ours.formatSpecific?.data.refcountBits, "\(name)")
        }
    }

    @Test func convertCloneCommitAndRebaseMatchQemu() throws {
        let dir = TempDir()
        let reference = try Self.makeReference(dir.file("ref.raw"), seed: 11)
        // convert raw -> qcow2 (Skiff), compared by QEMU.
        let source = try DiskImage.open(path: dir.file("ref.raw"), format: .raw, readOnly: true)
        try ImageOperations.convert(source: source, to: dir.file("gold.qcow2"), format: .qcow2)
        try source.close()
        #expect(try QEMU.imgRun(["check", dir.file("gold.qcow2")]).status == 0)
        #expect(try QEMU.imgRun(["compare", "-F", "raw", dir.file("gold.qcow2"), dir.file("ref.raw")]).status == 0)
        // clone: a thin overlay, fast.
        let start = Date()
        try ImageOperations.clone(base: dir.file("gold.qcow2"), baseFormat: .qcow2, to: dir.file("vm.qcow2"))
        #expect(Date().timeIntervalSince(start) < 0.5)
        #expect(try QEMU.imgRun(["compare", dir.file("vm.qcow2"), dir.file("gold.qcow2")]).status == 0)
        // write into the clone, then rebase it onto nothing (flatten) and compare with QEMU's view.
        var expected = reference
        do {
            let vm = try DiskImage.open(path: dir.file("vm.qcow2"), format: .qcow2, readOnly: false)
            let data = [UInt8](repeating: 0x77, count: 100_000)
            try vm.writeBytes(data, at: 12345)
            expected.replaceSubrange(12345..<(12345 + data.count), with: data)
            try vm.close()
        }
        try Data(expected).write(to: URL(fileURLWithPath: dir.file("expected.raw")))
        try FileManager.default.copyItem(atPath: dir.file("vm.qcow2"), toPath: dir.file("flat.qcow2"))
        try ImageOperations.rebase(path: dir.file("flat.qcow2"), newBacking: nil, newFormat: nil, unsafe: false)
        #expect(try QEMU.imgRun(["check", dir.file("flat.qcow2")]).status == 0)
        #expect(try QEMU.imgRun(["compare", "-F", "raw", dir.file("flat.qcow2"), dir.file("expected.raw")]).status == 0)
        #expect(try ImageInfo.inspect(path: dir.file("flat.qcow2"), format: .qcow2).backingFilename == nil)
        // commit the clone into the golden image.
        try ImageOperations.commit(path: dir.file("vm.qcow2"))
        #expect(try QEMU.imgRun(["check", dir.file("gold.qcow2")]).status == 0)
        #expect(try QEMU.imgRun(["check", dir.file("vm.qcow2")]).status == 0)
        #expect(try QEMU.imgRun(["compare", "-F", "raw", dir.file("gold.qcow2"), dir.file("expected.raw")]).status == 0)
        #expect(try QEMU.imgRun(["compare", dir.file("vm.qcow2"), dir.file("gold.qcow2")]).status == 0)
        // grow: QEMU sees the new size and the old data.
        try ImageOperations.resize(path: dir.file("gold.qcow2"), format: .qcow2, size: 3 << 30)
        #expect(try QEMU.imgRun(["check", dir.file("gold.qcow2")]).status == 0)
        let info = try QEMU.imgRun(["info", "--output=json", dir.file("gold.qcow2")])
        #expect(info.stdout.contains("\"virtual-size\": \(3 << 30)"))
    }

    @Test func lazyRefcountsDirtyImageIsRepairedOnOpen() throws {
        let dir = TempDir()
        let path = dir.file("lazy.qcow2")
        var options = QCOW2CreateOptions(size: 4 << 20)
        options.lazyRefcounts = true
        options.clusterSize = 4096
        try QCOW2Image.create(path: path, options: options)
        do {
            let image = try DiskImage.openQCOW2(path: path, readOnly: false)
            try image.writeBytes([UInt8](repeating: 9, count: 50_000), at: 1000)
            try image.flush()
            // No close: the process "crashes" with the dirty bit set.
            #expect(try ImageInfo.inspect(path: path, format: .qcow2).dirtyFlag == true)
        }
        let image = try DiskImage.openQCOW2(path: path, readOnly: false)
        #expect(try image.readBytes(at: 1000, count: 50_000) == [UInt8](repeating: 9, count: 50_000))
        try image.close()
        #expect(try ImageInfo.inspect(path: path, format: .qcow2).dirtyFlag == false)
        let check = try QEMU.imgRun(["check", path])
        #expect(check.status == 0, "\(check.stdout)")
    }
}
