import ControlProtocol
import Foundation
import Snapshot
import Testing
@testable import VMM

/// A snapshot is untrusted input: every kind of damage is refused with one clear line and
/// nothing is built; the files are left as they were.
@Suite(.serialized, .enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct SnapshotFileTests {
    /// One good snapshot of a small running guest, shared by the tests (written once).
    static let good: ScratchDirectory = {
        let dir = ScratchDirectory("skiff-snapfile")
        do {
            let vm = try RunningVM.boot("workload.elf", cmdline: "mib=4 report=200", memory: 32 << 20)
            _ = vm.waitFor("WL seq=400 ")
            _ = try vm.vm.createSnapshot(SnapshotRequest(directory: dir.file("good"), stopAfter: true))
            vm.finish()
        } catch {
            Issue.record("cannot make the snapshot: \(error)")
        }
        return dir
    }()

    /// Copies the good snapshot to a new directory and applies `damage` to its state file bytes.
    func damaged(_ name: String, state damage: (inout [UInt8]) -> Void = { _ in }, memory: ((String) throws -> Void)? = nil) throws -> String {
        let target = Self.good.file(name)
        try? FileManager.default.removeItem(atPath: target)
        try FileManager.default.copyItem(atPath: Self.good.file("good"), toPath: target)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: target + "/state")))
        damage(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: target + "/state"))
        try memory?(target + "/memory")
        return target
    }

    func refusal(_ directory: String) -> String? {
        do {
            _ = try VirtualMachine.restore(from: directory, console: CapturedConsoleOutput())
            return nil
        } catch {
            return error.message
        }
    }

    @Test func theGoodSnapshotRestores() throws {
        let vm = try RunningVM.restore(Self.good.file("good"))
        #expect(vm.waitFor("WL seq=1000 "), "\(vm.text)")
        vm.stop()
    }

    @Test func aFlippedByteInAnySectionIsACorruptSection() throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Self.good.file("good/state"))))
        var generator = SplitMix(seed: 42)
        for round in 0..<12 {
            // Skip the header and trailer: a flip there is another error, tested below.
            let offset = 16 + Int(generator.next() % UInt64(bytes.count - 32))
            let dir = try damaged("flip\(round)") { $0[offset] ^= 0x40 }
            let message = try #require(refusal(dir), "byte \(offset)")
            #expect(message.contains("corrupt") || message.contains("checksum") || message.contains("section"), "byte \(offset): \(message)")
        }
    }

    @Test func truncatedAndEmptyStateFilesAreRefused() throws {
        let size = try #require(try FileManager.default.attributesOfItem(atPath: Self.good.file("good/state"))[.size] as? Int)
        for keep in [0, 3, 8, 15, 40, size / 2, size - 17, size - 1] {
            let dir = try damaged("cut\(keep)") { $0.removeLast($0.count - keep) }
            let message = try #require(refusal(dir), "kept \(keep) bytes")
            #expect(message.contains("truncated") || message.contains("not a Skiff snapshot") || message.contains("checksum"), "kept \(keep): \(message)")
        }
    }

    @Test func anotherFormatVersionIsRefused() throws {
        let dir = try damaged("version") { $0[8] = 99 }
        #expect(refusal(dir) == "snapshot format version 99 is not supported (this Skiff reads version \(StateFile.formatVersion))")
        let notOurs = try damaged("magic") { $0[0] = UInt8(ascii: "X") }
        #expect(refusal(notOurs)?.contains("is not a Skiff snapshot state file") == true)
    }

    @Test func unknownSectionsAndOversizedFilesAreRefused() throws {
        // A well-formed file with an extra section (correct checksums) is still refused.
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: Self.good.file("good/state"))))
        let parsed = try StateFile(parsing: original, path: "state", known: SnapshotSection.all)
        let dir = try damaged("unknown") { bytes in
            var file = StateFile()
            for s in parsed.sections { file.appendRaw(s.name, s.payload) }
            file.appendRaw("future-device", [1, 2, 3])
            bytes = file.serialized()
        }
        #expect(refusal(dir)?.contains("unknown section 'future-device'") == true, "\(refusal(dir) ?? "")")
        let huge = try damaged("huge") { $0 += [UInt8](repeating: 0, count: Int(StateFile.maxFileSize)) }
        #expect(refusal(huge)?.contains("more than the limit") == true, "\(refusal(huge) ?? "")")
    }

    @Test func aShortOrMissingMemoryFileIsRefused() throws {
        let short = try damaged("short-memory", memory: { path in
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.truncate(atOffset: 1 << 20)
            try handle.close()
        })
        #expect(refusal(short)?.contains("truncated") == true, "\(refusal(short) ?? "")")
        let missing = try damaged("no-memory", memory: { try FileManager.default.removeItem(atPath: $0) })
        #expect(refusal(missing)?.contains("cannot open") == true, "\(refusal(missing) ?? "")")
    }

    @Test func aSnapshotDirectoryThatExistsIsNotOverwritten() throws {
        let vm = try RunningVM.boot("workload.elf", cmdline: "mib=4", memory: 32 << 20)
        defer { vm.stop() }
        #expect(vm.waitFor("WL seq=1000 "))
        let target = Self.good.file("good")
        let before = try Data(contentsOf: URL(fileURLWithPath: target + "/state"))
        #expect(throws: VMError.self) { try vm.vm.createSnapshot(SnapshotRequest(directory: target)) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: target + "/state")) == before)
        // The VM was resumed after the failed attempt.
        #expect(vm.vm.status().state == .running)
        #expect(throws: VMError.self) { try vm.vm.createSnapshot(SnapshotRequest(directory: "/nonexistent-parent/x")) }
        #expect(throws: VMError.self) { try vm.vm.createSnapshot(SnapshotRequest(directory: Self.good.file("d"), diff: true)) }
        let stray = try FileManager.default.contentsOfDirectory(atPath: Self.good.path).filter { $0.contains(".partial-") }
        #expect(stray.isEmpty, "temporary directories left: \(stray)")
    }

    @Test func overridesMustMatchTheSnapshotsDevices() throws {
        var options = RestoreOptions()
        options.deviceOverrides = [.rng]
        #expect(throws: VMError.self) { try VirtualMachine.restore(from: Self.good.file("good"), options: options, console: CapturedConsoleOutput()) }
        options = RestoreOptions()
        options.cpuTemplate = .host
        #expect(throws: VMError.self) { try VirtualMachine.restore(from: Self.good.file("good"), options: options, console: CapturedConsoleOutput()) }
    }
}
