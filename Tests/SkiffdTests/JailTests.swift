import Foundation
import HostProcess
import Testing

/// Tests that need root (the jailer) as well as /dev/kvm: they fail in CI without either and
/// are skipped with the reason elsewhere.
enum RootGate {
    static var shouldRun: Bool { KVMGate.inCI || (KVMGate.available && geteuid() == 0) }
    static var skipReason: Comment { "skipped outside CI: needs root and /dev/kvm" }
}

/// skiffd runs monitors through skiff-jailer by default when it runs as root (every other
/// SkiffdTests suite then runs jailed too); `--jailer off` runs them unconfined.
@Suite(.serialized, .enabled(if: RootGate.shouldRun, RootGate.skipReason))
struct JailTests {
    /// The fields of /proc/PID/status.
    static func status(_ pid: Int) -> [String: String] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    static func inode(_ path: String) -> [UInt64]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    static func owner(_ path: String) -> (uid: UInt32, gid: UInt32)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (st.st_uid, st.st_gid)
    }

    static func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// A VM of the daemon is confined: its monitor runs as the VM's own unprivileged uid with
    /// no capabilities and no_new_privs, in its own PID namespace, with the jail as its root;
    /// its root-owned writable disk and its TAP are given to that uid and the disk's owner comes
    /// back when the VM stops (also after a kill -9 of the daemon); a second VM gets another uid.
    /// "OWNER:GROUP" as the kernel reports them for TAP `name` ("-1": none), or nil without it.
    static func tapOwner(_ name: String) -> String? {
        func read(_ file: String) -> String? {
            (try? String(contentsOfFile: "/sys/class/net/\(name)/\(file)", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let owner = read("owner"), let group = read("group") else { return nil }
        return "\(owner):\(group)"
    }

    @Test func daemonVMsRunJailedWithTheirOwnUID() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        let disk = "\(d.dir)/data.img"
        FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20), attributes: [.posixPermissions: 0o600])
        #expect(chown(disk, 0, 0) == 0)
        let tap = "skj\(UInt16.random(in: 0...UInt16.max))"
        defer { _ = Self.run("/usr/sbin/ip", ["link", "delete", tap]) }
        try d.ok(["create", "-f", try d.spec("jail1", extra: "disks:\n  - {path: \(disk), format: raw}\nnics:\n  - {tap: \(tap)}\n"), "--start"])
        let pid = try #require(try d.show("jail1")["pid"] as? Int)
        let status = Self.status(pid)
        let uids = (status["Uid"] ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { UInt32($0) }
        let uid = try #require(uids.first)
        #expect(uid >= 300_000 && uids.count == 4 && Set(uids).count == 1, "\(status["Uid"] ?? "")")
        #expect((status["Gid"] ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " }).allSatisfy { UInt32($0) == uid })
        #expect(status["CapEff"] == "0000000000000000" && status["CapBnd"] == "0000000000000000", "\(status)")
        #expect(status["NoNewPrivs"] == "1")
        #expect((status["NSpid"] ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " }) == [Substring(String(pid)), "1"])
        // Its root is the jail's root directory (the same inode), holding only the VM's things.
        let root = Self.inode("/proc/\(pid)/root")
        #expect(root != nil && root == Self.inode("\(d.jailBase)/jail1/root"))
        let entries = Set((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/root")) ?? [])
        #expect(entries.isSuperset(of: ["skiff-vmm", "dev", "boot", "disks", "run", "proc"]) && !entries.contains("etc"), "\(entries)")
        #expect(d.monitors()[Int32(pid)] == "jail1")
        // Its sockets are in the jail's /run, which only its uid may enter.
        let socket = try #require(try d.show("jail1")["apiSocket"] as? String)
        #expect(socket == "\(d.jailBase)/jail1/root/run/api.sock")
        #expect(Self.owner("\(d.jailBase)/jail1/root/run")?.uid == uid)
        // The disk and the TAP are the VM's while it runs.
        #expect(Self.owner(disk)?.uid == uid && Self.owner(disk)?.gid == uid)
        #expect(Self.tapOwner(tap) == "\(uid):\(uid)")
        #expect(try eventually { try d.ok(["logs", "jail1"]).contains("Hello from Skiff guest") })

        // Another VM, another uid; its TAP exists already, owned by someone else.
        let tap2 = "skk\(UInt16.random(in: 0...UInt16.max))"
        #expect(Self.run("/usr/sbin/ip", ["tuntap", "add", "dev", tap2, "mode", "tap", "user", "4242", "group", "4343"]) == 0)
        defer { _ = Self.run("/usr/sbin/ip", ["link", "delete", tap2]) }
        try d.ok(["create", "-f", try d.spec("jail2", extra: "nics:\n  - {tap: \(tap2)}\n"), "--start"])
        let pid2 = try #require(try d.show("jail2")["pid"] as? Int)
        let uid2 = (Self.status(pid2)["Uid"] ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " }).first.flatMap { UInt32($0) }
        #expect(uid2 != nil && uid2 != uid)

        #expect(Self.tapOwner(tap2) == "\(uid2 ?? 0):\(uid2 ?? 0)")

        // A stop gives the disk back and deletes the TAP the daemon created; so does a
        // restart's output stay in the logs.
        try d.ok(["stop", "jail1", "--timeout", "0"])
        #expect(Self.owner(disk)?.uid == 0 && Self.owner(disk)?.gid == 0)
        #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/\(tap)"), "the TAP the daemon created outlives the VM")
        try d.ok(["start", "jail1"])
        #expect(Self.owner(disk)?.uid == uid, "the same VM keeps its uid")
        #expect(Self.tapOwner(tap) == "\(uid):\(uid)", "the TAP is made again for the next run")
        #expect(try eventually { try d.ok(["logs", "jail1"]).components(separatedBy: "Hello from Skiff guest").count >= 3 },
                "the earlier run's console output is kept")

        // kill -9 of the daemon; the VM is killed meanwhile; the next daemon gives the disk back.
        let victim = try #require(try d.show("jail1")["pid"] as? Int)
        d.kill9()
        kill(Int32(victim), SIGKILL)
        #expect(eventually(10) { kill(Int32(victim), 0) != 0 })
        try d.start()
        #expect(try eventually(10) { try d.show("jail1")["state"] as? String == "crashed" })
        #expect(Self.owner(disk)?.uid == 0)
        #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/\(tap)"))
        // jail2 was re-attached and is still controlled: kill reaches its monitor (its status is
        // unknown now: the jailer is no longer this daemon's child).
        #expect(try d.show("jail2")["pid"] as? Int == pid2)
        #expect(d.monitors()[Int32(pid2)] == "jail2")
        try d.ok(["kill", "jail2"])
        #expect(try d.show("jail2")["state"] as? String == "stopped")
        // A TAP the daemon did not create stays, with its owner and group back.
        #expect(Self.tapOwner(tap2) == "4242:4343")
        #expect(eventually(5) { kill(Int32(pid2), 0) != 0 })
        try d.ok(["delete", "jail2"])
        #expect(!FileManager.default.fileExists(atPath: "\(d.jailBase)/jail2"))
    }

    /// A file the VM's uid cannot read fails the start with the jailer's one line in the API error.
    @Test func anUnreadableDiskFailsTheStartWithTheJailersLine() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        let disk = "\(d.dir)/ro.img"
        FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20), attributes: [.posixPermissions: 0o600])
        try d.ok(["create", "-f", try d.spec("ro", extra: "disks:\n  - {path: \(disk), format: raw, readonly: true}\n")])
        let r = try d.cli(["start", "ro"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("cannot read") && r.stderr.contains(disk), "\(r.stderr)")
        #expect(try d.show("ro")["state"] as? String == "stopped")
        #expect(d.monitors().isEmpty)
    }

    /// `--jailer off`: the monitor runs unconfined, as the daemon's user, in the host's namespaces.
    @Test func jailerOffRunsMonitorsUnconfined() throws {
        let d = try Daemon(extraArguments: ["--jailer", "off"])
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("free"), "--start"])
        let pid = try #require(try d.show("free")["pid"] as? Int)
        let status = Self.status(pid)
        #expect((status["Uid"] ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " }).first == "0")
        #expect((status["NSpid"] ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " }).count == 1)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/root") == "/")
        #expect(try d.show("free")["apiSocket"] as? String == "\(d.runDir)/free.api")
        #expect(try eventually { try d.ok(["logs", "free"]).contains("Hello from Skiff guest") })
        try d.ok(["kill", "free"])
        #expect((try d.show("free")["lastExit"] as? [String: Any])?["signal"] as? Int == 9)
        #expect(!FileManager.default.fileExists(atPath: d.jailBase))
    }

    /// `--jailer on` without a jailer is a clear refusal to start.
    @Test func jailerOnWithoutAJailerRefusesToStart() throws {
        let dir = "/tmp/skj-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(Paths.bin)/skiffd")
        p.arguments = ["--socket", "\(dir)/s.sock", "--data-dir", "\(dir)/data", "--monitor", "\(Paths.bin)/skiff-vmm",
                       "--jailer", "on", "--jailer-path", "\(dir)/no-such-jailer"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        #expect(text.contains("--jailer on") && text.contains("no-such-jailer"), "\(text)")
    }
}
