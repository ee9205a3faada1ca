import ControlProtocol
import Foundation
import Migration
import Storage
import Synchronization
import Testing
import WorkloadCheck
@testable import VMM

/// A migration target in this process: listens, receives the VM, then runs it.
final class IncomingVM: @unchecked Sendable {
    let endpoint: MigrationEndpoint
    let console = CapturedConsoleOutput()
    private let received = DispatchSemaphore(value: 0)
    private let state = Mutex<(vm: RunningVM?, error: String?)>((nil, nil))

    init(_ endpoint: MigrationEndpoint, options: IncomingOptions = IncomingOptions()) throws {
        self.endpoint = endpoint
        let listener = try MigrationListener(endpoint: endpoint)
        let console = self.console
        Thread.detachNewThread { [self] in
            do {
                var o = options
                o.acceptTimeout = 60
                let vm = try VirtualMachine.receiveMigration(on: listener, options: o, console: console)
                state.withLock { $0.vm = RunningVM(vm, console: console) }
            } catch {
                state.withLock { $0.error = "\(error)" }
            }
            received.signal()
        }
    }

    /// The running VM once it arrived, or the error that ended the attempt.
    func wait(timeout: Double = 120) -> (vm: RunningVM?, error: String?) {
        _ = received.wait(timeout: .now() + timeout)
        received.signal()
        return state.withLock { $0 }
    }
}

