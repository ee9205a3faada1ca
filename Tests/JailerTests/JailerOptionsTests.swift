import Testing
@testable import Jailer

/// The jailer's own options: what they default to and what they refuse.
struct JailerOptionsTests {
    static let minimal = ["--id", "vm-1", "--uid", "1000", "--gid", "1001", "--", "--kernel", "k"]

    @Test func aMinimalCommandLineTakesTheDefaults() throws {
        let o = try JailerOptions.parse(Self.minimal)
        #expect(o.id == "vm-1" && o.uid == 1000 && o.gid == 1001)
        #expect(o.chrootBase == "/srv/jailer")
        #expect(o.execFile == nil && o.netns == nil && o.parentCgroup == nil && o.cgroups.isEmpty)
        #expect(o.cgroupVersion == .automatic)
        #expect(o.openFiles == 2048 && o.fileSize == nil)
        #expect(!o.allowRoot && !o.cleanup)
        #expect(o.monitorArguments == ["--kernel", "k"])
    }

    @Test func helpPrintsTheUsage() throws {
        let r = try JailTest.run(JailTest.tool("skiff-jailer"), ["--help"])
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("usage: skiff-jailer --id ID --uid UID --gid GID"), "\(r.stdout)")
        #expect(r.stderr.isEmpty)
    }

    @Test func everyOptionIsRead() throws {
        let o = try JailerOptions.parse([
            "--id=abc", "--uid", "5", "--gid=6", "--exec-file", "/opt/skiff-vmm", "--chroot-base-dir", "/var/jails",
            "--netns", "/run/netns/x", "--parent-cgroup", "vms/tenant-1", "--cgroup", "cpu.shares=512", "--cgroup", "memory.max=1G",
            "--cgroup-version", "1", "--resource-limit", "no-file=1024", "--resource-limit=fsize=1000000", "--cleanup",
            "--", "--kernel", "k", "--", "x",
        ])
        #expect(o.id == "abc" && o.uid == 5 && o.gid == 6)
        #expect(o.execFile == "/opt/skiff-vmm" && o.chrootBase == "/var/jails" && o.netns == "/run/netns/x")
        #expect(o.parentCgroup == "vms/tenant-1")
        #expect(o.cgroups == [CgroupSetting(file: "cpu.shares", value: "512"), CgroupSetting(file: "memory.max", value: "1G")])
        #expect(o.cgroups.map(\.controller) == ["cpu", "memory"])
        #expect(o.cgroupVersion == .v1 && o.openFiles == 1024 && o.fileSize == 1_000_000 && o.cleanup)
        // Everything after the first "--" belongs to the monitor, even another "--".
        #expect(o.monitorArguments == ["--kernel", "k", "--", "x"])
    }

    @Test(arguments: ["a/b", "..", ".", "../x", "a b", "", "a.b", "x_y", String(repeating: "a", count: 65)])
    func idsThatCouldNameAnotherPathAreRefused(id: String) {
        #expect(throws: JailError.usage("invalid --id '\(id)': use 1 to 64 letters, digits and hyphens")) {
            try JailerOptions.parse(["--id", id, "--uid", "1", "--gid", "1", "--", "--kernel", "k"])
        }
    }

    @Test func rootsIdentityNeedsAllowRoot() throws {
        for (uid, gid) in [("0", "1"), ("1", "0")] {
            let error = #expect(throws: JailError.self) {
                try JailerOptions.parse(["--id", "x", "--uid", uid, "--gid", gid, "--", "--kernel", "k"])
            }
            #expect(error?.description.contains("--allow-root") == true, "\(String(describing: error))")
            #expect(error?.exitStatus == 64)
        }
        let o = try JailerOptions.parse(["--id", "x", "--uid", "0", "--gid", "0", "--allow-root", "--", "--kernel", "k"])
        #expect(o.uid == 0 && o.allowRoot)
    }

    /// `--join-cgroup` names existing groups the supervisor prepared (repeatable).
    @Test func joinedCgroupsAreParsed() throws {
        let o = try JailerOptions.parse(["--id", "vm1", "--uid", "5", "--gid", "5", "--join-cgroup", "/sys/fs/cgroup/cpu,cpuacct/skiff/vm1",
                                         "--join-cgroup=/sys/fs/cgroup/memory/skiff/vm1", "--", "--kernel", "k"])
        #expect(o.joinCgroups == ["/sys/fs/cgroup/cpu,cpuacct/skiff/vm1", "/sys/fs/cgroup/memory/skiff/vm1"])
        #expect(o.parentCgroup == nil && o.cgroups.isEmpty)
    }

    @Test(arguments: [
        ([String](), "--id is required"),
        (["--id", "x", "--uid", "1", "--gid", "1"], "the monitor's options follow '--'"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--"], "the monitor's options follow '--'"),
        (["--id", "x", "--gid", "1", "--", "--kernel", "k"], "--uid is required"),
        (["--id", "x", "--uid", "-1", "--gid", "1", "--", "k"], "--uid must be a number"),
        (["--id", "x", "--uid", "4294967295", "--gid", "1", "--", "k"], "--uid must be a number"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--kernel", "k"], "unknown option '--kernel'"),
        (["--id", "x", "--id", "y", "--uid", "1", "--gid", "1", "--", "k"], "--id given twice"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--chroot-base-dir", "relative", "--", "k"], "--chroot-base-dir must be an absolute path"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--chroot-base-dir", "/srv/../etc", "--", "k"], "--chroot-base-dir must be an absolute path"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--parent-cgroup", "../escape", "--", "k"], "invalid --parent-cgroup"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--parent-cgroup", "/abs", "--", "k"], "invalid --parent-cgroup"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--cgroup", "cgroup.procs=1", "--", "k"], "FILE must be a controller file"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--cgroup", "../../x.y=1", "--", "k"], "FILE must be a controller file"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--cgroup", "cpu.shares", "--", "k"], "expected FILE=VALUE"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--cgroup-version", "3", "--", "k"], "--cgroup-version must be auto, 1 or 2"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--resource-limit", "cpu=1", "--", "k"], "unknown resource 'cpu'"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--resource-limit", "no-file=ten", "--", "k"], "expected no-file=N or fsize=BYTES"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--resource-limit", "no-file=3", "--", "k"], "at least 64"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--netns", "", "--", "k"], "--netns needs a path"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--cleanup=yes", "--", "k"], "unknown option '--cleanup=yes'"),
        (["--id"], "--id needs a value"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--join-cgroup", "relative/x", "--", "k"], "invalid --join-cgroup"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--join-cgroup", "/sys/fs/cgroup/../x", "--", "k"], "invalid --join-cgroup"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--join-cgroup", "/sys/fs/cgroup/a", "--cgroup", "cpu.shares=2", "--", "k"],
         "--join-cgroup cannot be combined"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--join-cgroup", "/sys/fs/cgroup/a", "--parent-cgroup", "p", "--", "k"],
         "--join-cgroup cannot be combined"),
        (["--id", "x", "--uid", "1", "--gid", "1", "--join-cgroup", "/c/a", "--join-cgroup", "/c/a", "--", "k"], "given twice"),
    ])
    func badOptionsAreOneLineUsageErrors(arguments: [String], expected: String) {
        let error = #expect(throws: JailError.self) { try JailerOptions.parse(arguments) }
        let text = error?.description ?? ""
        #expect(text.contains(expected), "\(text)")
        #expect(!text.contains("\n"))
        #expect(error?.exitStatus == 64)
    }
}
