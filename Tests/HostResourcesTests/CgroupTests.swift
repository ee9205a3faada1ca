import Foundation
import HostResources
import Testing

/// A scratch directory tree removed at deinit.
final class Tree {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "skiff-tree-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Creates a file (and its directory) with `text`.
    func file(_ relative: String, _ text: String = "") {
        let p = "\(path)/\(relative)"
        try? FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
    }

    func read(_ relative: String) -> String? { SysFS.read("\(path)/\(relative)") }
}

struct CgroupTests {
    /// A v2 tree as the kernel would show it; files of a new group are pre-created because a
    /// plain directory does not grow them.
    func v2Tree(vms: [String]) -> Tree {
        let t = Tree()
        t.file("cgroup.controllers", "cpuset cpu io memory pids")
        t.file("cgroup.subtree_control")
        t.file("skiff/cgroup.controllers", "cpuset cpu memory")
        t.file("skiff/cgroup.subtree_control")
        for vm in vms {
            for f in ["cpu.weight", "cpu.max", "memory.max", "memory.high", "cpuset.cpus", "cgroup.procs"] { t.file("skiff/\(vm)/\(f)") }
        }
        return t
    }

    @Test func v2WritesWeightsLimitsAndMemory() throws {
        let t = v2Tree(vms: ["hi", "lo"])
        let driver = CgroupV2(root: t.path)
        try driver.prepare(vm: "hi", limits: CgroupLimits(weightUnits: 4, cpuLimit: 1.5, memoryLimit: 512 << 20, cpuset: "0"))
        try driver.prepare(vm: "lo", limits: CgroupLimits(weightUnits: 1))
        #expect(t.read("cgroup.subtree_control") == "+cpu +memory +cpuset")
        #expect(t.read("skiff/cgroup.subtree_control") == "+cpu +memory +cpuset")
        #expect(t.read("skiff/hi/cpu.weight") == "400")
        #expect(t.read("skiff/lo/cpu.weight") == "100")
        #expect(t.read("skiff/hi/cpu.max") == "150000 100000")
        #expect(t.read("skiff/lo/cpu.max") == "max 100000")
        #expect(t.read("skiff/hi/memory.max") == String(512 << 20))
        #expect(t.read("skiff/hi/memory.high") == String((512 << 20) - (512 << 20) / 16))
        #expect(t.read("skiff/lo/memory.max") == "max")
        #expect(t.read("skiff/hi/cpuset.cpus") == "0")
        #expect(driver.procFiles(vm: "hi") == ["\(t.path)/skiff/hi/cgroup.procs"])
    }

