import CloudInit
import Foundation
import HostProcess
import Synchronization
import Testing

struct ProcessTests {
    @Test func statFieldsAreCountedFromTheLastParenthesis() {
        let line = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 987654 1000 100"
        let stat = ProcessIdentity.parseStat(line)
        #expect(stat?.state == "S")
        #expect(stat?.startTime == 987654)
        #expect(ProcessIdentity.parseStat("garbage") == nil)
    }

    @Test func identityDistinguishesAStrangerWithTheSamePid() throws {
        let me = try #require(ProcessIdentity.of(pid: getpid()))
        #expect(me.isAlive())
        #expect(!ProcessIdentity(pid: me.pid, startTime: me.startTime + 1).isAlive())
    }

    /// A spawned child in its own session; the watcher reports its exit status at once.
    @Test func spawnedChildrenAreWatchedAndReaped() async throws {
        let dir = NSTemporaryDirectory() + "skiff-spawn-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let watcher = try ExitWatcher()
        let child = try Spawner.spawn(executable: "/bin/sh", arguments: ["-c", "echo out; echo err >&2; ps -o sid= -p $$ > \(dir)/sid; exit 3"],
                                      stdoutPath: "\(dir)/out", stderrPath: "\(dir)/err")
        let result = Mutex<HostProcess.ExitStatus?>(nil)
        watcher.watch(child) { _, status in result.withLock { $0 = status } }
        let deadline = Date().addingTimeInterval(10)
        while result.withLock({ $0 }) == nil && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(result.withLock { $0 } == .exited(3))
        #expect(SysText.read("\(dir)/out") == "out")
        #expect(SysText.read("\(dir)/err") == "err")
        // setsid: the child leads its own session.
        #expect(SysText.read("\(dir)/sid")?.trimmingCharacters(in: .whitespaces) == String(child.pid))
        #expect(!child.isAlive())
    }

    @Test func signalsGoThroughThePidfd() async throws {
        let watcher = try ExitWatcher()
        let child = try Spawner.spawn(executable: "/bin/sleep", arguments: ["30"], stdoutPath: "/dev/null", stderrPath: "/dev/null")
        let result = Mutex<HostProcess.ExitStatus?>(nil)
        watcher.watch(child) { _, status in result.withLock { $0 = status } }
        #expect(watcher.signal(child, SIGKILL))
        let deadline = Date().addingTimeInterval(10)
        while result.withLock({ $0 }) == nil && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(result.withLock { $0 } == .signalled(SIGKILL))
        #expect(!watcher.signal(child, SIGKILL))
    }

    @Test func aMissingExecutableIsAnError() {
        #expect(throws: ProcessError.self) {
            try Spawner.spawn(executable: "/nonexistent/skiff-vmm", arguments: [], stdoutPath: "/dev/null", stderrPath: "/dev/null")
        }
    }

    @Test func aGoneProcessIsReportedAtOnce() throws {
        let watcher = try ExitWatcher()
        let result = Mutex<HostProcess.ExitStatus?>(nil)
        #expect(!watcher.watch(ProcessIdentity(pid: 999_999, startTime: 1)) { _, s in result.withLock { $0 = s } })
        #expect(result.withLock { $0 } == .unknown)
    }

    /// The cloud-init seed is a FAT image labelled CIDATA with the three files.
    @Test func cloudInitSeedHoldsTheFiles() throws {
        let dir = NSTemporaryDirectory() + "skiff-seed-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = "\(dir)/cidata.img"
        try CloudInitSeed.build(at: image, instanceID: "web1", userData: "#cloud-config\nhostname: web1\n", metaData: nil,
                                networkConfig: "version: 2\n")
        let label = try run("/usr/sbin/fatlabel", [image])
        #expect(label.trimmingCharacters(in: .whitespacesAndNewlines) == "CIDATA")
        let listing = try run("/usr/bin/mdir", ["-i", image, "-b", "::/"])
        for name in ["user-data", "meta-data", "network-config"] { #expect(listing.contains(name), "\(listing)") }
        let meta = try run("/usr/bin/mtype", ["-i", image, "::/meta-data"])
        #expect(meta.contains("instance-id: web1"))
        let user = try run("/usr/bin/mtype", ["-i", image, "::/user-data"])
        #expect(user.contains("hostname: web1"))
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/.cidata.img.partial-\(getpid())"))
    }

    func run(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["MTOOLS_SKIP_CHECK"] = "1"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

enum SysText {
    static func read(_ path: String) -> String? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: d, as: UTF8.self).trimmingCharacters(in: .newlines)
    }
}

struct SmallFileTests {
    @Test func readsProcFilesWhoseSizeIsZero() throws {
        // /proc files report size 0; their contents are read all the same.
        let status = try #require(SmallFile.read("/proc/self/status"))
        #expect(String(decoding: status, as: UTF8.self).contains("Pid:\t\(getpid())"))
        // A kernel thread's command line is empty: an empty array, not a failure.
        #expect(SmallFile.read("/proc/2/cmdline") == [])
        #expect(SmallFile.read("/nonexistent/file") == nil)
        // The limit holds.
        #expect(SmallFile.read("/proc/self/status", limit: 10)?.count == 10)
    }
}