@Suite(.serialized, .enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct MigrationTests {
    static let checker = WorkloadChecker(pages: 8 * 256, report: 200)

    func waitForMigration(_ vm: VirtualMachine, timeout: Double = 120) -> MigrationProgress {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let p = vm.migrationProgress()
            switch p.phase {
            case .completed, .failed, .cancelled: return p
            default: Thread.sleep(forTimeInterval: 0.02)
            }
        }
        return vm.migrationProgress()
    }

    @Test(arguments: ["max", "0"])
    func aRunningWorkloadMovesWithNothingLostOrRepeated(_ dirty: String) throws {
        let dir = ScratchDirectory("skiff-mig")
        defer { dir.cleanup() }
        let target = try IncomingVM(.unix(path: dir.file("m.sock")))
        let source = try RunningVM.boot("workload.elf", cmdline: "mib=8 report=200 dirty=\(dirty)")
        #expect(source.waitFor(dirty == "0" ? "WL heartbeat n=2" : "WL seq=1000 "), "\(source.text)")
        _ = try source.vm.startMigration(MigrationRequest(destination: target.endpoint, maxDowntimeMilliseconds: 50))
        let progress = waitForMigration(source.vm)
        #expect(progress.phase == .completed, "\(progress)")
        #expect(source.finish(timeout: 30) == .stopped)
        let arrived = target.wait()
        let vm = try #require(arrived.vm, "\(arrived.error ?? "")")
        defer { vm.stop() }
        if dirty == "0" {
            #expect(vm.waitFor("WL heartbeat n=\(source.text.components(separatedBy: "heartbeat").count + 2)"), "\(vm.text)")
        } else {
            let last = try #require(WorkloadChecker.lines(source.text).last).seq
            #expect(vm.waitFor("WL seq=\(last + 5 * 200) "), "\(vm.text)")
            vm.stop()
            let combined = source.text + vm.text
            #expect(Self.checker.problems(combined).isEmpty, "\(Self.checker.problems(combined))")
        }
        // Zero pages travel as tokens: most of the 64 MiB was never touched.
        #expect(progress.zeroPages > 8000, "\(progress)")
        #expect(progress.rounds >= 1 && (progress.downtimeMilliseconds ?? 0) > 0)
        print("migration (dirty=\(dirty)): \(progress.rounds) rounds, \(progress.bytesSent) bytes, \(progress.pagesSent) pages (\(progress.zeroPages) zero), downtime \(progress.downtimeMilliseconds ?? -1) ms, total \(progress.totalMilliseconds) ms")
    }

    /// A guest halted with interrupts off never leaves KVM_RUN by itself: nothing the move
    /// needs may wait for it (it once waited forever reading the TSC frequency from the vCPU).
    @Test func aGuestHaltedWithInterruptsOffMoves() throws {
        let dir = ScratchDirectory("skiff-mig")
        defer { dir.cleanup() }
        let target = try IncomingVM(.unix(path: dir.file("m.sock")))
        let source = try RunningVM.boot("idle.elf")
        #expect(source.waitFor("Hello from Skiff guest"), "\(source.text)")
        _ = try source.vm.startMigration(MigrationRequest(destination: target.endpoint))
        let progress = waitForMigration(source.vm, timeout: 60)
        #expect(progress.phase == .completed, "\(progress)")
        #expect(source.finish(timeout: 30) == .stopped)
        let arrived = target.wait()
        let vm = try #require(arrived.vm, "\(arrived.error ?? "")")
        defer { vm.stop() }
        #expect(vm.vm.status().state == .running)
    }

    @Test func anSMPGuestMoves() throws {
        let dir = ScratchDirectory("skiff-mig")
        defer { dir.cleanup() }
        let target = try IncomingVM(.unix(path: dir.file("m.sock")))
        // Long enough that the guest is still passing the token when it moves.
        let source = try RunningVM.boot("smp-ipi.elf", cmdline: "report=500 stop=40000", cpus: 2)
        #expect(source.waitFor("IPI round=500 "), "\(source.text)")
        _ = try source.vm.startMigration(MigrationRequest(destination: target.endpoint))
        let progress = waitForMigration(source.vm)
        #expect(progress.phase == .completed, "\(progress)")
        source.finish()
        let arrived = target.wait()
        let vm = try #require(arrived.vm, "\(arrived.error ?? "")")
        #expect(vm.finish(timeout: 120) == GuestKit.passStatus, "\(vm.text)")
        #expect(!source.text.contains("IPI round=40000"), "the guest finished before it moved: \(source.text.suffix(200))")
        #expect(vm.text.contains("IPI round=40000 counts=40000,40000"), "\(vm.text)")
    }

    @Test func theSourceRunsOnWhenTheTargetDiesMidStream() throws {
        let dir = ScratchDirectory("skiff-mig")
        defer { dir.cleanup() }
        // A target that accepts, reads the hello, answers, then drops the connection.
        let listener = try MigrationListener(endpoint: .unix(path: dir.file("m.sock")))
        Thread.detachNewThread {
            guard let c = try? listener.accept(timeout: 30) else { return }
            _ = try? c.receive()
            try? c.send(.accept, value: MigrationAccept(usesBase: false))
            for _ in 0..<3 { _ = try? c.receive() }
            // Dies here: the connection closes with the pages still coming.
        }
        let source = try RunningVM.boot("workload.elf", cmdline: "mib=8 report=200")
        defer { source.stop() }
        #expect(source.waitFor("WL seq=600 "))
        _ = try source.vm.startMigration(MigrationRequest(destination: .unix(path: dir.file("m.sock"))))
        let p = waitForMigration(source.vm)
        #expect(p.phase == .failed, "\(p)")
        #expect(source.vm.status().state == .running)
        let last = try #require(WorkloadChecker.lines(source.text).last).seq
        #expect(source.waitFor("WL seq=\(last + 3 * 200) "), "the guest runs on: \(source.text.suffix(200))")
        #expect(Self.checker.problems(source.text).isEmpty)
        // A later migration is allowed.
        #expect(throws: VMError.self) { try source.vm.cancelMigration() }
    }

    @Test func theSourceRunsOnWhenTheTargetRefusesTheVM() throws {
        let dir = ScratchDirectory("skiff-mig")
        defer { dir.cleanup() }
        // The target is told to replace a disk the VM does not have: it refuses at hello.
        var options = IncomingOptions()
        options.restore.deviceOverrides = [.rng]
        let target = try IncomingVM(.unix(path: dir.file("m.sock")), options: options)
        let source = try RunningVM.boot("workload.elf", cmdline: "mib=8 report=200")
        defer { source.stop() }
        #expect(source.waitFor("WL seq=400 "))
        _ = try source.vm.startMigration(MigrationRequest(destination: target.endpoint))
        let p = waitForMigration(source.vm)
        #expect(p.phase == .failed)
        #expect(p.error?.contains("the peer abandoned the migration") == true, "\(p)")
        #expect(target.wait().error?.contains("no (further) rng device") == true)
        let last = try #require(WorkloadChecker.lines(source.text).last).seq
        #expect(source.waitFor("WL seq=\(last + 2 * 200) "))
    }

    @Test func cancellingKeepsTheVMHere() throws {
        let dir = ScratchDirectory("skiff-mig")
        defer { dir.cleanup() }
        // A target that accepts and then never reads: the source blocks sending, then is cancelled.
        let listener = try MigrationListener(endpoint: .unix(path: dir.file("m.sock")))
        Thread.detachNewThread {
            guard let c = try? listener.accept(timeout: 30) else { return }
            _ = try? c.receive()
            try? c.send(.accept, value: MigrationAccept(usesBase: false))
            Thread.sleep(forTimeInterval: 20)
            _ = c
        }
        let source = try RunningVM.boot("workload.elf", cmdline: "mib=8 report=200")
        defer { source.stop() }
        #expect(source.waitFor("WL seq=400 "))
        _ = try source.vm.startMigration(MigrationRequest(destination: .unix(path: dir.file("m.sock"))))
        Thread.sleep(forTimeInterval: 0.5)
        try source.vm.cancelMigration()
        let p = waitForMigration(source.vm, timeout: 30)
        #expect(p.phase == .cancelled, "\(p)")
        let last = try #require(WorkloadChecker.lines(source.text).last).seq
        #expect(source.waitFor("WL seq=\(last + 2 * 200) "))
    }

    @Test func aMalformedStreamIsRefusedByTheTarget() throws {
        let dir = ScratchDirectory("skiff-mig")
        defer { dir.cleanup() }
        let target = try IncomingVM(.unix(path: dir.file("m.sock")))
        let c = try MigrationConnection.connect(to: target.endpoint)
        // A hello that does not decode.
        try? c.send(.hello, [0xee, 0x01])
        let arrived = target.wait(timeout: 30)
        #expect(arrived.vm == nil)
        #expect(arrived.error?.contains("malformed") == true || arrived.error?.contains("hello") == true, "\(arrived.error ?? "")")
    }
}

