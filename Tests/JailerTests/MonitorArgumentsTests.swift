import Foundation
import Testing
@testable import Jailer

/// How the monitor's arguments are read, placed in the jail and rewritten.
struct MonitorArgumentsTests {
    static let root = "/srv/jailer/skiff-vmm/vm/root"

    /// A host where every path exists: directories end in "/dir" or "snap", devices start with /dev/.
    static func lookup(_ path: String) -> HostLookup {
        if path.contains("missing") { return .failed(errno: ENOENT) }
        let absolute = path.hasPrefix("/") ? path : "/home/user/" + path
        if absolute.hasSuffix("/dir") || absolute.contains("snap") { return .found(path: absolute, kind: .directory) }
        if absolute.hasPrefix("/dev/") { return .found(path: absolute, kind: .blockDevice) }
        return .found(path: absolute, kind: .regular)
    }

    static func plan(_ arguments: [String]) throws(JailError) -> JailPlan {
        try MonitorArguments.plan(arguments, hostRoot: root, lookup: lookup)
    }

    @Test func everyPathIsRewrittenToItsPlaceInTheJail() throws {
        let p = try Self.plan([
            "--kernel", "/boot/vmlinux-6.1", "--initrd=/images/initrd.img", "--module", "/m/mod.bin arg1 arg2", "--cmdline", "console=ttyS0 --kernel x",
            "--memory", "128M", "--rng", "--disk", "/vm/disk,,1.img,serial=ab,,c", "--disk", "data.qcow2,readonly,format=qcow2",
            "--disk", "/dev/vdb,readonly=off", "--net", "tap=tap0,mac=02:00:00:00:00:01", "--vsock", "cid=3,socket=v.sock",
            "--api-socket", "api.sock", "--console-socket", "/run/console.sock", "--console-log", "console.log", "--verbose",
        ])
        #expect(p.arguments == [
            "--kernel", "/boot/vmlinux-6.1", "--initrd", "/boot/initrd.img", "--module", "/boot/mod.bin arg1 arg2",
            "--cmdline", "console=ttyS0 --kernel x", "--memory", "128M", "--rng",
            "--disk", "/disks/disk,,1.img,serial=ab,,c", "--disk", "/disks/data.qcow2,readonly,format=qcow2", "--disk", "/disks/vdb,readonly=off",
            "--net", "tap=tap0,mac=02:00:00:00:00:01", "--vsock", "cid=3,socket=/run/v.sock",
            "--api-socket", "/run/api.sock", "--console-socket", "/run/console.sock", "--console-log", "/run/console.log", "--verbose",
        ])
        #expect(p.entries.map(\.jailPath) == ["/boot/vmlinux-6.1", "/boot/initrd.img", "/boot/mod.bin", "/disks/disk,1.img", "/disks/data.qcow2", "/disks/vdb"])
        #expect(p.entries.map(\.hostPath) == ["/boot/vmlinux-6.1", "/images/initrd.img", "/m/mod.bin", "/vm/disk,1.img", "/home/user/data.qcow2", "/dev/vdb"])
        #expect(p.entries.prefix(3).allSatisfy { $0.placement == .linkOrCopy && !$0.writable })
        #expect(p.entries[3].placement == .bind(readOnly: false) && p.entries[3].writable)
        #expect(p.entries[4].placement == .bind(readOnly: true) && !p.entries[4].writable)
        #expect(p.entries[5].placement == .bind(readOnly: false) && p.entries[5].kind == .blockDevice)
        #expect(p.createdNames == ["v.sock", "api.sock", "console.sock", "console.log"])
    }

    @Test func restoreAndMigrationPathsAreRewritten() throws {
        let p = try Self.plan(["--restore", "/srv/snap1", "--api-socket", "a.sock", "--ksm", "off"])
        #expect(p.arguments == ["--restore", "/snapshots/snap1", "--api-socket", "/run/a.sock", "--ksm", "off"])
        #expect(p.entries == [JailPlan.Entry(role: "snapshot directory", hostPath: "/srv/snap1", jailPath: "/snapshots/snap1",
                                             kind: .directory, placement: .bind(readOnly: true), writable: false)])
        let unix = try Self.plan(["--incoming", "unix:in.sock", "--incoming-base", "/b/snapbase"])
        #expect(unix.arguments == ["--incoming", "unix:/run/in.sock", "--incoming-base", "/snapshots/snapbase"])
        let serial = try Self.plan(["--restore", "/srv/snap1", "--serial", "file=console.out"])
        #expect(serial.arguments == ["--restore", "/snapshots/snap1", "--serial", "file=/run/console.out"])
        #expect(serial.createdNames == ["console.out"])
        #expect(try Self.plan(["--serial=none"]).arguments == ["--serial", "none"])
        #expect(throws: JailError.self) { try Self.plan(["--serial", "file=/var/log/console.out"]) }
        let tcp = try Self.plan(["--incoming", "tcp://10.0.0.1:4444"])
        #expect(tcp.arguments == ["--incoming", "tcp://10.0.0.1:4444"] && tcp.entries.isEmpty && tcp.createdNames.isEmpty)
    }

    /// A qcow2 chain: overlay -> ../base/mid.qcow2 (relative) -> /golden/base.raw (absolute).
    static func backing(_ host: String) -> String? {
        switch host {
        case "/vm/overlay.qcow2": return "../base/mid.qcow2"
        case "/vm/../base/mid.qcow2", "/base/mid.qcow2": return "/golden/base.raw"
        case "/loop/a.qcow2": return "b.qcow2"
        case "/loop/b.qcow2": return "a.qcow2"
        case "/vm/escape.qcow2": return "/proc/self/mem"
        default: return nil
        }
    }

    static func lookupNormalizing(_ path: String) -> HostLookup {
        .found(path: MonitorArguments.lexicallyNormalized(path), kind: .regular)
    }

    @Test func aQcow2BackingChainIsMountedWhereTheMonitorLooks() throws {
        let p = try MonitorArguments.plan(["--disk", "/vm/overlay.qcow2,format=qcow2"], hostRoot: Self.root,
                                          lookup: Self.lookupNormalizing, backing: Self.backing)
        #expect(p.arguments == ["--disk", "/disks/overlay.qcow2,format=qcow2"])
        #expect(p.entries.map(\.jailPath) == ["/disks/overlay.qcow2", "/base/mid.qcow2", "/golden/base.raw"])
        #expect(p.entries.map(\.hostPath) == ["/vm/overlay.qcow2", "/base/mid.qcow2", "/golden/base.raw"])
        #expect(p.entries.dropFirst().allSatisfy { $0.placement == .bind(readOnly: true) && !$0.writable && $0.role == "backing file" })
        // Without format=qcow2 the image is raw to the monitor: no chain is followed.
        let raw = try MonitorArguments.plan(["--disk", "/vm/overlay.qcow2"], hostRoot: Self.root, lookup: Self.lookupNormalizing, backing: Self.backing)
        #expect(raw.entries.count == 1)
    }

    @Test func badBackingChainsAreRefused() {
        let loop = #expect(throws: JailError.self) {
            try MonitorArguments.plan(["--disk", "/loop/a.qcow2,format=qcow2"], hostRoot: Self.root, lookup: Self.lookupNormalizing, backing: Self.backing)
        }
        #expect(loop?.description == "the backing chain of /loop/b.qcow2 loops back to /loop/a.qcow2")
        let escape = #expect(throws: JailError.self) {
            try MonitorArguments.plan(["--disk", "/vm/escape.qcow2,format=qcow2"], hostRoot: Self.root, lookup: Self.lookupNormalizing, backing: Self.backing)
        }
        #expect(escape?.description.contains("which the jail reserves") == true, "\(String(describing: escape))")
    }

    @Test func pathsAreNormalizedAsTheKernelResolvesThem() {
        #expect(MonitorArguments.lexicallyNormalized("/disks/../../a/./b//c") == "/a/b/c")
        #expect(MonitorArguments.lexicallyNormalized("/..") == "/")
    }

    @Test(arguments: [
        (["--kernel", "/x/missing"], "cannot read kernel /x/missing: No such file or directory"),
        (["--kernel", "/x/dir"], "kernel /x/dir is not a regular file"),
        (["--restore", "/x/file"], "snapshot directory /x/file is not a directory"),
        (["--disk", "/x/missing.img"], "cannot read disk /x/missing.img: No such file or directory"),
        (["--kernel", "/a/k", "--initrd", "/b/k"], "--initrd and --kernel both need /boot/k in the jail"),
        (["--api-socket", "s", "--console-socket", "s"], "--console-socket and --api-socket both need /run/s"),
        (["--api-socket", "/tmp/api.sock"], "--api-socket '/tmp/api.sock' must be a file name"),
        (["--console-log", ".."], "--console-log '..' must be a file name"),
        (["--vsock", "cid=3"], "socket= is needed"),
        (["--api-socket", String(repeating: "s", count: 80)], "too long for a unix socket"),
        (["--jail-everything", "on"], "unknown monitor option '--jail-everything'"),
        (["--kernel"], "monitor option --kernel needs a value"),
        (["stray"], "unexpected monitor argument 'stray'"),
    ])
    func badMonitorArgumentsGiveOneLine(arguments: [String], expected: String) {
        let error = #expect(throws: JailError.self) { try Self.plan(arguments) }
        let text = error?.description ?? ""
        #expect(text.contains(expected), "\(text)")
        #expect(!text.contains("\n"))
    }

    /// The jailer refuses options it does not know, so its table must match the monitor's:
    /// a new monitor option fails this test until the jailer learns whether it names a file.
    @Test func theJailerKnowsEveryMonitorOption() throws {
        let vmm = JailTest.tool("skiff-vmm")
        let r = try JailTest.run(vmm, ["--experimental-dump-help"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let command = try #require(json["command"] as? [String: Any])
        let arguments = try #require(command["arguments"] as? [[String: Any]])
        var monitor: [String: Bool] = [:]
        for a in arguments {
            let kind = a["kind"] as? String
            for n in (a["names"] as? [[String: Any]]) ?? [] {
                guard let name = n["name"] as? String, let k = n["kind"] as? String else { continue }
                monitor[(k == "short" ? "-" : "--") + name] = kind != "flag"
            }
        }
        #expect(!monitor.isEmpty)
        #expect(monitor == MonitorArguments.knownOptions, "monitor: \(monitor.sorted { $0.key < $1.key })")
    }
}