    @Test func v2UsageReadsCPUStatAndMemoryCurrent() {
        let t = v2Tree(vms: ["a"])
        t.file("skiff/a/cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
        t.file("skiff/a/memory.current", "1048576\n")
        let usage = CgroupV2(root: t.path).usage(vm: "a")
        #expect(usage == CgroupUsage(cpuNanoseconds: 2_500_000_000, memoryBytes: 1 << 20))
    }

    @Test func v1WritesSharesQuotaAndLimit() throws {
        let t = Tree()
        for h in ["cpu", "cpuacct", "memory", "cpuset"] { try FileManager.default.createDirectory(atPath: "\(t.path)/\(h)", withIntermediateDirectories: true) }
        t.file("cpuset/cpuset.cpus", "0-1")
        t.file("cpuset/cpuset.mems", "0")
        for f in ["cpu/skiff/vm/cpu.shares", "cpu/skiff/vm/cpu.cfs_quota_us", "cpu/skiff/vm/cpu.cfs_period_us", "memory/skiff/vm/memory.limit_in_bytes",
                  "cpuset/skiff/cpuset.cpus", "cpuset/skiff/cpuset.mems", "cpuset/skiff/vm/cpuset.cpus", "cpuset/skiff/vm/cpuset.mems"] { t.file(f) }
        let driver = CgroupV1(cpu: "\(t.path)/cpu", cpuacct: "\(t.path)/cpuacct", memory: "\(t.path)/memory", cpuset: "\(t.path)/cpuset")
        try driver.prepare(vm: "vm", limits: CgroupLimits(weightUnits: 4, cpuLimit: 0.5, memoryLimit: 256 << 20, cpuset: "1"))
        #expect(t.read("cpu/skiff/vm/cpu.shares") == "4096")
        #expect(t.read("cpu/skiff/vm/cpu.cfs_period_us") == "100000")
        #expect(t.read("cpu/skiff/vm/cpu.cfs_quota_us") == "50000")
        #expect(t.read("memory/skiff/vm/memory.limit_in_bytes") == String(256 << 20))
        #expect(t.read("cpuset/skiff/cpuset.cpus") == "0-1")
        #expect(t.read("cpuset/skiff/cpuset.mems") == "0")
        #expect(t.read("cpuset/skiff/vm/cpuset.cpus") == "1")
        try driver.apply(vm: "vm", limits: CgroupLimits(weightUnits: 1))
        #expect(t.read("cpu/skiff/vm/cpu.shares") == "1024")
        #expect(t.read("cpu/skiff/vm/cpu.cfs_quota_us") == "-1")
        #expect(t.read("memory/skiff/vm/memory.limit_in_bytes") == "-1")
        #expect(driver.procFiles(vm: "vm").count == 4)
    }

    @Test func detectPrefersV2WithControllersElseV1() {
        let t = Tree()
        t.file("unified/cgroup.controllers", "hugetlb")
        let v1Mounts = """
            cgroup \(t.path)/cpu cgroup rw,relatime,cpu 0 0
            cgroup \(t.path)/cpuacct cgroup rw,relatime,cpuacct 0 0
            cgroup \(t.path)/memory cgroup rw,relatime,memory 0 0
            cgroup2 \(t.path)/unified cgroup2 rw,relatime 0 0
            """
        #expect(Cgroups.detect(mounts: v1Mounts)?.version == "v1")
        t.file("v2/cgroup.controllers", "cpu memory io")
        #expect(Cgroups.detect(mounts: "cgroup2 \(t.path)/v2 cgroup2 rw 0 0")?.version == "v2")
        #expect(Cgroups.detect(mounts: "proc /proc proc rw 0 0") == nil)
    }

    @Test func pressureParses() {
        let p = HostMemory.parsePressure("some avg10=12.50 avg60=3.00 avg300=1.00 total=123\nfull avg10=4.25 avg60=0.00 avg300=0.00 total=5\n")
        #expect(p == HostMemory.Pressure(some10: 12.5, full10: 4.25))
        #expect(HostMemory.parsePressure("garbage") == nil)
    }

    @Test func ksmReadsAndWritesItsFiles() throws {
        let t = Tree()
        for (f, v) in [("run", "0"), ("pages_to_scan", "100"), ("sleep_millisecs", "20"), ("pages_shared", "10"), ("pages_sharing", "30")] { t.file(f, v) }
        let ksm = KSM(root: t.path)
        #expect(ksm.status() == KSM.Status(available: true, run: false, pagesToScan: 100, sleepMilliseconds: 20, pagesShared: 10, pagesSharing: 30))
        #expect(ksm.status().savedBytes == 30 * 4096)
        try ksm.configure(run: true, pagesToScan: 1000, sleepMilliseconds: nil)
        #expect(t.read("run") == "1")
        #expect(t.read("pages_to_scan") == "1000")
        #expect(t.read("sleep_millisecs") == "20")
        #expect(KSM(root: t.path + "/missing").status().available == false)
    }

    /// On this host's real cgroups: a VM group under `skiff` takes a process and reports its CPU time.
    @Test func realHierarchyTakesAProcess() throws {
        guard let driver = Cgroups.detect() else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("no usable cgroup hierarchy and CI=true") }
            else { print("skipped: no cgroup v1/v2 hierarchy with cpu and memory") }
            return
        }
        let name = "test-\(getpid())"
        do {
            try driver.prepare(vm: name, limits: CgroupLimits(weightUnits: 2))
        } catch {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("cannot create a cgroup: \(error)") }
            else { print("skipped: cannot create a cgroup (\(error))") }
            return
        }
        defer { driver.remove(vm: name) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "for f in \(driver.procFiles(vm: name).joined(separator: " ")); do echo 0 > $f; done; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let usage = try #require(driver.usage(vm: name))
        #expect(usage.cpuNanoseconds > 10_000_000, "the busy loop's CPU time should be charged to the group")
    }
}
