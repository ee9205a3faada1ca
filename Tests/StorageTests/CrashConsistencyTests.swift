import Foundation
import Testing
@testable import Storage

/// SIGKILL a writer process at random points of a random write/flush workload on a qcow2 overlay, then
/// check with qemu-img and verify that every write completed before an acknowledged flush survived.
@Suite(.serialized, .enabled(if: QEMU.shouldRun)) struct CrashConsistencyTests {
    static let diskSize = 8 << 20

    static func stressTool() throws -> String {
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let dir = (exe as NSString).deletingLastPathComponent
        let path = dir + "/skiff-storage-stress"
        try #require(FileManager.default.isExecutableFile(atPath: path), "build skiff-storage-stress first (swift build)")
        return path
    }

    /// Bytes of the workload's disk after ops 1...flushed, with bytes of later ops (which may or may not
    /// have landed) marked uncertain.
    static func expectedContent(seed: UInt64, flushed: Int) -> (bytes: [UInt8], uncertain: [Bool]) {
        var bytes = [UInt8](repeating: 0, count: diskSize)
        for i in 0..<diskSize { bytes[i] = StressWorkload.backingPattern(UInt64(i)) }
        var uncertain = [Bool](repeating: false, count: diskSize)
        var workload = StressWorkload(seed: seed, diskSize: UInt64(diskSize))
        var flushesAfter = 0
        while flushesAfter < 2 {
            let op = workload.nextOperation()
            let index = workload.index
            switch op {
            case .flush:
                if index > flushed { flushesAfter += 1 }
            case .write(let offset, let length), .zero(let offset, let length):
                let start = Int(offset)
                if index <= flushed {
                    if case .write = op {
                        for i in start..<(start + length) { bytes[i] = StressWorkload.pattern(op: index, offset: UInt64(i)) }
                    } else {
                        for i in start..<(start + length) { bytes[i] = 0 }
                    }
                } else {
                    for i in start..<(start + length) { uncertain[i] = true }
                }
            }
        }
        return (bytes, uncertain)
    }

    @Test func sigkillAtFiftyRandomPointsLeavesNoCorruption() throws {
        let tool = try Self.stressTool()
        let dir = TempDir()
        var base = [UInt8](repeating: 0, count: Self.diskSize)
        for i in 0..<Self.diskSize { base[i] = StressWorkload.backingPattern(UInt64(i)) }
        try Data(base).write(to: URL(fileURLWithPath: dir.file("base.raw")))
        var random = TestRandom(seed: 2024)
        var killsWithFlushes = 0
        for round in 0..<50 {
            let image = dir.file("crash\(round).qcow2")
            var options = QCOW2CreateOptions(size: UInt64(Self.diskSize))
            options.clusterSize = [4096, 65536, 512, 16384][round % 4]
            options.version = round % 5 == 4 ? 2 : 3
            options.backingFile = dir.file("base.raw")
            options.backingFormat = .raw
            try QCOW2Image.create(path: image, options: options)
            let seed = random.next() | 1
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = ["crash-writer", image, "\(seed)"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(useconds_t(20_000 + random.below(200_000)))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "writer exited early in round \(round)")
            let lines = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .split(separator: "\n")
            let flushed = lines.last.flatMap { Int($0.dropFirst(2)) } ?? 0
            if flushed > 0 { killsWithFlushes += 1 }

            let check = try QEMU.imgRun(["check", image])
            #expect(check.status == 0 || check.status == 3, "round \(round): \(check.stdout)")

            let (expected, uncertain) = Self.expectedContent(seed: seed, flushed: flushed)
            let device = try DiskImage.open(path: image, format: .qcow2, readOnly: true)
            let actual = try device.readBytes(at: 0, count: Self.diskSize)
            try device.close()
            var firstBad: Int?
            for i in 0..<Self.diskSize where !uncertain[i] && actual[i] != expected[i] {
                firstBad = i
                break
            }
            #expect(firstBad == nil, "round \(round): byte \(firstBad ?? -1) lost after flush \(flushed) seed \(seed)")
            if firstBad != nil { try? FileManager.default.copyItem(atPath: image, toPath: "/tmp/crash-fail-\(round).qcow2") }
            // QEMU reads the same content as Skiff, every round.
            try #require(try QEMU.imgRun(["convert", "-O", "raw", image, dir.file("q.raw")]).status == 0)
            #expect(try fileBytes(dir.file("q.raw")) == actual, "round \(round): QEMU and Skiff disagree")
            try? FileManager.default.removeItem(atPath: image)
        }
        #expect(killsWithFlushes >= 25, "too few rounds reached a flush before the kill")
    }
}

