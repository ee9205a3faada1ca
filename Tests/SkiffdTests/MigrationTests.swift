import Foundation
import Testing
import WorkloadCheck

/// Live migration between two real skiffd processes on this host (separate sockets, data and
/// run directories), and from a daemon to a bare `skiff-vmm --incoming` monitor.
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct DaemonMigrationTests {
    static let json = ["Content-Type": "application/json"]
    /// `workload.elf` with `mib=8 report=200`.
    static let checker = WorkloadChecker(pages: 8 * 256, report: 200)
    static let workload = "cmdline: mib=8 report=200\nrestart: always\n"

    /// The VM's console log through the daemon's API (`GET /vms/{name}/console/log`).
    static func consoleLog(_ d: Daemon, _ name: String) -> String {
        guard let r = try? d.raw("GET", "/vms/\(name)/console/log?bytes=4194304"), r.status == 200 else { return "" }
        return r.body
    }

    static func seqLines(_ text: String) -> Int { WorkloadChecker.lines(text).count }

    static func object(_ text: String) -> [String: Any] {
        ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]) ?? [:]
    }

    static func vmCount(_ d: Daemon) throws -> Int {
        let text = try d.raw("GET", "/vms").body
        return (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [Any])?.count ?? -1
    }

    /// The workload moves daemon to daemon: its output continues on the target with nothing
    /// lost or repeated, the target supervises it, and the source keeps it stopped even with
    /// `restart: always`.
    @Test func workloadMovesBetweenDaemons() throws {
        let src = try Daemon(), dst = try Daemon()
        defer { src.tearDown(); dst.tearDown() }
        try src.ok(["create", "-f", try src.spec("mv", guest: "workload.elf", extra: Self.workload), "--start"])
        #expect(try eventually(60) { Self.seqLines(Self.consoleLog(src, "mv")) >= 3 })
        let moved = try src.cli(["migrate", "mv", "--to", dst.socket], timeout: 300)
        #expect(moved.status == 0, "\(moved.stderr)")
        #expect(moved.stdout.contains("migrated mv") && moved.stdout.contains("running there"), "\(moved.stdout)")
        let there = try dst.show("mv")
        #expect(there["state"] as? String == "running")
        #expect(((there["spec"] as? [String: Any])?["restart"] as? String) == "always")
        let here = try src.show("mv")
        #expect(here["state"] as? String == "stopped" && here["desiredState"] as? String == "stopped", "\(here)")
        #expect(try eventually(60) { Self.seqLines(Self.consoleLog(dst, "mv")) >= 3 })
        // Longer than the first restart back-off: restart: always does not start it here.
        sleep(3)
        #expect(try src.show("mv")["state"] as? String == "stopped")
        #expect(src.monitors().isEmpty, "\(src.monitors())")
        #expect(Array(dst.monitors().values) == ["mv"])
        let before = Self.consoleLog(src, "mv"), after = Self.consoleLog(dst, "mv")
        let problems = Self.checker.problems(before + after)
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        let last = WorkloadChecker.lines(before).last?.seq ?? 0
        #expect((WorkloadChecker.lines(before + after).last?.seq ?? 0) > last + 400, "the output did not continue on the target")
        // The target's restart policy holds: killed there, it comes back there.
        let pid = try #require(there["pid"] as? Int)
        kill(Int32(pid), SIGKILL)
        #expect(try eventually(30) { (try dst.show("mv")["pid"] as? Int).map { $0 != pid } ?? false })
        let events = try dst.ok(["events", "--vm", "mv"])
        #expect(events.contains("incoming") && events.contains("migrated-in"), "\(events)")
    }

    /// `--remove-source` deletes the VM on the source once it runs on the target; the JSON output
    /// is the target's VM.
    @Test func removeSourceDeletesTheSourceVM() throws {
        let src = try Daemon(), dst = try Daemon()
        defer { src.tearDown(); dst.tearDown() }
        // Not idle.elf: a guest halted with interrupts off never leaves KVM_RUN, and the
        // source monitor's migration waits on its vCPU (docs/skiffd.md, migration between daemons).
        try src.ok(["create", "-f", try src.spec("rm1", guest: "workload.elf", extra: "cmdline: dirty=0\n"), "--start"])
        let moved = try src.cli(["migrate", "rm1", "--to", dst.socket, "--remove-source", "--output", "json"], timeout: 300)
        #expect(moved.status == 0, "\(moved.stderr)")
        let vm = try #require(try JSONSerialization.jsonObject(with: Data(moved.stdout.utf8)) as? [String: Any])
        #expect(vm["name"] as? String == "rm1" && vm["state"] as? String == "running", "\(moved.stdout)")
        #expect(try src.raw("GET", "/vms/rm1").status == 404)
        #expect(try dst.show("rm1")["state"] as? String == "running")
    }

    /// A target daemon reached over TCP with its bearer token: its monitor listens on every
    /// address (the default for a URL target) and the source streams to the URL's host. A wrong
    /// token is refused before anything is created.
    @Test func targetOverTCPWithToken() throws {
        let port = UInt16.random(in: 20000...40000)
        let tokenFile = "/tmp/skd-mig-token-\(getpid())"
        try "mig-token-0123456789abcdef\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        defer { unlink(tokenFile) }
        let src = try Daemon(), dst = try Daemon(extraArguments: ["--tcp", "127.0.0.1:\(port)", "--token-file", tokenFile])
        defer { src.tearDown(); dst.tearDown() }
        try src.ok(["create", "-f", try src.spec("tc1", guest: "workload.elf", extra: "cmdline: dirty=0\n"), "--start"])
        let wrongFile = "\(src.dir)/wrong"
        try "not-the-token-0123456789\n".write(toFile: wrongFile, atomically: true, encoding: .utf8)
        let refused = try src.cli(["migrate", "tc1", "--to", "http://127.0.0.1:\(port)", "--to-token-file", wrongFile], timeout: 120)
        #expect(refused.status != 0 && refused.stderr.contains("token"), "\(refused.stderr)")
        #expect(try Self.vmCount(dst) == 0)
        let moved = try src.cli(["migrate", "tc1", "--to", "http://127.0.0.1:\(port)", "--to-token-file", tokenFile], timeout: 300)
        #expect(moved.status == 0 && moved.stdout.contains("destination=tcp://127.0.0.1:"), "\(moved.stdout) \(moved.stderr)")
        #expect(try dst.show("tc1")["state"] as? String == "running")
        #expect(try src.show("tc1")["state"] as? String == "stopped")
        let usage = try src.cli(["migrate", "tc1", "--to", "http://127.0.0.1:\(port)"])
        #expect(usage.status == 64 && usage.stderr.contains("--to-token-file"), "\(usage.stderr)")
    }

    /// `--copy-disks`: the disk travels in the stream; the target creates it under its VM
    /// directory, records that path in its spec, and the bytes are the source's.
    @Test func copyDisksCreatesTheDiskOnTheTarget() throws {
        // A jailed monitor cannot create a disk on the host: the target runs unjailed.
        let src = try Daemon(), dst = try Daemon(extraArguments: ["--jailer", "off"])
        defer { src.tearDown(); dst.tearDown() }
        if getuid() == 0 {
            // A daemon whose monitors run jailed (its default as root) refuses copyDisks up front.
            let jailed = try Daemon(extraArguments: ["--jailer", "on"])
            defer { jailed.tearDown() }
            let body = #"{"spec":{"name":"cdj","kernel":"\#(Paths.guest("idle.elf"))","memory":"64M"},"listen":"tcp://127.0.0.1:0","copyDisks":true}"#
            let r = try jailed.raw("POST", "/migrations/incoming", body: Array(body.utf8), headers: Self.json)
            #expect(r.status == 501 && r.body.contains("\"unsupported\"") && r.body.contains("--jailer off"), "\(r.status) \(r.body)")
            #expect(try Self.vmCount(jailed) == 0)
        }
        let disk = "\(src.dir)/data.raw"
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        for i in bytes.indices where i % 4096 < 64 { bytes[i] = UInt8(truncatingIfNeeded: i / 4096 &* 31 &+ i) }
        try Data(bytes).write(to: URL(fileURLWithPath: disk))
        let extra = "cmdline: dirty=0\ndisks:\n  - {path: \(disk), format: raw}\n"
        try src.ok(["create", "-f", try src.spec("cd1", guest: "workload.elf", extra: extra), "--start"])
        let moved = try src.cli(["migrate", "cd1", "--to", dst.socket, "--copy-disks"], timeout: 300)
        #expect(moved.status == 0, "\(moved.stderr)")
        let there = try dst.show("cd1")
        #expect(there["state"] as? String == "running")
        let disks = try #require((there["spec"] as? [String: Any])?["disks"] as? [[String: Any]])
        let copied = "\(dst.dataDir)/vms/cd1/disk0.raw"
        #expect(disks.first?["path"] as? String == copied)
        #expect(FileManager.default.contents(atPath: copied) == Data(bytes))
        #expect(try src.show("cd1")["state"] as? String == "stopped")
    }

    /// A target that refuses (name taken there, or over its memory capacity) leaves the source
    /// VM running and nothing new on the target.
    @Test func refusedByTheTargetLeavesTheSourceRunning() throws {
        let src = try Daemon()
        let total = (try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)).split(separator: "\n")
            .first { $0.hasPrefix("MemTotal:") }.flatMap { Int($0.split(separator: " ")[1]) }.map { $0 * 1024 } ?? 0
        // The small target has 32 MiB to allocate.
        let small = try Daemon(extraArguments: ["--memory-ratio", "1", "--reserved-memory", String(total / (1 << 20) - 32)])
        let taken = try Daemon()
        defer { src.tearDown(); small.tearDown(); taken.tearDown() }
        try src.ok(["create", "-f", try src.spec("keep", guest: "workload.elf", extra: Self.workload), "--start"])
        let pid = try #require(try src.show("keep")["pid"] as? Int)
        try taken.ok(["create", "-f", try taken.spec("keep", memory: "32M")])

        let full = try src.cli(["migrate", "keep", "--to", small.socket], timeout: 120)
        #expect(full.status != 0 && full.stderr.contains("not enough memory"), "\(full.stderr)")
        #expect(try Self.vmCount(small) == 0)
        #expect(small.monitors().isEmpty)

        let clash = try src.cli(["migrate", "keep", "--to", taken.socket], timeout: 120)
        #expect(clash.status != 0 && clash.stderr.contains("already exists"), "\(clash.stderr)")
        let other = try taken.show("keep")
        #expect(other["state"] as? String == "stopped" && (other["spec"] as? [String: Any])?["memory"] as? String == "32M")
        #expect(taken.monitors().isEmpty)

        let here = try src.show("keep")
        #expect(here["state"] as? String == "running" && here["pid"] as? Int == pid)
        let lines = Self.seqLines(Self.consoleLog(src, "keep"))
        #expect(try eventually(60) { Self.seqLines(Self.consoleLog(src, "keep")) > lines })
    }

    /// The target's monitor killed mid-stream (the stream capped at 1 MiB/s, killed once the
    /// source reports 3 MiB sent): the source's task fails and its VM runs on with nothing lost
    /// or repeated; the target removes the VM.
    @Test func targetMonitorKilledMidStream() throws {
        let src = try Daemon(), dst = try Daemon()
        defer { src.tearDown(); dst.tearDown() }
        try src.ok(["create", "-f", try src.spec("k1", guest: "workload.elf", extra: Self.workload), "--start"])
        #expect(try eventually(60) { Self.seqLines(Self.consoleLog(src, "k1")) >= 2 })
        let pid = try #require(try src.show("k1")["pid"] as? Int)
        let specJSON = try #require(try src.show("k1")["spec"] as? [String: Any])
        let body = try JSONSerialization.data(withJSONObject: ["spec": specJSON, "listen": "tcp://127.0.0.1:0"])
        let created = try dst.raw("POST", "/migrations/incoming", body: Array(body), headers: Self.json)
        #expect(created.status == 201, "\(created.body)")
        let answer = Self.object(created.body)
        let address = try #require(answer["address"] as? String)
        #expect(address.hasPrefix("tcp://127.0.0.1:") && !address.hasSuffix(":0"), "\(address)")
        #expect((answer["vm"] as? [String: Any])?["state"] as? String == "incoming")
        let target = try #require(dst.monitors().keys.first)
        let started = try src.raw("POST", "/vms/k1/migrate", body: Array(#"{"destination":"\#(address)","bandwidth":1048576}"#.utf8),
                                  headers: Self.json)
        #expect(started.status == 202, "\(started.body)")
        let id = try #require(Self.object(started.body)["id"] as? String)
        // "precopy: N MiB sent, round R"
        func sentMiB() throws -> Int {
            let message = Self.object(try src.raw("GET", "/tasks/\(id)").body)["message"] as? String ?? ""
            guard let range = message.range(of: ": "), let end = message.range(of: " MiB sent") else { return 0 }
            return Int(message[range.upperBound..<end.lowerBound]) ?? 0
        }
        #expect(try eventually(60) { try sentMiB() >= 3 }, "the stream did not get going")
        #expect(try dst.show("k1")["state"] as? String == "incoming")
        kill(target, SIGKILL)
        #expect(try eventually(120) { Self.object(try src.raw("GET", "/tasks/\(id)").body)["state"] as? String == "failed" })
        #expect(try eventually(30) { try dst.raw("GET", "/vms/k1").status == 404 })
        #expect(dst.monitors().isEmpty)
        #expect(try dst.ok(["events", "--vm", "k1"]).contains("incoming-failed"))
        let here = try src.show("k1")
        #expect(here["state"] as? String == "running" && here["pid"] as? Int == pid, "\(here)")
        let lines = Self.seqLines(Self.consoleLog(src, "k1"))
        #expect(try eventually(60) { Self.seqLines(Self.consoleLog(src, "k1")) > lines })
        #expect(Self.checker.problems(Self.consoleLog(src, "k1")).isEmpty)
    }

    /// Nothing arrives within the timeout: the target stops the monitor and removes the VM.
    @Test func incomingTimesOut() throws {
        let dst = try Daemon()
        defer { dst.tearDown() }
        let body = #"{"spec":{"name":"late","kernel":"\#(Paths.guest("idle.elf"))","memory":"64M"},"listen":"tcp://127.0.0.1:0","timeout":2}"#
        let created = try dst.raw("POST", "/migrations/incoming", body: Array(body.utf8), headers: Self.json)
        let address = Self.object(created.body)["address"] as? String ?? ""
        #expect(created.status == 201 && address.hasPrefix("tcp://127.0.0.1:") && !address.hasSuffix(":0"), "\(created.body)")
        #expect(try dst.show("late")["state"] as? String == "incoming")
        #expect(try eventually(30) { try dst.raw("GET", "/vms/late").status == 404 })
        #expect(dst.monitors().isEmpty)
        #expect(try dst.ok(["events", "--vm", "late"]).contains("incoming-timeout"))
    }

    /// A daemon restarted while a VM waits to migrate in removes it and stops its monitor
    /// (nothing follows the stream any more).
    @Test func incomingDroppedByADaemonRestart() throws {
        let dst = try Daemon()
        defer { dst.tearDown() }
        let body = #"{"spec":{"name":"lost","kernel":"\#(Paths.guest("idle.elf"))","memory":"64M"},"listen":"tcp://127.0.0.1:0"}"#
        let created = try dst.raw("POST", "/migrations/incoming", body: Array(body.utf8), headers: Self.json)
        #expect(created.status == 201, "\(created.body)")
        #expect(Array(dst.monitors().values) == ["lost"])
        dst.kill9()
        try dst.start()
        #expect(try eventually(30) { try dst.raw("GET", "/vms/lost").status == 404 })
        #expect(try eventually(15) { dst.monitors().isEmpty })
        #expect(try dst.ok(["events", "--vm", "lost"]).contains("daemon restarted"))
    }

    /// The daemon's migrate task to a bare monitor waiting with `skiff-vmm --incoming`.
    @Test func moveToABareIncomingMonitor() throws {
        let src = try Daemon()
        defer { src.tearDown() }
        try src.ok(["create", "-f", try src.spec("bare", guest: "workload.elf", extra: Self.workload), "--start"])
        #expect(try eventually(60) { Self.seqLines(Self.consoleLog(src, "bare")) >= 2 })
        // TCP: a jailed source monitor (the daemon's default as root) reaches no host unix socket.
        let port = try Self.freePort(), log = "\(src.dir)/bare-target.log", errors = "\(src.dir)/bare-target.err"
        let monitor = Process()
        monitor.executableURL = URL(fileURLWithPath: "\(Paths.bin)/skiff-vmm")
        monitor.arguments = ["--incoming", "tcp://127.0.0.1:\(port)", "--console-log", log]
        monitor.environment = ["SKIFF_LOG_LEVEL": "info"]
        monitor.standardOutput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: errors, contents: nil)
        monitor.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try monitor.run()
        defer { Daemon.stop(monitor) }
        #expect(try eventually(30) { fileText(errors).contains("waiting for a migrating VM") })
        let moved = try src.cli(["move", "bare", "tcp://127.0.0.1:\(port)"], timeout: 300)
        #expect(moved.status == 0 && moved.stdout.contains("migrate succeeded"), "\(moved.stderr)")
        #expect(try src.show("bare")["state"] as? String == "stopped")
        let before = Self.consoleLog(src, "bare")
        #expect(try eventually(60) {
            let after = fileText(log)
            return Self.seqLines(after) >= 2
        })
        sleep(2)
        #expect(try src.show("bare")["state"] as? String == "stopped")
        #expect(monitor.isRunning)
        let after = fileText(log)
        #expect(Self.checker.problems(before + after).isEmpty, "\(Self.checker.problems(before + after).prefix(5))")
    }

    /// Malformed listen addresses and destinations, unknown fields, bad timeouts and VMs in the
    /// wrong state are refused with stable codes, and nothing is created.
    @Test func badInput() throws {
        // Unix listen addresses are checked on an unjailed daemon; a jailed one refuses them all.
        let d = try Daemon(extraArguments: ["--jailer", "off"])
        let dst = try Daemon(extraArguments: getuid() == 0 ? ["--jailer", "on"] : [])
        defer { d.tearDown(); dst.tearDown() }
        if getuid() == 0 {
            let body = #"{"spec":{"name":"uj","kernel":"\#(Paths.guest("idle.elf"))","memory":"64M"},"listen":"unix:\#(dst.dir)/uj.mig"}"#
            let r = try dst.raw("POST", "/migrations/incoming", body: Array(body.utf8), headers: Self.json)
            #expect(r.status == 400 && r.body.contains("invalidRequest") && r.body.contains("tcp:"), "\(r.status) \(r.body)")
        }
        let spec = #"{"name":"b1","kernel":"\#(Paths.guest("idle.elf"))","memory":"64M"}"#
        try FileManager.default.createDirectory(atPath: "\(d.dir)/taken", withIntermediateDirectories: true)
        let cases: [(String, Int, String)] = [
            (#"{"spec":\#(spec),"listen":"ftp://127.0.0.1:1"}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"tcp://127.0.0.1:65536"}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"tcp://127.0.0.1:-1"}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"tcp://:5000"}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"tcp://a b:5000"}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"unix:relative.sock"}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"unix:/\#(String(repeating: "a", count: 200))"}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"tcp://\#(String(repeating: "a", count: 600)):1"}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"unix:\#(d.dir)/taken"}"#, 409, "conflict"),
            (#"{"spec":\#(spec),"listen":"unix:/nonexistent-dir/x.sock"}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"tcp://127.0.0.1:0","bogus":1}"#, 400, "invalidRequest"),
            (#"{"spec":{"name":"b1","kernel":"/k","bogus":true},"listen":"tcp://127.0.0.1:0"}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"tcp://127.0.0.1:0","timeout":0}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"tcp://127.0.0.1:0","timeout":86401}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec)}"#, 400, "invalidRequest"),
            (#"{"spec":\#(spec),"listen":"tcp://127.0.0.1:0""#, 400, "invalidRequest"),
            (#"{"spec":{"name":"b1","kernel":"/no/such/kernel"},"listen":"tcp://127.0.0.1:0"}"#, 400, "invalidRequest"),
        ]
        for (body, status, code) in cases {
            let r = try d.raw("POST", "/migrations/incoming", body: Array(body.utf8), headers: Self.json)
            #expect(r.status == status && r.body.contains("\"\(code)\""), "\(body.prefix(120)): \(r.status) \(r.body)")
        }
        #expect(try Self.vmCount(d) == 0)
        #expect(d.monitors().isEmpty)

        // The source side: a malformed destination, a stopped VM.
        try d.ok(["create", "-f", try d.spec("st")])
        for destination in ["nonsense", "tcp://127.0.0.1:0", "unix:", String(repeating: "x", count: 600)] {
            let r = try d.raw("POST", "/vms/st/migrate", body: Array(#"{"destination":"\#(destination)"}"#.utf8), headers: Self.json)
            #expect(r.status == 400 && r.body.contains("invalidRequest"), "\(destination.prefix(40)): \(r.status) \(r.body)")
        }
        for extra in [#","bandwidth":1"#, #","bandwidth":-5"#, #","maxDowntimeMs":0"#, #","bogus":true"#] {
            let r = try d.raw("POST", "/vms/st/migrate", body: Array(#"{"destination":"tcp://127.0.0.1:9"\#(extra)}"#.utf8), headers: Self.json)
            #expect(r.status == 400 && r.body.contains("invalidRequest"), "\(extra): \(r.status) \(r.body)")
        }
        let stopped = try d.raw("POST", "/vms/st/migrate", body: Array(#"{"destination":"tcp://127.0.0.1:9"}"#.utf8), headers: Self.json)
        #expect(stopped.status == 409 && stopped.body.contains("invalidState"), "\(stopped.body)")
        let cli = try d.cli(["migrate", "st", "--to", dst.socket])
        #expect(cli.status != 0 && cli.stderr.contains("stopped"), "\(cli.stderr)")
        #expect(try Self.vmCount(dst) == 0)
        let usage = try d.cli(["migrate", "st", "--to", dst.socket, "--timeout", "0"])
        #expect(usage.status == 64, "\(usage.stderr)")
    }
}

extension DaemonMigrationTests {
    /// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
    static func freePort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw HarnessError("bind: \(errno)") }
        return UInt16(bigEndian: address.sin_port)
    }
}
