import Foundation
import SkiffStore
import Testing

/// A scratch directory removed at deinit.
final class ScratchDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "skiff-store-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct StoreTests {
    @Test func schemaIsVersionedAndInWAL() throws {
        let dir = ScratchDirectory()
        let store = try Store(path: dir.path + "/db.sqlite")
        #expect(try store.appliedMigrations() == ["v1", "v2-balloon-taken", "v3-jail", "v4-tap-owner"])
        // Opening again applies nothing new and keeps the data.
        try store.insertVM(VMRecord(name: "a", spec: "{}"))
        let again = try Store(path: dir.path + "/db.sqlite")
        #expect(try again.appliedMigrations() == ["v1", "v2-balloon-taken", "v3-jail", "v4-tap-owner"])
        #expect(try again.vm(named: "a")?.name == "a")
        #expect(FileManager.default.fileExists(atPath: dir.path + "/db.sqlite-wal"))
    }

    /// Jail uids are unique per VM and kept; original file owners are remembered once, per VM.
    @Test func jailUIDsAndRememberedOwners() throws {
        let dir = ScratchDirectory()
        let store = try Store(path: dir.path + "/db.sqlite")
        for n in ["a", "b", "c"] { try store.insertVM(VMRecord(name: n, spec: "{}")) }
        #expect(try store.assignJailUID("a", range: 100...102, isFree: { _ in true }) == 100)
        #expect(try store.assignJailUID("a", range: 100...102, isFree: { _ in true }) == 100)
        // 101 belongs to someone else on the host.
        #expect(try store.assignJailUID("b", range: 100...102, isFree: { $0 != 101 }) == 102)
        #expect(throws: StoreError.self) { try store.assignJailUID("c", range: 100...102, isFree: { $0 != 101 }) }
        try store.deleteVM("a")
        #expect(try store.assignJailUID("c", range: 100...102, isFree: { _ in true }) == 100)

        try store.rememberOwner(FileOwnerRecord(path: "/d/x.img", vm: "b", uid: 0, gid: 0))
        // A second start of the same VM keeps the first (original) owner.
        try store.rememberOwner(FileOwnerRecord(path: "/d/x.img", vm: "b", uid: 102, gid: 102))
        #expect(try store.owners(of: "b").map(\.uid) == [0])
        #expect(throws: StoreError.self) { try store.rememberOwner(FileOwnerRecord(path: "/d/x.img", vm: "c", uid: 5, gid: 5)) }
        try store.forgetOwner("/d/x.img")
        #expect(try store.owners(of: "b").isEmpty)

        // TAPs likewise: the first record stays (an owner of none, or made by the daemon).
        try store.rememberTap(TapOwnerRecord(name: "tap0", vm: "b", uid: nil, gid: 7, created: false))
        try store.rememberTap(TapOwnerRecord(name: "tap0", vm: "b", uid: 102, gid: 102, created: false))
        try store.rememberTap(TapOwnerRecord(name: "tap1", vm: "b", uid: nil, gid: nil, created: true))
        let taps = try store.taps(of: "b")
        #expect(taps.map(\.name) == ["tap0", "tap1"] && taps[0].uid == nil && taps[0].gid == 7 && taps[1].created)
        #expect(throws: StoreError.self) { try store.rememberTap(TapOwnerRecord(name: "tap0", vm: "c", uid: 5, gid: 5, created: false)) }
        try store.forgetTap("tap0")
        #expect(try store.taps(of: "b").map(\.name) == ["tap1"])
    }

    @Test func duplicateNamesAreConflicts() throws {
        let dir = ScratchDirectory()
        let store = try Store(path: dir.path + "/db.sqlite")
        try store.insertVM(VMRecord(name: "web1", spec: "{\"a\":1}"))
        #expect(throws: StoreError(.conflict, "a VM named 'web1' already exists")) { try store.insertVM(VMRecord(name: "web1", spec: "{}")) }
        #expect(try store.vm(named: "web1")?.spec == "{\"a\":1}")
    }

    @Test func updatesAreTransactional() throws {
        let dir = ScratchDirectory()
        let store = try Store(path: dir.path + "/db.sqlite")
        try store.insertVM(VMRecord(name: "a", spec: "{}"))
        let r = try store.updateVM("a") { $0.pid = 42; $0.pidStartTime = 7; $0.actualState = "running" }
        #expect(r.pid == 42)
        #expect(try store.vm(named: "a")?.actualState == "running")
        #expect(throws: StoreError.self) { try store.updateVM("missing") { $0.pid = 1 } }
    }

    @Test func eventsComeInOrderAfterAnID() throws {
        let dir = ScratchDirectory()
        let store = try Store(path: dir.path + "/db.sqlite")
        let first = try store.appendEvent(vm: "a", kind: "created", message: "1")
        try store.appendEvent(vm: "b", kind: "created", message: "2")
        try store.appendEvent(vm: "a", kind: "started", message: "3")
        #expect(try store.events(since: first.id ?? 0).map(\.message) == ["2", "3"])
        #expect(try store.events(vm: "a").map(\.message) == ["1", "3"])
    }

    /// What the balloon policy took survives a reopen, goes with its VM, and 0 MiB removes it.
    @Test func balloonTakenIsKeptPerVM() throws {
        let dir = ScratchDirectory()
        let store = try Store(path: dir.path + "/db.sqlite")
        try store.insertVM(VMRecord(name: "a", spec: "{}"))
        try store.insertVM(VMRecord(name: "b", spec: "{}"))
        try store.setBalloonTaken(BalloonTakenRecord(vm: "a", takenMiB: 12, pid: 100, pidStartTime: 5))
        try store.setBalloonTaken(BalloonTakenRecord(vm: "a", takenMiB: 20, pid: 100, pidStartTime: 5))
        try store.setBalloonTaken(BalloonTakenRecord(vm: "b", takenMiB: 8, pid: 200, pidStartTime: 6))
        let again = try Store(path: dir.path + "/db.sqlite")
        #expect(try again.balloonTaken().sorted { $0.vm < $1.vm }.map { [$0.vm, "\($0.takenMiB)", "\($0.pid)"] } == [["a", "20", "100"], ["b", "8", "200"]])
        try again.setBalloonTaken(BalloonTakenRecord(vm: "b", takenMiB: 0, pid: 200, pidStartTime: 6))
        try again.deleteVM("a")
        #expect(try again.balloonTaken().isEmpty)
        // A VM that does not exist cannot have anything taken.
        #expect(throws: StoreError.self) { try again.setBalloonTaken(BalloonTakenRecord(vm: "zz", takenMiB: 4, pid: 1, pidStartTime: 1)) }
    }

    @Test func interruptedTasksAreMarkedFailed() throws {
        let dir = ScratchDirectory()
        let store = try Store(path: dir.path + "/db.sqlite")
        try store.insertTask(TaskRecord(id: "t1", kind: "snapshot", vm: "a"))
        try store.failInterruptedTasks()
        let t = try #require(try store.task(id: "t1"))
        #expect(t.state == "failed")
        #expect(t.errorMessage?.contains("restarted") == true)
    }

    /// The database on a full disk (a small tmpfs): writes fail with `full`, nothing that was
    /// there is lost, and writes work again once there is room.
    @Test func fullDiskIsReportedAndLosesNothing() throws {
        let dir = ScratchDirectory()
        let mountPoint = dir.path + "/tmpfs"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=512k", "tmpfs", mountPoint]
        try mount.run()
        mount.waitUntilExit()
        guard mount.terminationStatus == 0 else {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                Issue.record("cannot mount a tmpfs (needs root), and CI=true")
            } else {
                print("skipped: cannot mount a tmpfs for the full-disk test (needs root)")
            }
            return
        }
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = ["-l", mountPoint]
            try? umount.run()
            umount.waitUntilExit()
        }
        let store = try Store(path: mountPoint + "/db.sqlite")
        try store.insertVM(VMRecord(name: "kept", spec: "{}"))
        // Fill the file system.
        FileManager.default.createFile(atPath: mountPoint + "/filler", contents: nil)
        let filler = try #require(FileHandle(forWritingAtPath: mountPoint + "/filler"))
        let chunk = Data(repeating: 0xAB, count: 4096)
        while (try? filler.write(contentsOf: chunk)) != nil {}
        try? filler.close()
        var sawFull = false
        for i in 0..<200 {
            do {
                try store.insertVM(VMRecord(name: "vm\(i)", spec: String(repeating: "x", count: 8192)))
            } catch {
                #expect(error.kind == .full, "\(error)")
                #expect(error.message.contains("disk is full"))
                sawFull = true
                break
            }
        }
        #expect(sawFull)
        #expect(try store.vm(named: "kept") != nil)
        try FileManager.default.removeItem(atPath: mountPoint + "/filler")
        try store.insertVM(VMRecord(name: "after", spec: "{}"))
        #expect(try store.vm(named: "after") != nil)
    }
}