struct MigrationStreamTests {
    @Test func headersAreCheckedBeforeAnyPayloadIsRead() throws {
        let good = MigrationFrame.header(.pages, length: 100)
        let parsed = try MigrationFrame.parseHeader(good)
        #expect(parsed.kind == .pages && parsed.length == 100)
        var wrongMagic = good
        wrongMagic[0] = 0
        #expect(throws: MigrationError.version("not a Skiff migration stream")) { try MigrationFrame.parseHeader(wrongMagic) }
        var wrongVersion = good
        wrongVersion[4] = 9
        #expect(throws: MigrationError.version("the peer speaks version 9, this side version 1")) { try MigrationFrame.parseHeader(wrongVersion) }
        var unknownKind = good
        unknownKind[6] = 77
        #expect(throws: MigrationError.malformed("unknown frame type 77")) { try MigrationFrame.parseHeader(unknownKind) }
        let huge = MigrationFrame.header(.hello, length: 2 << 20)
        #expect(throws: MigrationError.self) { try MigrationFrame.parseHeader(huge) }
        #expect(throws: MigrationError.self) { try MigrationFrame.parseHeader(Array(good.prefix(15))) }
    }

    @Test func pageBatchesRoundTripAndBadOnesAreRefused() throws {
        var batch = PageBatch()
        let page = [UInt8](repeating: 0xab, count: 4096)
        batch.appendZero(7)
        page.withUnsafeBytes { batch.append(9, contents: $0) }
        let bytes = batch.serialized()
        #expect(try PageBatch(parsing: bytes, pageCount: 10) == batch)
        #expect(throws: MigrationError.self) { try PageBatch(parsing: bytes, pageCount: 9) }  // page 9 outside 9 pages
        #expect(throws: MigrationError.self) { try PageBatch(parsing: Array(bytes.dropLast()), pageCount: 10) }
        #expect(throws: MigrationError.self) { try PageBatch(parsing: bytes + [0], pageCount: 10) }
        var tooMany = bytes
        tooMany[0] = 0xff
        tooMany[1] = 0xff
        #expect(throws: MigrationError.self) { try PageBatch(parsing: tooMany, pageCount: 10) }
        #expect(throws: MigrationError.self) { try PageBatch(parsing: [1, 0], pageCount: 10) }
    }

