import Foundation
import Testing
@testable import Jailer

/// `skiff-jailer` with real processes: guest-kit VMs boot in the jail, the monitor is
/// confined as documented (read from outside through /proc while a guest runs), disks,
/// sockets, snapshots, a network namespace and TAP re-opens work through it, and bad input
/// leaves nothing behind.
@Suite(.serialized, .enabled(if: JailAvailability.shouldRun, JailAvailability.skipReason))
struct JailSystemTests {
    static let jailer = JailTest.tool("skiff-jailer")
    static let skiff = JailTest.tool("skiff")
    typealias Base = JailTest.Base

    /// Whether this host puts VMs in v1 or v2 cgroups (the jailer decides the same way).
    static func cgroupVersion() throws -> CgroupPlan.Version {
        let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        return try CgroupPlan.make(id: "probe", parent: "skiff-vmm", settings: [], choice: .automatic,
                                   mounts: CgroupPlan.mounts(mountinfo: mountinfo),
                                   unifiedControllers: CgroupPlan.readUnifiedControllers).version
    }

    static func leftoverCgroups(_ id: String) -> [String] { JailTest.cgroupDirectories(id).filter { JailTest.exists($0) } }

    static func entries(_ path: String) -> Set<String> { Set((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []) }

    @Test func helloBootsInTheJailAndExitsWithItsStatus() throws {
        let base = try Base()
        defer { base.remove() }
        let id = JailTest.id("hello")
        let r = try JailTest.run(Self.jailer, JailTest.jailerArguments(base, id: id, monitor: ["--kernel", try JailTest.guest("hello.elf"), "--memory", "64M"]))
        #expect(r.status == 33, "\(r.stderr)")
        #expect(r.stdout.contains("SKIFF-TEST PASS hello"), "\(r.stdout)")
        // The jail stays for the caller (as Firecracker's); the pid file and the cgroups do not.
        #expect(JailTest.exists(base.root(id) + "/boot/hello.elf"))
        #expect(!JailTest.exists(base.jail(id) + "/skiff-vmm.pid"))
        #expect(Self.leftoverCgroups(id).isEmpty, "\(Self.leftoverCgroups(id))")

        let cleaned = JailTest.id("hello")
        let c = try JailTest.run(Self.jailer, JailTest.jailerArguments(base, id: cleaned, extra: ["--cleanup"],
                                                                      monitor: ["--kernel", try JailTest.guest("hello.elf"), "--memory", "64M"]))
        #expect(c.status == 33, "\(c.stderr)")
        #expect(!JailTest.exists(base.jail(cleaned)), "--cleanup left the jail")
    }

    /// `--join-cgroup`: the monitor runs in groups its caller prepared (it is charged there),
    /// the jailer makes no group of its own, and the caller's groups stay afterwards.
    @Test func joinedCgroupsAreUsedAndLeftAlone() throws {
        let base = try Base()
        defer { base.remove() }
        let id = JailTest.id("joined")
        let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let plan = try CgroupPlan.make(id: id, parent: "skiff-join-test", settings: [], choice: .automatic,
                                       mounts: CgroupPlan.mounts(mountinfo: mountinfo), unifiedControllers: CgroupPlan.readUnifiedControllers)
        let created = try plan.create()
        defer { CgroupPlan.remove(created); for g in plan.groups { rmdir((g.path as NSString).deletingLastPathComponent) } }
        let joins = plan.groups.flatMap { ["--join-cgroup", $0.path] }
        let r = try JailTest.run(Self.jailer, JailTest.jailerArguments(base, id: id, extra: joins,
                                                                      monitor: ["--kernel", try JailTest.guest("hello.elf"), "--memory", "64M"]))
        #expect(r.status == 33, "\(r.stderr)")
        #expect(Self.leftoverCgroups(id).isEmpty, "the jailer made groups of its own: \(Self.leftoverCgroups(id))")
        for group in plan.groups { #expect(JailTest.exists(group.path), "\(group.path) was removed") }
        // The monitor was charged to the joined groups (v1: the memory group's peak; v2: CPU time).
        let charged = plan.version == .v1
            ? plan.groups.first { $0.controllers.contains("memory") }.flatMap { g in
                (try? String(contentsOfFile: g.path + "/memory.max_usage_in_bytes", encoding: .utf8)).flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
            : (try? String(contentsOfFile: plan.groups[0].path + "/cpu.stat", encoding: .utf8))?.split(separator: "\n").first { $0.hasPrefix("usage_usec") }
                .flatMap { UInt64($0.split(separator: " ").last ?? "") }
        #expect((charged ?? 0) > 0, "nothing charged to \(plan.groups.map(\.path))")
        let cpu = plan.groups[0]
        // A joined group that does not exist is refused before anything is made.
        let bad = try JailTest.run(Self.jailer, JailTest.jailerArguments(base, id: JailTest.id("nojoin"), extra: ["--join-cgroup", cpu.path + "-missing"],
                                                                        monitor: ["--kernel", try JailTest.guest("hello.elf"), "--memory", "64M"]))
        #expect(bad.status == 1 && bad.stderr.contains("is not an existing cgroup"), "\(bad.stderr)")
    }

    /// The guest waits (heartbeats) while its monitor is inspected from outside.
    @Test func theMonitorIsConfined() throws {
        let base = try Base()
        defer { base.remove() }
        let id = JailTest.id("confined")
        let v1 = try Self.cgroupVersion() == .v1
        let setting = v1 ? ("cpu.shares", "512") : ("cpu.weight", "50")
        let arguments = JailTest.jailerArguments(
            base, id: id,
            extra: ["--cgroup", "\(setting.0)=\(setting.1)", "--resource-limit", "no-file=1000", "--resource-limit", "fsize=1073741824"],
            monitor: ["--kernel", try JailTest.guest("workload.elf"), "--memory", "64M", "--cmdline", "mib=1 dirty=0", "--api-socket", "api.sock"])
        // fd 7 is open (not close-on-exec) when the jailer starts: neither it nor the monitor may keep it.
        let p = try JailTest.Background("/bin/sh", ["-c", "exec 7</etc/hostname; exec \"$0\" \"$@\"", Self.jailer] + arguments)
        defer { JailTest.kill9(p) }
        #expect(p.waitFor("WL heartbeat"), "\(p.text)")
        let pid = try #require(JailTest.monitorPID(base, id))
        let root = base.root(id)

        let status = JailTest.status(pid)
        #expect(status["Uid"] == "\(JailTest.uid)\t\(JailTest.uid)\t\(JailTest.uid)\t\(JailTest.uid)", "\(status)")
        #expect(status["Gid"] == "\(JailTest.gid)\t\(JailTest.gid)\t\(JailTest.gid)\t\(JailTest.gid)", "\(status)")
        #expect(status["Groups"] == "")
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(status[set] == "0000000000000000", "\(set): \(status[set] ?? "?")")
        }
        #expect(status["NoNewPrivs"] == "1")
        // PID 1 of its own PID namespace.
        #expect(status["NSpid"] == "\(pid)\t1", "\(status["NSpid"] ?? "?")")
        for ns in ["mnt", "pid", "ipc", "uts", "net"] {
            let theirs = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(ns)")
            let ours = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(ns)")
            if ns == "net" { #expect(theirs == ours, "without --netns the host's network namespace is kept") } else { #expect(theirs != ours, "\(ns)") }
        }

        // Its root holds the monitor, its libraries, three device nodes, /proc, /run and the kernel.
        let libraries = try ELFDependencies.resolve(executable: JailTest.tool("skiff-vmm"), jailPath: "/skiff-vmm")
        let libraryTops = Set(([libraries.interpreter].compactMap { $0 } + libraries.libraries).compactMap { $0.jailPath.split(separator: "/").first.map(String.init) })
        let seen = Self.entries("/proc/\(pid)/root")
        #expect(seen == Set(["skiff-vmm", "dev", "proc", "run", "boot"]).union(libraryTops), "\(seen.sorted())")
        #expect(Self.entries("/proc/\(pid)/root/dev") == ["kvm", "net", "urandom"])
        #expect(Self.entries("/proc/\(pid)/root/dev/net") == ["tun"])
        #expect(Self.entries("/proc/\(pid)/root/boot") == ["workload.elf"])
        #expect(Self.entries("/proc/\(pid)/root/run") == ["api.sock"])
        for (node, major, minor) in [("kvm", 10, 232), ("net/tun", 10, 200), ("urandom", 1, 9)] {
            var st = stat()
            #expect(lstat(root + "/dev/" + node, &st) == 0)
            #expect(st.st_mode == S_IFCHR | 0o600 && st.st_uid == JailTest.uid && st.st_gid == JailTest.gid, "\(node)")
            #expect(Int(st.st_rdev >> 8 & 0xfff) == major && Int(st.st_rdev & 0xff) == minor, "\(node)")
        }
        // Mounts: the root read-only, /run writable, a procfs of its own; nothing else.
        let mountinfo = try String(contentsOfFile: "/proc/\(pid)/mountinfo", encoding: .utf8)
        let mounts = mountinfo.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(mounts.map { $0[4] } == ["/", "/run", "/proc"], "\(mountinfo)")
        #expect(mounts.first?[5].split(separator: ",").contains("ro") == true, "\(mountinfo)")
        #expect(mounts.last.map { $0[$0.count - 3] } == "proc", "\(mountinfo)")

        // Descriptors: the monitor has none of what the jailer inherited (fd 7; the jailer
        // itself keeps it, outside the jail, as callers may watch such a descriptor for its end).
        let jailerFDs = Self.entries("/proc/\(p.pid)/fd")
        #expect(jailerFDs.contains("7"), "\(jailerFDs.sorted())")
        for fd in Self.entries("/proc/\(pid)/fd") {
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")) ?? ""
            #expect(target != "/etc/hostname", "the monitor's fd \(fd) was inherited")
        }
        // The jailer's other descriptors (inherited from this test's process) are not the monitor's.
        for fd in jailerFDs where Int(fd).map({ $0 > 2 }) == true {
            let outside = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p.pid)/fd/\(fd)")) ?? ""
            let inside = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")) ?? ""
            #expect(outside != inside, "fd \(fd) (\(outside)) reached the monitor")
        }

        // Limits and cgroups.
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        #expect(limits.split(separator: "\n").contains { $0.hasPrefix("Max open files") && $0.split(separator: " ").contains("1000") }, "\(limits)")
        #expect(limits.split(separator: "\n").contains { $0.hasPrefix("Max file size") && $0.split(separator: " ").contains("1073741824") }, "\(limits)")
        let cgroups = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)
        if v1 {
            for controller in ["cpu", "memory", "blkio"] {
                #expect(cgroups.split(separator: "\n").contains { $0.hasSuffix(":\(controller):/skiff-vmm/\(id)") }, "\(controller): \(cgroups)")
            }
            let shares = try String(contentsOfFile: "/sys/fs/cgroup/cpu/skiff-vmm/\(id)/cpu.shares", encoding: .utf8)
            #expect(shares.trimmingCharacters(in: .whitespacesAndNewlines) == "512")
        } else {
            #expect(cgroups.split(separator: "\n").contains { $0.hasPrefix("0::/") && $0.hasSuffix("/skiff-vmm/\(id)") }, "\(cgroups)")
        }

        // The control socket, as the host sees it under the jail root.
        let vm = try JailTest.run(Self.skiff, ["vm", "status", "--api-socket", root + "/run/api.sock"])
        #expect(vm.status == 0 && vm.stdout.contains("state: running"), "\(vm.stdout)\(vm.stderr)")

        // SIGTERM to the jailer reaches the monitor: a clean stop, and the jailer tidies up.
        kill(p.pid, SIGTERM)
        #expect(p.finish() == 0, "\(p.text)")
        #expect(!JailTest.exists(root + "/run/api.sock"))
        #expect(!JailTest.exists(base.jail(id) + "/skiff-vmm.pid"))
        #expect(Self.leftoverCgroups(id).isEmpty, "\(Self.leftoverCgroups(id))")
    }

    @Test func aDiskWorksThroughTheJail() throws {
        let base = try Base()
        defer { base.remove() }
        let disk = base.path + "/disk.img"
        #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 8 << 20)))
        #expect(chown(disk, JailTest.uid, JailTest.gid) == 0)

        let id = JailTest.id("disk")
        let r = try JailTest.run(Self.jailer, JailTest.jailerArguments(base, id: id, monitor: [
            "--kernel", try JailTest.guest("virtio-blk.elf"), "--memory", "64M", "--cmdline", "end=pass", "--disk", disk]))
        #expect(r.status == 33, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("serial \"disk.img\""), "\(r.stdout)")
        #expect(r.stdout.contains("readback ok"), "\(r.stdout)")
        // The guest's writes reached the host's file through the bind mount: sector 1, byte i = 29 + 7i + 1.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: disk)).subdata(in: 512..<1024))
        let pattern: [UInt8] = (0..<512).map { (i: Int) -> UInt8 in UInt8(truncatingIfNeeded: 29 + i * 7 + 1) }
        #expect(bytes == pattern)
        // The jail has an empty mount point where the disk was (the mount lived in the monitor's namespace).
        var st = stat()
        #expect(stat(base.root(id) + "/disks/disk.img", &st) == 0 && st.st_size == 0)

        // Read-only: the guest's writes are refused and the mount is read-only too.
        let ro = try JailTest.run(Self.jailer, JailTest.jailerArguments(base, id: JailTest.id("disk-ro"), monitor: [
            "--kernel", try JailTest.guest("virtio-blk.elf"), "--memory", "64M", "--cmdline", "mode=ro", "--disk", disk + ",readonly"]))
        #expect(ro.status == 33, "\(ro.stdout)\(ro.stderr)")
        #expect(ro.stdout.contains("readonly writes refused"), "\(ro.stdout)")
    }

    /// Thin clones: a qcow2 overlay whose backing file is named by an absolute path (as
    /// `skiff image clone` records it) and one named relative to the overlay (as qemu-img -b).
    @Test func qcow2BackingFilesAreFoundInTheJail() throws {
        let base = try Base()
        defer { base.remove() }
        let golden = base.path + "/golden"
        try FileManager.default.createDirectory(atPath: golden, withIntermediateDirectories: true)
        let image = golden + "/base.qcow2"
        let create = try JailTest.run(Self.skiff, ["image", "create", "-f", "qcow2", image, "16M"])
        try #require(create.status == 0, "\(create.stderr)")
        let overlays = base.path + "/overlays"
        try FileManager.default.createDirectory(atPath: overlays, withIntermediateDirectories: true)
        let absolute = overlays + "/clone.qcow2"
        let clone = try JailTest.run(Self.skiff, ["image", "clone", image, absolute])
        try #require(clone.status == 0, "\(clone.stderr)")
        let relative = overlays + "/relative.qcow2"
        let qemuImg = try JailTest.run("/usr/bin/qemu-img", ["create", "-f", "qcow2", "-b", "../golden/base.qcow2", "-F", "qcow2", relative])
        try #require(qemuImg.status == 0, "\(qemuImg.stderr)")
        for file in [image, absolute, relative] { #expect(chown(file, JailTest.uid, JailTest.gid) == 0) }

        for overlay in [absolute, relative] {
            let id = JailTest.id("clone")
            let r = try JailTest.run(Self.jailer, JailTest.jailerArguments(base, id: id, monitor: [
                "--kernel", try JailTest.guest("virtio-blk.elf"), "--memory", "64M", "--cmdline", "end=pass", "--disk", overlay + ",format=qcow2"]))
            #expect(r.status == 33, "\(overlay): \(r.stdout)\(r.stderr)")
            #expect(r.stdout.contains("readback ok"), "\(r.stdout)")
            // The base was mounted read-only where the overlay names it.
            let where_ = overlay == absolute ? image : "/golden/base.qcow2"
            #expect(JailTest.exists(base.root(id) + where_), "\(where_)")
        }
        // The guest's writes went to the overlays; the base is unchanged and both check clean.
        for file in [image, absolute, relative] {
            let check = try JailTest.run("/usr/bin/qemu-img", ["check", file])
            #expect(check.status == 0, "\(file): \(check.stdout)\(check.stderr)")
        }
        let map = try JailTest.run("/usr/bin/qemu-img", ["map", "--output=json", image])
        #expect(!map.stdout.contains("\"data\": true"), "the base was written: \(map.stdout)")
    }

    @Test func aSnapshotTakenInOneJailRestoresInAnother() throws {
        let base = try Base()
        defer { base.remove() }
        let first = JailTest.id("snap-a")
        let a = try JailTest.Background(Self.jailer, JailTest.jailerArguments(base, id: first, monitor: [
            "--kernel", try JailTest.guest("workload.elf"), "--memory", "64M", "--cmdline", "mib=1 dirty=0", "--api-socket", "api.sock"]))
        defer { JailTest.kill9(a) }
        #expect(a.waitFor("WL heartbeat n=2"), "\(a.text)")
        // The snapshot directory is a path inside the jail: the monitor writes only under /run.
        let create = try JailTest.run(Self.skiff, ["snapshot", "create", "--api-socket", base.root(first) + "/run/api.sock", "/run/snap", "--stop"])
        #expect(create.status == 0, "\(create.stdout)\(create.stderr)")
        #expect(a.finish() == 0, "\(a.text)")
        let snapshot = base.root(first) + "/run/snap"
        #expect(JailTest.exists(snapshot + "/state") && JailTest.exists(snapshot + "/memory"))

        let second = JailTest.id("snap-b")
        let b = try JailTest.Background(Self.jailer, JailTest.jailerArguments(base, id: second, monitor: [
            "--restore", snapshot, "--api-socket", "api.sock"]))
        defer { JailTest.kill9(b) }
        #expect(b.waitFor("WL heartbeat n="), "\(b.text)")
        let vm = try JailTest.run(Self.skiff, ["vm", "status", "--api-socket", base.root(second) + "/run/api.sock"])
        #expect(vm.stdout.contains("restored-from: /snapshots/snap"), "\(vm.stdout)\(vm.stderr)")
        // It continues where the first left off rather than booting again.
        #expect(!b.text.contains("WL tsc-khz"), "\(b.text)")
        // A diff snapshot of a restored VM reads /proc/self/pagemap: the jail's own procfs serves it.
        let diff = try JailTest.run(Self.skiff, ["snapshot", "create", "--api-socket", base.root(second) + "/run/api.sock", "/run/diff", "--diff"])
        #expect(diff.status == 0 && diff.stdout.contains("(diff)"), "\(diff.stdout)\(diff.stderr)")
        #expect(JailTest.exists(base.root(second) + "/run/diff/state"))
        kill(b.pid, SIGTERM)
        #expect(b.finish() == 0, "\(b.text)")
    }

    /// The host side of virtio-vsock.elf through the jail's /run: it serves the guest's
    /// connection to port 5000 at NAME_5000 (letting the VM's uid connect), then connects to
    /// the guest's port 1234 through NAME.
    static let vsockHost = """
        import os, socket, sys, time
        path, uid, gid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        def read_until(s, needle):
            data = b""
            while needle not in data:
                d = s.recv(4096)
                if not d: break
                data += d
            return data
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path + "_5000")
        os.chown(path + "_5000", uid, gid)
        server.listen(1)
        server.settimeout(30)
        print("listening", flush=True)
        guest, _ = server.accept()
        guest.settimeout(10)
        print("accepted", read_until(guest, b"hello from guest 7").decode(), flush=True)
        guest.sendall(b"hello from host")
        while guest.recv(4096): pass
        print("guest closed", flush=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            host.settimeout(10)
            try:
                host.connect(path)
            except OSError:
                time.sleep(0.05)
                continue
            host.sendall(b"CONNECT 1234\\n")
            ack = read_until(host, b"\\n")
            if not ack.startswith(b"OK "):
                host.close()
                time.sleep(0.05)
                continue
            print("ack", ack.decode().strip(), flush=True)
            host.sendall(b"ping from host")
            print("reply", read_until(host, b"echo:ping from host").decode(), flush=True)
            host.close()
            break
        """

    @Test func vsockWorksThroughTheJailsRun() throws {
        let python = "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            if JailAvailability.inCI { Issue.record("\(python) is missing") } else { print("skipped: \(python) is missing") }
            return
        }
        let base = try Base()
        defer { base.remove() }
        let id = JailTest.id("vsock")
        let console = Pipe()
        let vm = try JailTest.Background(Self.jailer, JailTest.jailerArguments(base, id: id, monitor: [
            "--kernel", try JailTest.guest("virtio-vsock.elf"), "--memory", "64M", "--cmdline", "port=5000 listen=1234 wait-key=1",
            "--vsock", "cid=7,socket=v.sock"]), stdin: console)
        defer { JailTest.kill9(vm) }
        #expect(vm.waitFor("virtio-vsock ready"), "\(vm.text)")
        let host = try JailTest.Background(python, ["-c", Self.vsockHost, base.root(id) + "/run/v.sock", "\(JailTest.uid)", "\(JailTest.gid)"])
        defer { JailTest.kill9(host) }
        #expect(host.waitFor("listening"), "\(host.text)")
        console.fileHandleForWriting.write(Data("g".utf8))
        #expect(vm.finish(timeout: 90) == 33, "\(vm.text)")
        #expect(host.finish() == 0, "\(host.text)")
        let lines = host.text.split(separator: "\n").map(String.init)
        #expect(lines.count == 5 && lines[0...2] == ["listening", "accepted hello from guest 7", "guest closed"], "\(host.text)")
        #expect(lines.count == 5 && lines[3].hasPrefix("ack OK ") && lines[4] == "reply echo:ping from host", "\(host.text)")
        #expect(vm.text.contains("host-initiated got \"ping from host\""), "\(vm.text)")
    }

    /// Live migration from one jail to another over TCP (the jails share the host's network
    /// namespace; addresses are numeric, as the jail has no resolver configuration).
    @Test func aVMMigratesBetweenTwoJails() throws {
        let base = try Base()
        defer { base.remove() }
        let source = JailTest.id("mig-src"), target = JailTest.id("mig-dst")
        let port = Int.random(in: 40000...59000)
        let a = try JailTest.Background(Self.jailer, JailTest.jailerArguments(base, id: source, monitor: [
            "--kernel", try JailTest.guest("workload.elf"), "--memory", "64M", "--cmdline", "mib=1 dirty=0", "--api-socket", "api.sock"]))
        defer { JailTest.kill9(a) }
        let b = try JailTest.Background(Self.jailer, JailTest.jailerArguments(base, id: target, monitor: [
            "--incoming", "tcp://127.0.0.1:\(port)", "--api-socket", "api.sock", "--verbose"]))
        defer { JailTest.kill9(b) }
        #expect(a.waitFor("WL heartbeat n=2"), "\(a.text)")
        #expect(b.waitFor("waiting for a migrating VM"), "\(b.text)")
        let migrate = try JailTest.run(Self.skiff, ["migrate", "--api-socket", base.root(source) + "/run/api.sock", "tcp://127.0.0.1:\(port)"])
        #expect(migrate.status == 0, "\(migrate.stdout)\(migrate.stderr)")
        #expect(a.finish() == 0, "\(a.text)")
        #expect(b.waitFor("WL heartbeat n="), "\(b.text)")
        kill(b.pid, SIGTERM)
        #expect(b.finish() == 0, "\(b.text)")
    }

    /// A persistent TAP owned by the VM's uid in a network namespace the jail joins: the
    /// monitor opens it without CAP_NET_ADMIN, and again after each guest reset.
    @Test func aTapInAJoinedNamespaceReopensOnReboot() throws {
        let ip = "/usr/sbin/ip"
        guard FileManager.default.isExecutableFile(atPath: ip) else {
            if JailAvailability.inCI { Issue.record("\(ip) is missing (apt-get install iproute2)") } else { print("skipped: \(ip) is missing") }
            return
        }
        let base = try Base()
        defer { base.remove() }
        let ns = "skj-\(UUID().uuidString.prefix(8).lowercased())"
        let add = try JailTest.run(ip, ["netns", "add", ns])
        try #require(add.status == 0, "\(add.stderr)")
        defer { _ = try? JailTest.run(ip, ["netns", "del", ns]) }
        let tap = try JailTest.run(ip, ["-n", ns, "tuntap", "add", "dev", "skjtap0", "mode", "tap", "user", "\(JailTest.uid)", "group", "\(JailTest.gid)"])
        try #require(tap.status == 0, "\(tap.stderr)")

        let id = JailTest.id("tap")
        let p = try JailTest.Background(Self.jailer, JailTest.jailerArguments(base, id: id, extra: ["--netns", "/run/netns/" + ns], monitor: [
            "--kernel", try JailTest.guest("i8042-reset.elf"), "--memory", "64M", "--on-reboot", "restart", "--net", "tap=skjtap0"]))
        defer { JailTest.kill9(p) }
        #expect(p.waitFor("resetting", count: 3, timeout: 120), "\(p.text)")
        let pid = try #require(JailTest.monitorPID(base, id))
        var joined = stat(), theirs = stat()
        #expect(stat("/run/netns/" + ns, &joined) == 0 && stat("/proc/\(pid)/ns/net", &theirs) == 0)
        #expect(joined.st_ino == theirs.st_ino, "the monitor is not in the namespace")
        kill(p.pid, SIGTERM)
        #expect(p.finish() == 0, "\(p.text)")
        #expect(!p.text.contains("cannot restart"), "\(p.text)")
    }

    /// Each refusal is one line, and nothing of the jail (directory, cgroups) is left.
    @Test(arguments: ["missing-kernel", "slash-id", "dotdot-id", "uid-0", "unknown-option", "unwritable-disk", "unreadable-kernel", "bad-base", "bad-netns"])
    func badInputIsOneLineAndLeavesNothing(_ what: String) throws {
        let base = try Base()
        defer { base.remove() }
        let hello = try JailTest.guest("hello.elf")
        var id = JailTest.id("bad")
        var arguments = JailTest.jailerArguments(base, id: id, monitor: ["--kernel", hello])
        let expected: String
        switch what {
        case "missing-kernel":
            arguments = JailTest.jailerArguments(base, id: id, monitor: ["--kernel", "/nonexistent/kernel"])
            expected = "cannot read kernel /nonexistent/kernel: No such file or directory"
        case "slash-id":
            id = "a/b"
            arguments = JailTest.jailerArguments(base, id: id, monitor: ["--kernel", hello])
            expected = "invalid --id 'a/b'"
        case "dotdot-id":
            id = ".."
            arguments = JailTest.jailerArguments(base, id: id, monitor: ["--kernel", hello])
            expected = "invalid --id '..'"
        case "uid-0":
            arguments = ["--id", id, "--uid", "0", "--gid", "0", "--chroot-base-dir", base.path, "--", "--kernel", hello]
            expected = "pass --allow-root"
        case "unknown-option":
            arguments = JailTest.jailerArguments(base, id: id, monitor: ["--kernel", hello, "--frobnicate"])
            expected = "unknown monitor option '--frobnicate'"
        case "unwritable-disk":
            // Found only inside, after the jail was built: the child reports it and the parent undoes everything.
            let disk = base.path + "/root-only.img"
            #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20), attributes: [.posixPermissions: 0o600]))
            arguments = JailTest.jailerArguments(base, id: id, monitor: ["--kernel", hello, "--disk", disk])
            expected = "uid \(JailTest.uid) cannot read and write disk \(disk): Permission denied"
        case "unreadable-kernel":
            let kernel = base.path + "/secret.elf"
            #expect(FileManager.default.createFile(atPath: kernel, contents: try Data(contentsOf: URL(fileURLWithPath: hello)), attributes: [.posixPermissions: 0o600]))
            arguments = JailTest.jailerArguments(base, id: id, monitor: ["--kernel", kernel])
            expected = "uid \(JailTest.uid) cannot read kernel \(kernel): Permission denied"
        case "bad-netns":
            // Also found only inside: setns refuses a file that is not a namespace.
            arguments = JailTest.jailerArguments(base, id: id, extra: ["--netns", "/etc/hostname"], monitor: ["--kernel", hello])
            expected = "join the network namespace /etc/hostname: Invalid argument"
        case "bad-base":
            #expect(chmod(base.path, 0o777) == 0)
            expected = "must be a directory owned by root and writable only by it"
        default:
            Issue.record("unknown case \(what)")
            return
        }
        let r = try JailTest.run(Self.jailer, arguments)
        #expect(r.status != 0 && r.status != 33)
        #expect(r.stderr.hasPrefix("skiff-jailer: error: "), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains(expected), "\(r.stderr)")
        #expect(r.stdout.isEmpty, "\(r.stdout)")
        #expect(!JailTest.exists(base.path + "/skiff-vmm/" + id) || id == "..", "a jail was left for \(what)")
        if !id.contains("/") && id != ".." { #expect(Self.leftoverCgroups(id).isEmpty, "\(Self.leftoverCgroups(id))") }
    }

    @Test func onlyRootMayRunIt() throws {
        let setpriv = "/usr/bin/setpriv"
        guard FileManager.default.isExecutableFile(atPath: setpriv) else {
            if JailAvailability.inCI { Issue.record("\(setpriv) is missing (util-linux)") } else { print("skipped: \(setpriv) is missing") }
            return
        }
        let base = try Base()
        defer { base.remove() }
        let id = JailTest.id("nonroot")
        let r = try JailTest.run(setpriv, ["--reuid", "65534", "--regid", "65534", "--clear-groups", Self.jailer]
                                 + JailTest.jailerArguments(base, id: id, monitor: ["--kernel", try JailTest.guest("hello.elf")]))
        #expect(r.status == 1)
        #expect(r.stderr == "skiff-jailer: error: skiff-jailer must run as root (it creates namespaces, device nodes and cgroups)\n", "\(r.stderr)")
        #expect(!JailTest.exists(base.path + "/skiff-vmm"))
    }

    /// An existing cgroup for the id is refused after the jail was built: the jail goes, the
    /// cgroup (not the jailer's) stays.
    @Test func anExistingCgroupIsRefusedAndLeftAlone() throws {
        let base = try Base()
        defer { base.remove() }
        let id = JailTest.id("cgexists")
        let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let plan = try CgroupPlan.make(id: id, parent: "skiff-vmm", settings: [], choice: .automatic,
                                       mounts: CgroupPlan.mounts(mountinfo: mountinfo), unifiedControllers: CgroupPlan.readUnifiedControllers)
        let existing = try #require(plan.groups.last).path
        try FileManager.default.createDirectory(atPath: existing, withIntermediateDirectories: true)
        defer { rmdir(existing) }
        let r = try JailTest.run(Self.jailer, JailTest.jailerArguments(base, id: id, monitor: ["--kernel", try JailTest.guest("hello.elf")]))
        #expect(r.status == 1)
        #expect(r.stderr == "skiff-jailer: error: cgroup \(existing) already exists (ids must be unique; remove it with rmdir)\n", "\(r.stderr)")
        #expect(!JailTest.exists(base.jail(id)))
        #expect(JailTest.exists(existing), "the existing cgroup was removed")
        #expect(Self.leftoverCgroups(id) == [existing], "\(Self.leftoverCgroups(id))")
    }

    /// --allow-root: uid 0, and still no capability in any set (the bounding set is empty before the exec).
    @Test func rootInTheJailHasNoCapabilities() throws {
        let base = try Base()
        defer { base.remove() }
        let id = JailTest.id("root")
        let p = try JailTest.Background(Self.jailer, ["--id", id, "--uid", "0", "--gid", "0", "--allow-root", "--chroot-base-dir", base.path, "--",
                                                      "--kernel", try JailTest.guest("workload.elf"), "--memory", "64M", "--cmdline", "mib=1 dirty=0"])
        defer { JailTest.kill9(p) }
        #expect(p.waitFor("WL heartbeat"), "\(p.text)")
        let pid = try #require(JailTest.monitorPID(base, id))
        let status = JailTest.status(pid)
        #expect(status["Uid"] == "0\t0\t0\t0")
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(status[set] == "0000000000000000", "\(set): \(status[set] ?? "?")")
        }
        #expect(status["NoNewPrivs"] == "1")
        kill(p.pid, SIGTERM)
        #expect(p.finish() == 0, "\(p.text)")
    }

    @Test func anExistingJailIsRefusedAndLeftAlone() throws {
        let base = try Base()
        defer { base.remove() }
        let id = JailTest.id("exists")
        try FileManager.default.createDirectory(atPath: base.root(id), withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: base.root(id) + "/marker", contents: Data("keep".utf8)))
        let r = try JailTest.run(Self.jailer, JailTest.jailerArguments(base, id: id, monitor: ["--kernel", try JailTest.guest("hello.elf")]))
        #expect(r.status == 1)
        #expect(r.stderr == "skiff-jailer: error: the jail directory \(base.jail(id)) already exists (ids must be unique; remove it first)\n")
        #expect(JailTest.exists(base.root(id) + "/marker"), "the existing jail was touched")
        #expect(Self.leftoverCgroups(id).isEmpty)
    }
}
