import ControlProtocol
import Foundation
import Snapshot
import Testing
import WorkloadCheck
@testable import VMM

/// Snapshots of real KVM guests: a running guest is paused, written, and continued from the
/// files by a new VM; the guest's own output proves nothing was lost or repeated.
@Suite(.serialized, .enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct SnapshotTests {
    static let workload = (mib: UInt64(8), report: UInt64(200))
    static var workloadCommandLine: String { "mib=\(workload.mib) report=\(workload.report)" }
    static let checker = WorkloadChecker(pages: workload.mib * 256, report: workload.report)

    /// Boots the workload, lets it run, pauses it and writes a snapshot; returns the output the
    /// guest printed up to the pause.
    func snapshotWorkload(into directory: String, after seq: Int = 2000, diffAfter: Int? = nil, diffDirectory: String? = nil) throws -> String {
        let source = try RunningVM.boot("workload.elf", cmdline: Self.workloadCommandLine)
        defer { source.stop() }
        #expect(source.waitFor("WL seq=\(seq) "), "\(source.text)")
        _ = try source.vm.createSnapshot(SnapshotRequest(directory: directory))
        if let diffAfter, let diffDirectory {
            #expect(source.waitFor("WL seq=\(diffAfter) "), "\(source.text)")
            try source.vm.pause()
            let printed = source.text
            let summary = try source.vm.createSnapshot(SnapshotRequest(directory: diffDirectory, diff: true, stopAfter: true))
            #expect(summary.diff && !summary.resumed)
            return printed
        }
        try source.vm.pause()
        let printed = source.text
        _ = try source.vm.createSnapshot(SnapshotRequest(directory: directory + "-final", stopAfter: true))
        return printed
    }

    @Test func theWorkloadContinuesExactlyWhereItWasSnapshotted() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        let before = try snapshotWorkload(into: dir.file("a"))
        let restored = try RunningVM.restore(dir.file("a-final"))
        let lastBefore = try #require(WorkloadChecker.lines(before).last).seq
        #expect(restored.waitFor("WL seq=\(lastBefore + 6 * Self.workload.report) "), "\(restored.text)")
        restored.stop()
        let combined = before + restored.text
        #expect(Self.checker.problems(combined).isEmpty, "\(Self.checker.problems(combined))")
        // The guest verified its pages after the restore too.
        #expect(restored.text.contains("ok\n") && restored.text.contains("WL verify seq="), "\(restored.text)")
        #expect(restored.vm.status().restoredFrom == dir.file("a-final"))
    }

    @Test func aRunningVMKeepsRunningAfterASnapshot() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        let vm = try RunningVM.boot("workload.elf", cmdline: Self.workloadCommandLine)
        defer { vm.stop() }
        #expect(vm.waitFor("WL seq=1000 "))
        let summary = try vm.vm.createSnapshot(SnapshotRequest(directory: dir.file("s")))
        #expect(summary.resumed && summary.pagesWritten > 0 && summary.memoryFileBytes == 64 << 20)
        let seqAtSnapshot = try #require(WorkloadChecker.lines(vm.text).last).seq
        #expect(vm.waitFor("WL seq=\(seqAtSnapshot + 3 * Self.workload.report) "), "the VM runs on: \(vm.text.suffix(300))")
        #expect(Self.checker.problems(vm.text).isEmpty)
        #expect(vm.vm.status().state == .running)
        // The files exist and nothing else was left behind.
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(entries == ["s"])
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir.file("s"))) == ["state", "memory"])
    }

    @Test func aDiffSnapshotHoldsOnlyChangedPagesAndRestoresThroughItsParent() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        let before = try snapshotWorkload(into: dir.file("base"), after: 1000, diffAfter: 3000, diffDirectory: dir.file("diff"))
        let full = try FileManager.default.attributesOfItem(atPath: dir.file("base/memory"))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir.file("diff/state")))
        let file = try StateFile(parsing: Array(bytes), path: "diff/state", known: SnapshotSection.all)
        let image = try file.decode(MemoryImage.self, section: SnapshotSection.memory)
        let diffPages = image.pages.map { $0.reduce(0) { $0 + $1.nonzeroBitCount } } ?? -1
        // The workload touches at most 2000 pages between the snapshots, plus stack and rings.
        #expect(diffPages > 0 && diffPages < 4096, "\(diffPages) pages in the diff")
        #expect((full[.size] as? Int) == 64 << 20)
        let restored = try RunningVM.restore(dir.file("diff"))
        let last = try #require(WorkloadChecker.lines(before).last).seq
        #expect(restored.waitFor("WL seq=\(last + 4 * Self.workload.report) "), "\(restored.text)")
        restored.stop()
        #expect(Self.checker.problems(before + restored.text).isEmpty, "\(Self.checker.problems(before + restored.text))")
    }

    @Test func aRestoredVMCanWriteADiffAgainstTheSnapshotItCameFrom() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        _ = try snapshotWorkload(into: dir.file("a"), after: 600)
        let restored = try RunningVM.restore(dir.file("a-final"))
        let before = try #require(WorkloadChecker.lines(restored.text.isEmpty ? "" : restored.text).last?.seq ?? 0)
        #expect(restored.waitFor("WL seq=\(before + 2000) "), "\(restored.text)")
        try restored.vm.pause()
        let printed = restored.text
        let summary = try restored.vm.createSnapshot(SnapshotRequest(directory: dir.file("d"), diff: true, stopAfter: true))
        restored.finish()
        // Only the workload's pages and a few of the guest's own: far fewer than the 16384 of RAM.
        #expect(summary.diff && summary.pagesWritten < 3000, "\(summary)")
        let again = try RunningVM.restore(dir.file("d"))
        let last = try #require(WorkloadChecker.lines(printed).last).seq
        #expect(again.waitFor("WL seq=\(last + 3 * Self.workload.report) "), "\(again.text)")
        again.stop()
        #expect(Self.checker.problems(printed + again.text).isEmpty, "\(Self.checker.problems(printed + again.text))")
    }

    @Test func anSMPGuestExchangingIPIsContinues() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        let source = try RunningVM.boot("smp-ipi.elf", cmdline: "report=500 stop=20000", cpus: 2)
        #expect(source.waitFor("IPI round=1500 "), "\(source.text)")
        _ = try source.vm.createSnapshot(SnapshotRequest(directory: dir.file("s"), stopAfter: true))
        source.finish()
        let restored = try RunningVM.restore(dir.file("s"))
        #expect(restored.finish(timeout: 120) == GuestKit.passStatus, "\(restored.text)")
        #expect(!source.text.contains("IPI round=20000"), "the snapshot was taken mid-run")
        #expect(restored.text.contains("IPI round=20000 counts=20000,20000"), "\(restored.text)")
        #expect(!restored.text.contains("token lost"))
    }

    @Test(arguments: ["oneshot", "tsc-deadline"])
    func aTimerArmedBeforeTheSnapshotFiresAfterTheRestore(_ mode: String) throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        let source = try RunningVM.boot("lapic-timer.elf", cmdline: "mode=\(mode) delay-ms=1500")
        #expect(source.waitFor("TIMER armed"), "\(source.text)")
        _ = try source.vm.createSnapshot(SnapshotRequest(directory: dir.file("s"), stopAfter: true))
        source.finish()
        #expect(!source.text.contains("TIMER fired"), "the snapshot was taken before the timer fired")
        let restored = try RunningVM.restore(dir.file("s"))
        #expect(restored.finish(timeout: 60) == GuestKit.passStatus, "\(restored.text)")
        #expect(restored.text.contains("TIMER fired"), "\(restored.text)")
    }

    @Test func theGuestSeesANewGenerationIDAfterARestore() throws {
        let dir = ScratchDirectory()
        defer { dir.cleanup() }
        let source = try RunningVM.boot("vmgenid.elf", cmdline: "require=1 stop=changes:1")
        #expect(source.waitFor("VMGENID addr="), "\(source.text)")
        let before = source.vm.status().generationID
        _ = try source.vm.createSnapshot(SnapshotRequest(directory: dir.file("s"), stopAfter: true))
        source.finish()
        let restored = try RunningVM.restore(dir.file("s"))
        #expect(restored.finish(timeout: 60) == GuestKit.passStatus, "\(restored.text)")
        let after = try #require(restored.vm.status().generationID)
        #expect(after != before)
        // The guest read the new ID from memory and printed it in memory byte order.
        #expect(restored.text.contains("VMGENID changed guid=\(after)"), "\(restored.text) vs \(after)")
    }

    @Test func pauseStopsTheGuestAndResumeContinuesIt() throws {
        let vm = try RunningVM.boot("workload.elf", cmdline: Self.workloadCommandLine)
        defer { vm.stop() }
        #expect(vm.waitFor("WL seq=600 "))
        try vm.vm.pause()
        #expect(vm.vm.status().state == .paused)
        #expect(throws: VMError.self) { try vm.vm.pause() }
        let frozen = vm.text
        Thread.sleep(forTimeInterval: 1)
        #expect(vm.text == frozen, "no output while paused")
        try vm.vm.resume()
        #expect(throws: VMError.self) { try vm.vm.resume() }
        let last = try #require(WorkloadChecker.lines(frozen).last).seq
        #expect(vm.waitFor("WL seq=\(last + 2 * Self.workload.report) "), "\(vm.text.suffix(200))")
        #expect(Self.checker.problems(vm.text).isEmpty)
    }
}
