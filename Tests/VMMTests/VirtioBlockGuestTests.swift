import Foundation
import Storage
import Testing
@testable import VMM

/// virtio-blk against guest-kit drivers on real KVM: data that a FLUSH acknowledged is in
/// the image when the VMM is killed, read-only disks stay byte-identical, qcow2 images stay
/// clean, and a hostile driver changes nothing.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct VirtioBlockGuestTests {
    static let sectors = 2048
    static let marker = Array("SKIFF-BLK-HOST-DATA sector zero".utf8)

    /// A scratch directory removed at deinit.
    final class Scratch {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-blk-\(UUID().uuidString)")
        init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(at: url) }
        func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    }

    /// 1 MiB: the marker in sector 0, 0x77 in sectors 16-23 (WRITE_ZEROES target), a
    /// pattern everywhere else so any stray write shows.
    static func hostImage() -> [UInt8] {
        var bytes = (0..<(sectors * 512)).map { UInt8(truncatingIfNeeded: ($0 >> 9) &* 3 &+ $0 &* 5) }
        bytes.replaceSubrange(0..<512, with: [UInt8](repeating: 0, count: 512))
        bytes.replaceSubrange(0..<marker.count, with: marker)
        bytes.replaceSubrange((16 * 512)..<(24 * 512), with: [UInt8](repeating: 0x77, count: 8 * 512))
        return bytes
    }

    /// What the guest's mode=rw run leaves: sectors 1-8 in its pattern, 16-23 zero.
    static func expectedAfterGuestWrites(_ original: [UInt8]) -> [UInt8] {
        var bytes = original
        for s in 1...8 {
            for i in 0..<512 { bytes[s * 512 + i] = UInt8(truncatingIfNeeded: s * 29 + i * 7 + 1) }
        }
        bytes.replaceSubrange((16 * 512)..<(24 * 512), with: [UInt8](repeating: 0, count: 8 * 512))
        return bytes
    }

    static func qemuImg() -> String? {
        ["/usr/bin/qemu-img", "/usr/local/bin/qemu-img"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @discardableResult
    static func tool(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Writes the host image as `format` at `path` (qcow2 through qemu-img convert).
    static func makeImage(_ bytes: [UInt8], format: DiskFormat, at path: String, scratch: Scratch) throws {
        switch format {
        case .raw:
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        case .qcow2:
            let raw = scratch.path("source.raw")
            try Data(bytes).write(to: URL(fileURLWithPath: raw))
            let img = try #require(qemuImg(), "qemu-img is needed for qcow2 tests (Debian package qemu-utils)")
            let r = try tool(img, ["convert", "-f", "raw", "-O", "qcow2", raw, path])
            #expect(r.status == 0, "\(r.output)")
        }
    }

    /// The guest-visible bytes of `path`.
    static func imageBytes(_ path: String, format: DiskFormat, scratch: Scratch) throws -> [UInt8] {
        switch format {
        case .raw:
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        case .qcow2:
            let img = try #require(qemuImg())
            let out = scratch.path("converted.raw")
            try? FileManager.default.removeItem(atPath: out)
            let r = try tool(img, ["convert", "-f", "qcow2", "-O", "raw", path, out])
            #expect(r.status == 0, "\(r.output)")
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
        }
    }

    /// Runs `skiff` as a child, waits for `marker` on its stdout, then SIGKILLs it.
    /// Returns everything it printed; fails if the marker never came.
    static func runAndKill(after marker: String, arguments: [String], timeout: Double = 60) throws -> String {
        let process = Process()
        process.executableURL = CLITests.binDirectory.appendingPathComponent("skiff")
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        var collected = Data()
        while !String(decoding: collected, as: UTF8.self).contains(marker) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            collected.append(chunk)
        }
        let sawMarker = String(decoding: collected, as: UTF8.self).contains(marker)
        kill(pid, SIGKILL)
        process.waitUntilExit()
        watchdog.cancel()
        let output = String(decoding: collected, as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(sawMarker, "no '\(marker)' before the VMM ended: \(output)\(errors)")
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL,
                "the VMM was not killed by SIGKILL: \(output)\(errors)")
        return output
    }

    /// qcow2 tests need qemu-img to make and check images: always in CI, elsewhere when installed.
    static let qcow2Tools = qemuImg() != nil || KVMAvailability.inCI

    @Test func flushedWritesAreInARawImageAfterSIGKILL() throws {
        try flushThenKill(format: .raw)
    }

    @Test(.enabled(if: qcow2Tools, "qemu-img is missing (Debian package qemu-utils)"))
    func flushedWritesAreInAQcow2ImageAfterSIGKILL() throws {
        try flushThenKill(format: .qcow2)
    }

    func flushThenKill(format: DiskFormat) throws {
        let scratch = try Scratch()
        let path = scratch.path("disk.\(format.rawValue)")
        let original = Self.hostImage()
        try Self.makeImage(original, format: format, at: path, scratch: scratch)
        let output = try Self.runAndKill(after: "flushed\n", arguments: [
            "run", "--kernel", try GuestKit.path("virtio-blk.elf"), "--memory", "64M",
            "--disk", "\(path),format=\(format.rawValue),serial=kill-\(format.rawValue)",
        ])
        #expect(output.contains("virtio-blk 00:01.0 capacity 2048 ro 0 features 0x130006246"), "\(output)")
        #expect(output.contains("serial \"kill-\(format.rawValue)\""), "\(output)")
        #expect(output.contains("sector 0 \"SKIFF-BLK-HOST-DATA sector zero.\""), "\(output)")
        #expect(output.contains("readback ok\nwrite-zeroes ok\nflushed\n"), "\(output)")
        // The VMM died without closing anything: what FLUSH acknowledged must be there.
        let after = try Self.imageBytes(path, format: format, scratch: scratch)
        let expected = Self.expectedAfterGuestWrites(original)
        #expect(after.count == expected.count)
        #expect(after == expected, "first difference at byte \(zip(after, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
        if format == .qcow2 {
            let check = try Self.tool(try #require(Self.qemuImg()), ["check", path])
            #expect(check.status == 0, "qemu-img check: \(check.output)")
        }
    }

    @Test(.enabled(if: qcow2Tools, "qemu-img is missing (Debian package qemu-utils)"))
    func qcow2DiskClosedCleanlyPassesQemuImgCheck() throws {
        let img = try #require(Self.qemuImg(), "qemu-img is required in CI")
        let scratch = try Scratch()
        let path = scratch.path("disk.qcow2")
        let original = Self.hostImage()
        try Self.makeImage(original, format: .qcow2, at: path, scratch: scratch)
        let run = try GuestKit.boot("virtio-blk.elf", cmdline: "end=pass") {
            $0.devices = [.block(path: path, format: .qcow2, readOnly: false, serial: nil)]
        }
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(run.output.contains("serial \"disk.qcow2\""), "\(run.output)")
        let check = try Self.tool(img, ["check", path])
        #expect(check.status == 0 && check.output.contains("No errors were found"), "\(check.output)")
        #expect(try Self.imageBytes(path, format: .qcow2, scratch: scratch) == Self.expectedAfterGuestWrites(original))
    }

    @Test func readOnlyDiskRefusesWritesAndStaysByteIdentical() throws {
        let scratch = try Scratch()
        let path = scratch.path("ro.img")
        let original = Self.hostImage()
        try Self.makeImage(original, format: .raw, at: path, scratch: scratch)
        let run = try GuestKit.boot("virtio-blk.elf", cmdline: "mode=ro") {
            $0.devices = [.block(path: path, format: .raw, readOnly: true, serial: "ro-serial")]
        }
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(run.output.contains("capacity 2048 ro 1"), "\(run.output)")
        #expect(run.output.contains("serial \"ro-serial\""), "\(run.output)")
        #expect(run.output.contains("readonly discard status 1"), "\(run.output)")
        #expect(run.output.contains("readonly writes refused"), "\(run.output)")
        #expect(try Self.imageBytes(path, format: .raw, scratch: scratch) == original)
    }

    @Test func hostileDriverGetsErrorsAndResetsAndWritesNothing() throws {
        let scratch = try Scratch()
        let path = scratch.path("hostile.img")
        let original = Self.hostImage()
        try Self.makeImage(original, format: .raw, at: path, scratch: scratch)
        let run = try GuestKit.boot("virtio-blk-hostile.elf", timeout: 120) {
            $0.devices = [.block(path: path, format: .raw, readOnly: false, serial: nil)]
        }
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        // Skiff answers every bad request with a status (never a reset) ...
        for line in ["bad read-at-capacity -> status 1", "bad write-crossing-end -> status 1",
                     "bad read-sector-times-512-overflows -> status 1", "bad write-100-bytes -> status 1",
                     "bad short-header -> status 1", "bad no-status -> used 0 no status",
                     "bad read-into-readable-buffer -> status 1", "bad write-from-writable-buffer -> status 1",
                     "bad get-id-19-bytes -> status 1", "bad type-ffffffff -> status 2",
                     "bad write-zeroes-unknown-flag -> status 2", "bad write-zeroes-too-many-segments -> status 2",
                     "bad write-zeroes-20-bytes -> status 1", "bad discard-with-unmap -> status 2",
                     "bad discard-at-capacity -> status 1", "hostile requests 21 chains 19"] {
            #expect(run.output.contains(line + "\n"), "missing '\(line)': \(run.output)")
        }
        #expect(!run.output.contains("-> needs-reset\nbad"), "a bad request made the device ask for a reset")
        // ... and every broken chain with DEVICE_NEEDS_RESET, after which it works again.
        #expect(run.output.components(separatedBy: " -> needs-reset\n").count - 1 == 19, "\(run.output)")
        #expect(try Self.imageBytes(path, format: .raw, scratch: scratch) == original)
    }

    @Test func guestResetReopensTheDiskAndStopReleasesIt() throws {
        let scratch = try Scratch()
        let path = scratch.path("reboot.img")
        try Self.makeImage(Self.hostImage(), format: .raw, at: path, scratch: scratch)
        // Each restart builds a new machine: the old one must have closed (and unlocked) the disk.
        let run = try GuestKit.boot("i8042-reset.elf", onReboot: .restart, timeout: 60) {
            $0.devices = [.block(path: path, format: .raw, readOnly: false, serial: nil)]
        } whileRunning: { vm, console in
            while console.text.components(separatedBy: "resetting").count - 1 < 3 {
                _ = console.waitFor("resetting\n", timeout: 1)
            }
            vm.stop()
        }
        #expect(run.outcome == .stopped, "\(run.outcome)")
        #expect(run.vm.boots >= 3)
        let reopened = try DiskImage.open(path: path, format: .raw, readOnly: false)
        try reopened.close()
    }

    @Test func diskProblemsAreOneClearLineBeforeBoot() throws {
        let scratch = try Scratch()
        let kernel = try GuestKit.path("hello.elf")
        let raw = scratch.path("disk.raw")
        try Data(Self.hostImage()).write(to: URL(fileURLWithPath: raw))
        let junk = scratch.path("junk.qcow2")
        try Data(repeating: 0x42, count: 4096).write(to: URL(fileURLWithPath: junk))
        let cases: [([String], String)] = [
            (["--disk", scratch.path("missing.img")], "cannot open disk \(scratch.path("missing.img")) (raw): "),
            (["--disk", junk + ",format=qcow2"], "not a qcow2 image"),
            (["--disk", raw, "--disk", raw], "in use"),
            (["--disk", raw + ",format=vmdk"], "unknown format 'vmdk'"),
            (["--disk", raw + ",readonly,cache=none"], "unknown option 'cache=none'"),
            (["--disk", raw + ",serial=this-serial-is-far-too-long"], "serial must be 1 to 20"),
            (["--disk", raw + ",format=raw,format=qcow2"], "'format' given twice"),
            (["--disk", ",readonly"], "missing image path"),
        ]
        for (extra, expected) in cases {
            let r = try CLITests.run("skiff", ["run", "--kernel", kernel, "--memory", "64M"] + extra)
            #expect(r.status != 0 && r.status != 33, "\(extra): \(r.stdout)")
            #expect(r.stderr.hasPrefix("skiff: error: ") && r.stderr.split(separator: "\n").count == 1, "\(extra): \(r.stderr)")
            #expect(r.stderr.contains(expected), "\(extra): \(r.stderr)")
            #expect(!r.stdout.contains("Hello from Skiff"), "\(extra): booted anyway")
        }
        // A comma in the path is written twice.
        let comma = scratch.path("a,b.img")
        try Data(Self.hostImage()).write(to: URL(fileURLWithPath: comma))
        let ok = try CLITests.run("skiff", ["run", "--kernel", kernel, "--memory", "64M", "--disk", comma.replacingOccurrences(of: ",", with: ",,") + ",readonly"])
        #expect(ok.status == 33, "\(ok.stderr)")
    }
}
