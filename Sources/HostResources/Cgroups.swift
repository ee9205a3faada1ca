import Foundation

/// What the daemon asks of a VM's cgroup.
public struct CgroupLimits: Sendable, Equatable {
    /// Relative CPU weight units (high 4, normal 2, low 1).
    public var weightUnits: Int
    /// CPUs' worth of time (nil: unlimited).
    public var cpuLimit: Double?
    /// Hard memory limit in bytes (nil: unlimited).
    public var memoryLimit: UInt64?
    /// Host CPUs allowed ("0-1"), nil for all.
    public var cpuset: String?

    public init(weightUnits: Int, cpuLimit: Double? = nil, memoryLimit: UInt64? = nil, cpuset: String? = nil) {
        self.weightUnits = weightUnits
        self.cpuLimit = cpuLimit
        self.memoryLimit = memoryLimit
        self.cpuset = cpuset
    }

    /// The CFS period both versions use (100 ms).
    public static let periodMicroseconds: Int64 = 100_000
    /// Quota per period for `cpuLimit`.
    public var quotaMicroseconds: Int64? { cpuLimit.map { max(1000, Int64(($0 * Double(Self.periodMicroseconds)).rounded())) } }
}

/// Usage read back from a VM's cgroup.
public struct CgroupUsage: Sendable, Equatable {
    /// CPU time of every process in the group (nanoseconds).
    public var cpuNanoseconds: UInt64
    /// Memory charged to the group (bytes).
    public var memoryBytes: UInt64

    public init(cpuNanoseconds: UInt64, memoryBytes: UInt64) {
        self.cpuNanoseconds = cpuNanoseconds
        self.memoryBytes = memoryBytes
    }
}

/// A cgroup hierarchy the daemon can put VMs in: a `skiff` parent with a child per VM.
public protocol CgroupDriver: Sendable {
    var version: String { get }
    /// Creates (or reuses) the VM's group and applies `limits`.
    func prepare(vm: String, limits: CgroupLimits) throws(ResourceError)
    /// Applies `limits` to an existing group.
    func apply(vm: String, limits: CgroupLimits) throws(ResourceError)
    /// The `cgroup.procs` files a new process writes itself into.
    func procFiles(vm: String) -> [String]
    func usage(vm: String) -> CgroupUsage?
    /// Removes the VM's group (it must be empty).
    func remove(vm: String)
    /// Where the VM's group is (for display).
    func path(vm: String) -> String
}

/// Finds the cgroup layout of this host at run time: v2 when the unified hierarchy has the
/// cpu and memory controllers, else v1 when cpu and memory are mounted as v1, else none.
public enum Cgroups {
    public static func detect(mounts: String? = SysFS.read("/proc/self/mounts"), parent: String = "skiff") -> (any CgroupDriver)? {
        guard let mounts else { return nil }
        var v1: [String: String] = [:]
        var v2: String?
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 4 else { continue }
            let path = String(f[1])
            if f[2] == "cgroup2" {
                if v2 == nil { v2 = path }
            } else if f[2] == "cgroup" {
                for option in f[3].split(separator: ",") {
                    let o = String(option)
                    if ["cpu", "cpuacct", "memory", "cpuset"].contains(o), v1[o] == nil { v1[o] = path }
                }
            }
        }
        if let v2, let controllers = SysFS.read("\(v2)/cgroup.controllers")?.split(separator: " ").map(String.init),
           controllers.contains("cpu"), controllers.contains("memory") {
            return CgroupV2(root: v2, parent: parent)
        }
        if let cpu = v1["cpu"], let memory = v1["memory"] {
            return CgroupV1(cpu: cpu, cpuacct: v1["cpuacct"] ?? cpu, memory: memory, cpuset: v1["cpuset"], parent: parent)
        }
        return nil
    }
}

/// cgroup v2: cpu.weight, cpu.max, memory.max, memory.high, cpuset.cpus.
public struct CgroupV2: CgroupDriver {
    public let root: String
    public let parent: String
    public var version: String { "v2" }

    public init(root: String, parent: String = "skiff") {
        self.root = root
        self.parent = parent
    }

    /// cpu.weight for `units` (1 → 100, so high:normal:low = 400:200:100).
    public static func weight(_ units: Int) -> Int { max(1, min(10000, units * 100)) }

    public func path(vm: String) -> String { "\(root)/\(parent)/\(vm)" }

    public func prepare(vm: String, limits: CgroupLimits) throws(ResourceError) {
        let parentPath = "\(root)/\(parent)"
        try makeDirectory(parentPath)
        // Delegate the controllers down: root → skiff → each VM.
        for dir in [root, parentPath] {
            let available = SysFS.read("\(dir)/cgroup.controllers")?.split(separator: " ").map(String.init) ?? []
            let wanted = ["cpu", "memory", "cpuset"].filter { available.contains($0) }
            if !wanted.isEmpty {
                try? SysFS.write(wanted.map { "+\($0)" }.joined(separator: " "), to: "\(dir)/cgroup.subtree_control")
            }
        }
        try makeDirectory(path(vm: vm))
        try apply(vm: vm, limits: limits)
    }

