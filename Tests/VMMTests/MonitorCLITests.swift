import ControlProtocol
import Foundation
import Testing

/// What a supervisor relies on in `skiff run`: the console log and socket, a clean stop on
/// SIGTERM, KSM opt-in/out, rate limits and the power button from the client.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct MonitorCLITests {
    typealias Child = BalloonCLITests.Child

    static func scratch() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-mon-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func everyProgramPrintsItsVersion() throws {
        for tool in ["skiff", "skiff-vmm"] {
            let r = try CLITests.run(tool, ["--version"])
            #expect(r.status == 0, "\(tool): \(r.stderr)")
            #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3, "\(tool): \(r.stdout)")
        }
    }

    @Test func theConsoleLogKeepsTheOutputAndStaysBounded() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/console.log"
        // About 300 progress lines of ~40 bytes: 12 KB through a 4 KiB log.
        let r = try CLITests.run("skiff", ["run", "--kernel", try GuestKit.path("workload.elf"), "--memory", "64M",
                                           "--cmdline", "mib=1 report=10 verify=0 stop=3000", "--console-log", log, "--console-log-size", "4K"],
                                 timeout: 120)
        #expect(r.status == 33, "\(r.stderr)")
        let current = try String(contentsOfFile: log, encoding: .utf8)
        let previous = try String(contentsOfFile: log + ".1", encoding: .utf8)
        for text in [current, previous] { #expect(text.utf8.count <= 4096 && text.utf8.count > 0) }
        // The newest output is in the log, the one before in .1, and the two join up.
        #expect(r.stdout.hasSuffix(current), "log: \(current.suffix(200))")
        #expect(r.stdout.contains(previous + current), "the rotated file does not precede the log")
        #expect(current.contains("PASS") || current.contains("pass"), "\(current.suffix(200))")
    }

    @Test func theConsoleSocketReplaysScrollbackAndTakesInput() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/console.sock"
        let child = try Child(["run", "--kernel", try GuestKit.path("uart-echo.elf"), "--memory", "64M", "--console-socket", socket])
        #expect(child.waitFor("ready"), "\(child.text)")
        // A client connecting after the fact first gets what was printed.
        let client = try #require(UnixStream.connect(socket))
        let scrollback = client.readString(timeout: 10) { $0.contains("ready") }
        #expect(scrollback.contains("ready"), "\(scrollback)")
        client.write("through-the-socket\n")
        #expect(child.waitFor("got: through-the-socket"), "\(child.text)")
        let live = client.readString(timeout: 10) { $0.contains("got: through-the-socket") }
        #expect(live.contains("got: through-the-socket"), "\(live)")
        #expect(child.finish() == 33, "\(child.text)")
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket file outlives the VM")
    }

    @Test func sigtermStopsTheVMAndCleansUp() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let api = dir + "/api.sock"
        let console = dir + "/console.sock"
        let disk = dir + "/disk.qcow2"
        let create = try CLITests.run("skiff", ["image", "create", "-f", "qcow2", "-o", "lazy_refcounts=on", disk, "16M"])
        #expect(create.status == 0, "\(create.stderr)")
        let child = try Child(["run", "--kernel", try GuestKit.path("virtio-blk.elf"), "--memory", "64M", "--cmdline", "mode=seq count=20000",
                               "--disk", disk + ",format=qcow2", "--api-socket", api, "--console-socket", console])
        #expect(child.waitFor("blk seq=32"), "\(child.text)")
        kill(child.process.processIdentifier, SIGTERM)
        #expect(child.finish(timeout: 20) == 0, "\(child.text)")
        #expect(!child.text.contains("blk done"))
        #expect(!FileManager.default.fileExists(atPath: api) && !FileManager.default.fileExists(atPath: console))
        // The image was closed: it checks clean and its dirty flag is clear.
        let check = try CLITests.run("skiff", ["image", "check", disk])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let info = try CLITests.run("skiff", ["image", "info", disk])
        #expect(info.status == 0 && !info.stdout.contains("dirty flag: true"), "\(info.stdout)")
    }

    /// A target waiting for a migrating VM stops on SIGTERM at once, exit status 0, and
    /// removes its listening socket (it used to ignore the signal until a source came).
    @Test func sigtermWhileWaitingForAnIncomingVMStopsAndRemovesTheSocket() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/incoming.sock"
        let child = try Child(["run", "--incoming", "unix:\(socket)"])
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: socket) && Date() < deadline && child.process.isRunning { usleep(10_000) }
        #expect(FileManager.default.fileExists(atPath: socket), "\(child.text)")
        let sent = Date()
        kill(child.process.processIdentifier, SIGTERM)
        #expect(child.finish(timeout: 10) == 0, "\(child.text)")
        #expect(Date().timeIntervalSince(sent) < 5, "the monitor took \(Date().timeIntervalSince(sent)) s to stop")
        #expect(!FileManager.default.fileExists(atPath: socket), "the listening socket outlives the monitor")
    }

    /// VmFlags of the mapping that holds guest RAM (the largest one).
    static func guestRAMFlags(pid: Int32) -> [String] {
        // Read to the end: /proc files report size 0, and a one-shot read stops at a page or so.
        guard let handle = FileHandle(forReadingAtPath: "/proc/\(pid)/smaps") else { return [] }
        defer { try? handle.close() }
        let smaps = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        var best: (size: UInt64, flags: [String]) = (0, [])
        var size: UInt64 = 0
        for line in smaps.split(separator: "\n") {
            if line.hasPrefix("Size:") { size = UInt64(line.split(separator: " ").dropFirst().first ?? "") ?? 0 }
            if line.hasPrefix("VmFlags:"), size > best.size { best = (size, line.split(separator: " ").dropFirst().map(String.init)) }
        }
        return best.flags
    }

    @Test func ksmCoversGuestRAMUnlessTurnedOff() throws {
        for (setting, merged) in [("on", true), ("off", false)] {
            let child = try Child(["run", "--kernel", try GuestKit.path("workload.elf"), "--memory", "256M",
                                   "--cmdline", "mib=1 dirty=0 report=1", "--ksm", setting])
            #expect(child.waitFor("WL heartbeat"), "\(child.text)")
            let flags = Self.guestRAMFlags(pid: child.process.processIdentifier)
            #expect(!flags.isEmpty)
            #expect(flags.contains("mg") == merged, "--ksm \(setting): \(flags)")
            child.process.terminate()
            _ = child.finish()
        }
    }

    @Test func theClientSetsRateLimitsAndReadsDeviceCounters() throws {
        let dir = Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let api = dir + "/api.sock"
        let disk = dir + "/disk.img"
        #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 8 << 20)))
        let child = try Child(["run", "--kernel", try GuestKit.path("virtio-blk.elf"), "--memory", "64M", "--cmdline", "mode=seq count=15000",
                               "--disk", disk + ",iops=20", "--api-socket", api])
        defer { child.process.terminate(); _ = child.finish() }
        #expect(child.waitFor("blk seq=16"), "\(child.text)")
        func writes() throws -> UInt64 {
            let m = try CLITests.run("skiff", ["vm", "metrics", "--api-socket", api])
            let line = m.stdout.split(separator: "\n").first { $0.hasPrefix("disk0.write-ops ") }
            return UInt64(line?.split(separator: " ").last ?? "") ?? 0
        }
        let w0 = try writes()
        Thread.sleep(forTimeInterval: 2)
        let slow = try writes() - w0
        // 20 operations a second for 2 s, one in 17 a FLUSH: about 38 writes.
        #expect(slow >= 28 && slow <= 48, "\(slow) writes in 2 s at 20 IOPS")
        let lift = try CLITests.run("skiff", ["vm", "rate-limit", "--api-socket", api, "disk0"])
        #expect(lift.status == 0, "\(lift.stderr)")
        let w1 = try writes()
        Thread.sleep(forTimeInterval: 2)
        let fast = try writes() - w1
        #expect(fast > 2 * slow, "\(fast) writes in 2 s without a limit")
        let bad = try CLITests.run("skiff", ["vm", "rate-limit", "--api-socket", api, "disk9", "--iops", "5"])
        #expect(bad.status != 0 && bad.stderr.contains("disk9"), "\(bad.stderr)")
        let badSize = try CLITests.run("skiff", ["vm", "rate-limit", "--api-socket", api, "disk0", "--bw", "lots"])
        #expect(badSize.status != 0 && badSize.stderr.contains("--bw"), "\(badSize.stderr)")
    }
}
