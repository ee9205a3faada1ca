import Testing
@testable import Jailer

/// Which hierarchy the VM goes into, detected from mountinfo and the v2 root's controllers.
struct CgroupPlanTests {
    /// Separate v1 hierarchies plus an empty unified one (a hybrid host).
    static let hybrid = """
        24 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
        30 24 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        32 30 0:28 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
        33 30 0:29 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
        34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        35 30 0:31 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
        36 30 0:32 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
        37 30 0:33 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """
    /// systemd's usual v1 layout: cpu and cpuacct share a hierarchy.
    static let comounted = """
        31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
        34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
        """
    /// A pure v2 host.
    static let unified = """
        25 24 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
        """

    static func make(_ mountinfo: String, settings: [CgroupSetting] = [], choice: CgroupVersionChoice = .automatic,
                     v2: [String]? = ["cpu", "memory", "io", "pids"]) throws(JailError) -> CgroupPlan {
        try CgroupPlan.make(id: "vm1", parent: "skiff-vmm", settings: settings, choice: choice,
                            mounts: CgroupPlan.mounts(mountinfo: mountinfo), unifiedControllers: { _ in v2 })
    }

    @Test func mountinfoIsRead() {
        let mounts = CgroupPlan.mounts(mountinfo: Self.hybrid + "\n40 24 0:40 / /mnt/with\\040space rw - cgroup cgroup rw,pids")
        #expect(mounts.count == 8)
        #expect(mounts.first == CgroupPlan.Mount(path: "/sys/fs/cgroup/cpu", isUnified: false, options: ["rw", "cpu"]))
        #expect(mounts.contains(CgroupPlan.Mount(path: "/sys/fs/cgroup/unified", isUnified: true, options: [])))
        #expect(mounts.last?.path == "/mnt/with space")
    }

    @Test func aHybridHostWithoutV2ControllersUsesV1() throws {
        let plan = try Self.make(Self.hybrid, settings: [CgroupSetting(file: "cpu.shares", value: "512")], v2: ["hugetlb"])
        #expect(plan.version == .v1)
        #expect(plan.groups.map(\.path) == ["/sys/fs/cgroup/cpu/skiff-vmm/vm1", "/sys/fs/cgroup/memory/skiff-vmm/vm1", "/sys/fs/cgroup/blkio/skiff-vmm/vm1"])
        #expect(plan.groups[0].settings == [CgroupSetting(file: "cpu.shares", value: "512")])
        #expect(plan.groups[1].settings.isEmpty)
    }

    @Test func v2IsChosenWhenTheUnifiedHierarchyHasTheControllers() throws {
        let plan = try Self.make(Self.hybrid, settings: [CgroupSetting(file: "memory.max", value: "1G")])
        #expect(plan.version == .v2)
        #expect(plan.groups == [CgroupPlan.Group(root: "/sys/fs/cgroup/unified", controllers: ["cpu", "memory", "io"],
                                                 path: "/sys/fs/cgroup/unified/skiff-vmm/vm1",
                                                 settings: [CgroupSetting(file: "memory.max", value: "1G")])])
        let pure = try Self.make(Self.unified, v2: ["cpu", "memory"])
        #expect(pure.version == .v2 && pure.groups.map(\.controllers) == [["cpu", "memory"]])
        #expect(pure.groups.map(\.path) == ["/sys/fs/cgroup/skiff-vmm/vm1"])
    }

    @Test func coMountedControllersShareOneGroup() throws {
        let plan = try Self.make(Self.comounted, settings: [CgroupSetting(file: "cpuacct.usage", value: "0")], v2: nil)
        #expect(plan.version == .v1)
        #expect(plan.groups.map(\.controllers) == [["cpuacct", "cpu"], ["memory"]])
        #expect(plan.groups[0].path == "/sys/fs/cgroup/cpu,cpuacct/skiff-vmm/vm1")
    }

    @Test func missingControllersAreNamed() {
        let v2 = #expect(throws: JailError.self) { try Self.make(Self.hybrid, choice: .v2, v2: ["hugetlb"]) }
        #expect(v2?.description == "the cgroup v2 hierarchy at /sys/fs/cgroup/unified lacks the controllers cpu, memory (it has: hugetlb)")
        let v1 = #expect(throws: JailError.self) {
            try Self.make(Self.hybrid, settings: [CgroupSetting(file: "pids.max", value: "10")], choice: .v1)
        }
        #expect(v1?.description == "no cgroup v1 hierarchy is mounted for pids")
        let none = #expect(throws: JailError.self) { try Self.make(Self.unified, choice: .automatic, v2: ["pids"]) }
        #expect(none?.description.hasPrefix("no usable cgroup hierarchy") == true, "\(String(describing: none))")
    }

    /// Joined groups are found under their hierarchy's mount and never created or removed.
    @Test func joinedGroupsBelongToTheirMounts() throws {
        let mounts = CgroupPlan.mounts(mountinfo: Self.comounted)
        let plan = try CgroupPlan.joining(["/sys/fs/cgroup/cpu,cpuacct/skiff/vm1", "/sys/fs/cgroup/memory/skiff/vm1"], mounts: mounts)
        #expect(plan.joinsExisting && plan.version == .v1)
        #expect(plan.groups.map(\.root) == ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory"])
        #expect(plan.groups.allSatisfy { $0.settings.isEmpty })
        let v2 = try CgroupPlan.joining(["/sys/fs/cgroup/skiff/vm1"], mounts: CgroupPlan.mounts(mountinfo: Self.unified))
        #expect(v2.version == .v2 && v2.groups.count == 1)
        let outside = #expect(throws: JailError.self) { try CgroupPlan.joining(["/tmp/skiff/vm1"], mounts: mounts) }
        #expect(outside?.description.contains("not below a mounted cgroup hierarchy") == true)
        let mixed = #expect(throws: JailError.self) {
            try CgroupPlan.joining(["/sys/fs/cgroup/cpu/a", "/sys/fs/cgroup/unified/a"], mounts: CgroupPlan.mounts(mountinfo: Self.hybrid))
        }
        #expect(mixed?.description.contains("cannot be mixed") == true)
    }
}