    @Test func randomBatchesNeverCrashTheParser() {
        var generator = SplitMix(seed: 7)
        var batch = PageBatch()
        let page = [UInt8](repeating: 1, count: 4096)
        for i in 0..<8 { if i % 3 == 0 { batch.appendZero(UInt64(i)) } else { page.withUnsafeBytes { batch.append(UInt64(i), contents: $0) } } }
        let valid = batch.serialized()
        var accepted = 0
        for _ in 0..<3000 {
            var bytes = valid
            let edits = 1 + Int(generator.next() % 3)
            for _ in 0..<edits {
                switch generator.next() % 3 {
                case 0: bytes[Int(generator.next() % UInt64(min(bytes.count, 80)))] = UInt8(truncatingIfNeeded: generator.next())
                case 1: bytes.removeLast(Int(generator.next() % 64))
                default: bytes.append(UInt8(truncatingIfNeeded: generator.next()))
                }
            }
            if (try? PageBatch(parsing: bytes, pageCount: 16)) != nil { accepted += 1 }
        }
        #expect(accepted < 3000)
    }
}

/// Migration of a VM restored from a snapshot the target also holds: only what differs travels.
@Suite(.serialized, .enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct BaseSnapshotMigrationTests {
    func migrateRestored(targetHasBase: Bool, dir: ScratchDirectory) throws -> MigrationProgress {
        if !FileManager.default.fileExists(atPath: dir.file("base")) {
            // A 64 MiB guest whose workload touches 3 MiB (about 5 % of its RAM).
            let vm = try RunningVM.boot("workload.elf", cmdline: "mib=3 report=200")
            #expect(vm.waitFor("WL seq=200 "))
            _ = try vm.vm.createSnapshot(SnapshotRequest(directory: dir.file("base"), stopAfter: true))
            vm.finish()
        }
        let forked = try RunningVM.restore(dir.file("base"))
        #expect(forked.waitFor("WL seq=3000 "), "\(forked.text)")
        var options = IncomingOptions()
        if !targetHasBase { options.baseDirectory = dir.file("nowhere") }
        let target = try IncomingVM(.unix(path: dir.file("m-\(targetHasBase).sock")), options: options)
        _ = try forked.vm.startMigration(MigrationRequest(destination: target.endpoint))
        let progress = MigrationTests().waitForMigration(forked.vm)
        #expect(progress.phase == .completed, "\(progress)")
        forked.finish()
        let arrived = try #require(target.wait().vm)
        let last = try #require(WorkloadChecker.lines(forked.text).last).seq
        #expect(arrived.waitFor("WL seq=\(last + 3 * 200) "), "\(arrived.text)")
        arrived.stop()
        let checker = WorkloadChecker(pages: 3 * 256, report: 200)
        #expect(checker.problems(forked.text + arrived.text).isEmpty, "\(checker.problems(forked.text + arrived.text))")
        return progress
    }

    @Test func onlyPagesThatDifferFromTheSharedBaseTravel() throws {
        let dir = ScratchDirectory("skiff-base")
        defer { dir.cleanup() }
        let withBase = try migrateRestored(targetHasBase: true, dir: dir)
        let without = try migrateRestored(targetHasBase: false, dir: dir)
        print("fork migration, target holds the base: \(withBase.bytesSent) bytes, \(withBase.pagesSent) pages sent, \(withBase.pagesSkippedByBase) skipped; without it: \(without.bytesSent) bytes, \(without.pagesSent) pages")
        #expect(withBase.pagesSkippedByBase > 15000, "\(withBase)")
        // The workload dirtied at most its 768 pages plus a few for stack and device rings.
        #expect(withBase.pagesSent < 1500, "\(withBase)")
        #expect(without.pagesSkippedByBase == 0 && without.pagesSent >= 16384)
        #expect(withBase.bytesSent < without.bytesSent, "with base \(withBase.bytesSent) vs \(without.bytesSent)")
    }
}

/// Migration without shared storage: the disks travel with the VM while it writes to them.
@Suite(.serialized, .enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct DiskCopyMigrationTests {
    @Test func aDiskBeingWrittenArrivesWhole() throws {
        let dir = ScratchDirectory("skiff-migdisk")
        defer { dir.cleanup() }
        // An overlay on a base both "hosts" have: only the overlay's clusters travel.
        let base = dir.file("base.raw")
        var baseBytes = Data(count: 4 << 20)
        for i in stride(from: 2 << 20, to: 4 << 20, by: 512) { baseBytes[i] = 0xb5 }
        try baseBytes.write(to: URL(fileURLWithPath: base))
        try ImageOperationsShim.clone(base: base, to: dir.file("src.qcow2"))
        var options = IncomingOptions()
        options.restore.deviceOverrides = [.block(path: dir.file("dst.qcow2"), format: .qcow2, readOnly: false, serial: nil)]
        let target = try IncomingVM(.unix(path: dir.file("m.sock")), options: options)
        // Enough writes that the guest is still writing when the move ends on a loaded host.
        let count = 1500
        let source = try RunningVM.boot("virtio-blk.elf", cmdline: "mode=seq count=\(count)") {
            $0.devices = [.block(path: dir.file("src.qcow2"), format: .qcow2, readOnly: false, serial: nil)]
        }
        #expect(source.waitFor("blk seq=32"), "\(source.text)")
        _ = try source.vm.startMigration(MigrationRequest(destination: target.endpoint, copyDisks: true))
        let progress = MigrationTests().waitForMigration(source.vm)
        #expect(progress.phase == .completed, "\(progress)")
        source.finish()
        let arrived = try #require(target.wait().vm)
        #expect(arrived.finish(timeout: 180) == GuestKit.passStatus, "\(arrived.text)")
        #expect(!source.text.contains("blk done"), "the guest was still writing when it moved")
        // Every sector the guest wrote, before and after the move, is in the target's disk,
        // and the base still shows through where the guest did not write.
        let check = try Storage.DiskImage.open(path: dir.file("dst.qcow2"), format: .qcow2, readOnly: true)
        var buffer = [UInt8](repeating: 0, count: 512)
        for k in [1, 16, 33, 100, 250, 1000, count] {
            try buffer.withUnsafeMutableBytes { try check.read(at: UInt64(k * 512), into: $0) }
            #expect(buffer == SnapshotDeviceTests.sectorPattern(UInt64(k)), "sector \(k)")
        }
        try buffer.withUnsafeMutableBytes { try check.read(at: 3 << 20, into: $0) }
        #expect(buffer[0] == 0xb5, "the backing file's data shows through the copied overlay")
        try check.close()
        #expect(progress.diskBytesSent > 0 && progress.diskBytesSent < 2 << 20, "only the overlay's clusters travel: \(progress)")
        print("disk-copy migration: \(progress.diskBytesSent) disk bytes, \(progress.bytesSent) total, downtime \(progress.downtimeMilliseconds ?? -1) ms")
    }

    @Test func aTargetDiskPathThatExistsIsRefusedAndTheSourceRunsOn() throws {
        let dir = ScratchDirectory("skiff-migdisk")
        defer { dir.cleanup() }
        #expect(FileManager.default.createFile(atPath: dir.file("src.raw"), contents: Data(count: 1 << 20)))
        #expect(FileManager.default.createFile(atPath: dir.file("taken.raw"), contents: Data([1, 2, 3])))
        var options = IncomingOptions()
        options.restore.deviceOverrides = [.block(path: dir.file("taken.raw"), format: .raw, readOnly: false, serial: nil)]
        let target = try IncomingVM(.unix(path: dir.file("m.sock")), options: options)
        let source = try RunningVM.boot("virtio-blk.elf", cmdline: "mode=seq count=64 wait-key=1") {
            $0.devices = [.block(path: dir.file("src.raw"), format: .raw, readOnly: false, serial: nil)]
        }
        defer { source.stop() }
        #expect(source.waitFor("virtio-blk ready"))
        _ = try source.vm.startMigration(MigrationRequest(destination: target.endpoint, copyDisks: true))
        #expect(MigrationTests().waitForMigration(source.vm).phase == .failed)
        #expect(target.wait().error?.contains("which exists") == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("taken.raw"))) == Data([1, 2, 3]))
        // The source still has its disk and runs on.
        _ = Array("k".utf8).withUnsafeBytes { source.vm.sendConsoleInput($0) }
        #expect(source.finish(timeout: 120) == GuestKit.passStatus, "\(source.text)")
    }
}

/// Thin clones for tests.
enum ImageOperationsShim {
    static func clone(base: String, to path: String) throws {
        try Storage.ImageOperations.clone(base: base, baseFormat: .raw, to: path)
    }
}