    public func apply(vm: String, limits: CgroupLimits) throws(ResourceError) {
        let dir = path(vm: vm)
        try SysFS.write(String(Self.weight(limits.weightUnits)), to: "\(dir)/cpu.weight")
        let quota = limits.quotaMicroseconds.map(String.init) ?? "max"
        try SysFS.write("\(quota) \(CgroupLimits.periodMicroseconds)", to: "\(dir)/cpu.max")
        let memory = limits.memoryLimit.map(String.init) ?? "max"
        try SysFS.write(memory, to: "\(dir)/memory.max")
        // Reclaim starts a little below the hard limit.
        let high = limits.memoryLimit.map { String($0 - $0 / 16) } ?? "max"
        try SysFS.write(high, to: "\(dir)/memory.high")
        if let cpuset = limits.cpuset {
            try SysFS.write(cpuset, to: "\(dir)/cpuset.cpus")
        }
    }

    public func procFiles(vm: String) -> [String] { ["\(path(vm: vm))/cgroup.procs"] }

    public func usage(vm: String) -> CgroupUsage? {
        let dir = path(vm: vm)
        guard let stat = SysFS.read("\(dir)/cpu.stat") else { return nil }
        let usec = SysFS.keyValues(stat)["usage_usec"] ?? 0
        let memory = SysFS.readInt("\(dir)/memory.current") ?? 0
        return CgroupUsage(cpuNanoseconds: UInt64(max(0, usec)) * 1000, memoryBytes: UInt64(max(0, memory)))
    }

    public func remove(vm: String) { unsafe rmdir(path(vm: vm)) }
}

/// cgroup v1: cpu.shares, cpu.cfs_quota_us / cpu.cfs_period_us, memory.limit_in_bytes,
/// cpuacct.usage, cpuset.cpus — one directory per controller hierarchy.
public struct CgroupV1: CgroupDriver {
    public let cpu: String
    public let cpuacct: String
    public let memory: String
    public let cpuset: String?
    public let parent: String
    public var version: String { "v1" }

    public init(cpu: String, cpuacct: String, memory: String, cpuset: String?, parent: String = "skiff") {
        self.cpu = cpu
        self.cpuacct = cpuacct
        self.memory = memory
        self.cpuset = cpuset
        self.parent = parent
    }

    /// cpu.shares for `units` (1 → 1024, so high:normal:low = 4096:2048:1024).
    public static func shares(_ units: Int) -> Int { max(2, units * 1024) }

    var hierarchies: [String] {
        var all = [cpu]
        if cpuacct != cpu { all.append(cpuacct) }
        if memory != cpu { all.append(memory) }
        if let cpuset, cpuset != cpu { all.append(cpuset) }
        return all
    }

    public func path(vm: String) -> String { "\(cpu)/\(parent)/\(vm)" }

    public func prepare(vm: String, limits: CgroupLimits) throws(ResourceError) {
        for h in hierarchies {
            try makeDirectory("\(h)/\(parent)")
            try makeDirectory("\(h)/\(parent)/\(vm)")
        }
        if let cpuset {
            // A new cpuset group starts empty and takes no tasks until cpus and mems are set.
            for dir in ["\(cpuset)/\(parent)", "\(cpuset)/\(parent)/\(vm)"] {
                let up = (dir as NSString).deletingLastPathComponent
                for file in ["cpuset.cpus", "cpuset.mems"] where (SysFS.read("\(dir)/\(file)") ?? "").isEmpty {
                    try SysFS.write(SysFS.read("\(up)/\(file)") ?? "0", to: "\(dir)/\(file)")
                }
            }
        }
        try apply(vm: vm, limits: limits)
    }

    public func apply(vm: String, limits: CgroupLimits) throws(ResourceError) {
        let c = "\(cpu)/\(parent)/\(vm)"
        try SysFS.write(String(Self.shares(limits.weightUnits)), to: "\(c)/cpu.shares")
        try SysFS.write(String(CgroupLimits.periodMicroseconds), to: "\(c)/cpu.cfs_period_us")
        try SysFS.write(String(limits.quotaMicroseconds ?? -1), to: "\(c)/cpu.cfs_quota_us")
        let m = "\(memory)/\(parent)/\(vm)"
        // -1 is "unlimited" for memory.limit_in_bytes.
        try SysFS.write(limits.memoryLimit.map(String.init) ?? "-1", to: "\(m)/memory.limit_in_bytes")
        if let cpuset {
            let s = "\(cpuset)/\(parent)/\(vm)"
            let cpus = limits.cpuset ?? SysFS.read("\(cpuset)/\(parent)/cpuset.cpus") ?? "0"
            try SysFS.write(cpus, to: "\(s)/cpuset.cpus")
        }
    }

    public func procFiles(vm: String) -> [String] { hierarchies.map { "\($0)/\(parent)/\(vm)/cgroup.procs" } }

    public func usage(vm: String) -> CgroupUsage? {
        guard let ns = SysFS.readInt("\(cpuacct)/\(parent)/\(vm)/cpuacct.usage") else { return nil }
        let memoryBytes = SysFS.readInt("\(memory)/\(parent)/\(vm)/memory.usage_in_bytes") ?? 0
        return CgroupUsage(cpuNanoseconds: UInt64(max(0, ns)), memoryBytes: UInt64(max(0, memoryBytes)))
    }

    public func remove(vm: String) {
        for h in hierarchies { unsafe rmdir("\(h)/\(parent)/\(vm)") }
    }
}

func makeDirectory(_ path: String) throws(ResourceError) {
    if unsafe mkdir(path, 0o755) != 0 && errno != EEXIST {
        throw ResourceError(unsafe "cannot create \(path): \(String(cString: strerror(errno)))")
    }
}
