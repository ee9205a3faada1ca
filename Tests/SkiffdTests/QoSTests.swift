import Foundation
import HostResources
import Testing

/// QoS through cgroups on this host's hierarchy (v1 here: cpu.shares, cpuacct.usage, cpuset).
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct QoSTests {
    /// Two busy guests, high (4) and low (1), pinned to one host CPU: their CPU time is 4:1 ± 10 %.
    @Test func weightsFourToOneOnOneCPU() throws {
        guard let driver = Cgroups.detect() else {
            if KVMGate.inCI { Issue.record("no cgroup hierarchy with cpu and memory, and CI=true") } else { print("skipped: no cgroups") }
            return
        }
        let d = try Daemon()
        defer { d.tearDown() }
        // workload with no pacing writes pages back to back: a vCPU that never idles.
        for (name, cls) in [("busyhi", "high"), ("busylo", "low")] {
            try d.ok(["create", "-f", try d.spec(name, guest: "workload.elf", memory: "64M",
                                                 extra: "cmdline: report=100000000 verify=0\nqos: {class: \(cls), cpuset: '0'}\n"), "--start"])
        }
        // Let both settle, then measure a window.
        usleep(1_000_000)
        let a0 = try #require(driver.usage(vm: "busyhi")).cpuNanoseconds
        let b0 = try #require(driver.usage(vm: "busylo")).cpuNanoseconds
        usleep(8_000_000)
        let a1 = try #require(driver.usage(vm: "busyhi")).cpuNanoseconds
        let b1 = try #require(driver.usage(vm: "busylo")).cpuNanoseconds
        let high = Double(a1 - a0) / 1e9
        let low = Double(b1 - b0) / 1e9
        let ratio = high / max(low, 1e-9)
        print("qos: high \(String(format: "%.2f", high)) s, low \(String(format: "%.2f", low)) s of CPU in 8 s: ratio \(String(format: "%.2f", ratio)) (want 4 ± 0.4)")
        // Both must have competed for the CPU, or the ratio says nothing. Other work on a shared
        // host takes its own share of CPU 0, so this asks for a quarter of the window, not most of it.
        #expect(high + low > 2, "the two guests together should keep one CPU busy")
        #expect(abs(ratio - 4) <= 0.4, "ratio \(ratio)")
        // Changing the class at run time takes effect at once.
        let h = try d.raw("PUT", "/vms/busylo/qos", body: Array("{\"class\":\"high\",\"cpuset\":\"0\"}".utf8), headers: ["Content-Type": "application/json"])
        #expect(h.status == 200, "\(h.body)")
        if driver.version == "v1" {
            #expect(SysFS.read("/sys/fs/cgroup/cpu/skiff/busylo/cpu.shares") == "4096")
        }
    }

    /// Memory and CPU limits land in the VM's cgroup files.
    @Test func limitsAreWritten() throws {
        guard let driver = Cgroups.detect(), driver.version == "v1" else {
            print("note: the v1 file checks run on v1 hosts; v2 writes are covered by HostResourcesTests")
            return
        }
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("lim", extra: "qos: {class: low, cpuLimit: 0.5, memoryLimit: 256M}\n"), "--start"])
        #expect(SysFS.read("/sys/fs/cgroup/cpu/skiff/lim/cpu.shares") == "1024")
        #expect(SysFS.read("/sys/fs/cgroup/cpu/skiff/lim/cpu.cfs_quota_us") == "50000")
        #expect(SysFS.read("/sys/fs/cgroup/memory/skiff/lim/memory.limit_in_bytes") == String(256 << 20))
        let pid = try #require(try d.show("lim")["pid"] as? Int)
        let procs = SysFS.read("/sys/fs/cgroup/cpu/skiff/lim/cgroup.procs") ?? ""
        #expect(procs.split(separator: "\n").contains(Substring(String(pid))), "the monitor runs in its cgroup")
    }
}