/// Whether this process can mount a small tmpfs (root with CAP_SYS_ADMIN), tried once.
enum TmpfsMount {
    static let problem: String? = {
        let dir = TempDir()
        do {
            let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir.path])
            if mounted.status != 0 { return "cannot mount a tmpfs (needs root): \(mounted.stderr.trimmingCharacters(in: .whitespacesAndNewlines))" }
            _ = try run("/bin/umount", [dir.path])
            return nil
        } catch {
            return "cannot run mount: \(error)"
        }
    }()

    /// Run in CI always (a failed mount then fails the test), elsewhere only when mounting works.
    static var shouldRun: Bool {
        if !QEMU.isCI, let problem { print("skipping the disk-full test: \(problem)") }
        return QEMU.isCI || problem == nil
    }
}

/// A full host file system: the caller gets ENOSPC, nothing is corrupted, and writes work again after space is freed.
@Suite(.serialized, .enabled(if: QEMU.shouldRun), .enabled(if: TmpfsMount.shouldRun, "needs root to mount a tmpfs")) struct DiskFullTests {
    @Test func enospcIsReportedAndRecoverable() throws {
        let dir = TempDir()
        let mountPoint = dir.file("tmpfs")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=12m", "tmpfs", mountPoint])
        try #require(mounted.status == 0, "cannot mount a tmpfs: \(mounted.stderr)")
        defer { _ = try? run("/bin/umount", [mountPoint]) }
        var base = [UInt8](repeating: 0, count: 32 << 20)
        for i in stride(from: 0, to: base.count, by: 4096) { base[i] = UInt8(truncatingIfNeeded: i >> 12) }
        try Data(base).write(to: URL(fileURLWithPath: dir.file("base.raw")))
        let image = mountPoint + "/disk.qcow2"
        var options = QCOW2CreateOptions(size: 32 << 20)
        options.backingFile = dir.file("base.raw")
        options.backingFormat = .raw
        try QCOW2Image.create(path: image, options: options)
        try Data(count: 3 << 20).write(to: URL(fileURLWithPath: mountPoint + "/filler"))

        var model = base
        var random = TestRandom(seed: 8)
        let device = try DiskImage.open(path: image, format: .qcow2, readOnly: false)
        var offset = 0
        var sawNoSpace = false
        var failedAt = 0
        while offset + (1 << 20) <= model.count {
            let data = random.bytes(1 << 20)
            do {
                try device.writeBytes(data, at: UInt64(offset))
                try device.flush()
                model.replaceSubrange(offset..<(offset + data.count), with: data)
            } catch let error as StorageError {
                #expect(error == .noSpace(path: image), "\(error)")
                #expect(error.errno == ENOSPC)
                sawNoSpace = true
                failedAt = offset
                break
            }
            offset += 1 << 20
        }
        #expect(sawNoSpace)
        // Everything acknowledged so far reads back.
        #expect(try device.readBytes(at: 0, count: failedAt) == Array(model[0..<failedAt]))
        // Free space; the same write now succeeds.
        try FileManager.default.removeItem(atPath: mountPoint + "/filler")
        let retry = random.bytes(1 << 20)
        try device.writeBytes(retry, at: UInt64(failedAt))
        try device.flush()
        model.replaceSubrange(failedAt..<(failedAt + retry.count), with: retry)
        try device.close()
        let check = try QEMU.imgRun(["check", image])
        #expect(check.status == 0 || check.status == 3, "\(check.stdout)")
        try Data(model).write(to: URL(fileURLWithPath: dir.file("model.raw")))
        let compare = try QEMU.imgRun(["compare", "-F", "raw", image, dir.file("model.raw")])
        #expect(compare.status == 0, "\(compare.stdout)")
    }
}
