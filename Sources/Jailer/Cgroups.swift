#if canImport(Glibc)
import Glibc
#endif

/// The VM's cgroups: which hierarchy (v1 or v2, chosen at run time from /proc/self/mountinfo),
/// the directories `<controller root>/<parent>/<id>`, the settings to write, and placing the
/// monitor's process in them.
public struct CgroupPlan: Equatable, Sendable {
    public enum Version: Equatable, Sendable { case v1, v2 }

    /// One directory the VM gets: in v1 one per hierarchy (a hierarchy may hold several
    /// controllers), in v2 the single one.
    public struct Group: Equatable, Sendable {
        /// The hierarchy's mount point.
        public var root: String
        /// The controllers of this hierarchy the VM is placed under.
        public var controllers: [String]
        /// `<root>/<parent>/<id>`.
        public var path: String
        public var settings: [CgroupSetting]
    }

    public var version: Version
    public var parent: String
    public var groups: [Group]
    /// The groups exist already (`--join-cgroup`): they are joined, never created or removed.
    public var joinsExisting = false

    /// Controllers every VM is placed under when they exist (v1 names).
    public static let defaultV1 = ["cpu", "memory", "blkio"]
    /// v2: cpu and memory are required, io is used when the hierarchy offers it.
    public static let requiredV2 = ["cpu", "memory"]
    public static let optionalV2 = ["io"]

    /// A mounted cgroup hierarchy.
    public struct Mount: Equatable, Sendable {
        public var path: String
        public var isUnified: Bool
        /// v1: the controllers in the mount options; v2: empty (read from cgroup.controllers).
        public var options: [String]
    }

    /// The cgroup mounts listed in a /proc/self/mountinfo text, in order.
    public static func mounts(mountinfo: String) -> [Mount] {
        var result: [Mount] = []
        for line in mountinfo.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1, omittingEmptySubsequences: false)
            guard halves.count == 2 else { continue }
            let pre = halves[0].split(separator: " ")
            let post = halves[1].split(separator: " ")
            guard pre.count >= 5, post.count >= 3 else { continue }
            let path = unescape(String(pre[4]))
            switch post[0] {
            case "cgroup":
                result.append(Mount(path: path, isUnified: false, options: post[2].split(separator: ",").map(String.init)))
            case "cgroup2":
                result.append(Mount(path: path, isUnified: true, options: []))
            default:
                continue
            }
        }
        return result
    }

    /// mountinfo escapes space, tab, newline and backslash as octal.
    static func unescape(_ field: String) -> String {
        var bytes: [UInt8] = []
        let u = Array(field.utf8)
        var i = 0
        while i < u.count {
            if u[i] == 0x5c, i + 3 < u.count,
               let v = UInt8(String(decoding: u[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                bytes.append(v)
                i += 4
            } else {
                bytes.append(u[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Chooses the hierarchy and lays out the VM's groups. `unifiedControllers` reads a v2
    /// mount's root `cgroup.controllers`.
    public static func make(id: String, parent: String, settings: [CgroupSetting], choice: CgroupVersionChoice,
                            mounts: [Mount], unifiedControllers: (String) -> [String]?) throws(JailError) -> CgroupPlan {
        var named: [String] = []
        for s in settings where !named.contains(s.controller) { named.append(s.controller) }

        func v2() -> Result<CgroupPlan, JailError> {
            guard let unified = mounts.first(where: { $0.isUnified }) else {
                return .failure(.invalid("no cgroup v2 hierarchy is mounted (see /proc/self/mountinfo)"))
            }
            let available = unifiedControllers(unified.path) ?? []
            let missing = (requiredV2 + named).filter { !available.contains($0) }
            guard missing.isEmpty else {
                var unique: [String] = []
                for m in missing where !unique.contains(m) { unique.append(m) }
                return .failure(.invalid("the cgroup v2 hierarchy at \(unified.path) lacks the controllers \(unique.joined(separator: ", ")) (it has: \(available.isEmpty ? "none" : available.joined(separator: " ")))"))
            }
            var controllers = requiredV2
            for c in optionalV2 + named where available.contains(c) && !controllers.contains(c) { controllers.append(c) }
            let group = Group(root: unified.path, controllers: controllers, path: unified.path + "/" + parent + "/" + id, settings: settings)
            return .success(CgroupPlan(version: .v2, parent: parent, groups: [group]))
        }

        func v1() -> Result<CgroupPlan, JailError> {
            var groups: [Group] = []
            var missing: [String] = []
            var wanted: [String] = []
            for c in named + defaultV1 where !wanted.contains(c) { wanted.append(c) }
            for controller in wanted {
                guard let mount = mounts.first(where: { !$0.isUnified && $0.options.contains(controller) }) else {
                    if named.contains(controller) { missing.append(controller) }
                    continue
                }
                if let i = groups.firstIndex(where: { $0.root == mount.path }) {
                    groups[i].controllers.append(controller)
                } else {
                    groups.append(Group(root: mount.path, controllers: [controller], path: mount.path + "/" + parent + "/" + id, settings: []))
                }
            }
            guard missing.isEmpty else {
                return .failure(.invalid("no cgroup v1 hierarchy is mounted for \(missing.joined(separator: ", "))"))
            }
            guard !groups.isEmpty else {
                return .failure(.invalid("no cgroup v1 hierarchy for cpu, memory or blkio is mounted"))
            }
            for s in settings {
                if let i = groups.firstIndex(where: { $0.controllers.contains(s.controller) }) { groups[i].settings.append(s) }
            }
            return .success(CgroupPlan(version: .v1, parent: parent, groups: groups))
        }

        let result: Result<CgroupPlan, JailError>
        switch choice {
        case .v1: result = v1()
        case .v2: result = v2()
        case .automatic:
            if case .success(let plan) = v2() { result = .success(plan) } else {
                switch v1() {
                case .success(let plan): result = .success(plan)
                case .failure(let e):
                    result = .failure(.invalid("no usable cgroup hierarchy: \(e.description); and v2: \(v2().failureText)"))
                }
            }
        }
        switch result {
        case .success(let plan): return plan
        case .failure(let e): throw e
        }
    }

    /// A plan that joins existing groups: each must be a directory below a mounted cgroup
    /// hierarchy (v1 or v2, not mixed).
    public static func joining(_ directories: [String], mounts: [Mount]) throws(JailError) -> CgroupPlan {
        var groups: [Group] = []
        var unified: Bool?
        for dir in directories {
            // The longest mount point that holds the directory.
            guard let mount = mounts.filter({ dir.hasPrefix($0.path + "/") }).max(by: { $0.path.utf8.count < $1.path.utf8.count }) else {
                throw .invalid("--join-cgroup \(dir) is not below a mounted cgroup hierarchy (see /proc/self/mountinfo)")
            }
            if let unified, unified != mount.isUnified { throw .invalid("--join-cgroup: groups of cgroup v1 and v2 cannot be mixed") }
            unified = mount.isUnified
            groups.append(Group(root: mount.path, controllers: mount.options.filter { $0 != "rw" && $0 != "ro" }, path: dir, settings: []))
        }
        var plan = CgroupPlan(version: unified == true ? .v2 : .v1, parent: "", groups: groups)
        plan.joinsExisting = true
        return plan
    }

    /// Creates the groups (parents as needed, the VM's own must not exist) and writes the
    /// settings. Returns the directories it created for the VM, for `remove`; on failure it
    /// has removed them already. Joined groups are only checked: they must exist.
    public func create() throws(JailError) -> [String] {
        if joinsExisting {
            for group in groups where unsafe access(group.path + "/cgroup.procs", W_OK) != 0 {
                throw JailError.invalid("--join-cgroup \(group.path) is not an existing cgroup (no writable cgroup.procs: \(JailError.text(errno: errno)))")
            }
            return []
        }
        var created: [String] = []
        do throws(JailError) {
            for group in groups {
                if version == .v2 { try enableControllers(group) } else { try HostFiles.makeDirectories(group.root + "/" + parent) }
                guard unsafe mkdir(group.path, 0o755) == 0 else {
                    if errno == EEXIST { throw JailError.invalid("cgroup \(group.path) already exists (ids must be unique; remove it with rmdir)") }
                    throw JailError.current("create cgroup \(group.path)")
                }
                created.append(group.path)
                if version == .v1 && group.controllers.contains("cpuset") { try inheritCpuset(group.root, relative: parent + "/" + name(of: group)) }
                for s in group.settings {
                    do throws(JailError) {
                        try HostFiles.write(s.value, to: group.path + "/" + s.file)
                    } catch {
                        if case .system(_, let e) = error {
                            throw JailError.system(step: "cgroup setting \(s.file)=\(s.value) in \(group.path)", errno: e)
                        }
                        throw error
                    }
                }
            }
        } catch {
            Self.remove(created)
            throw error
        }
        return created
    }

    private func name(of group: Group) -> String {
        String(group.path.split(separator: "/").last ?? "")
    }

    /// Moves the process `pid` (as the host sees it) into every group.
    public func place(pid: Int32) throws(JailError) {
        for group in groups {
            do throws(JailError) {
                try HostFiles.write("\(pid)\n", to: group.path + "/cgroup.procs")
            } catch {
                if case .system(_, let e) = error { throw JailError.system(step: "place the monitor in cgroup \(group.path)", errno: e) }
                throw error
            }
        }
    }

    /// Removes the VM's groups (they must be empty: call after the monitor has exited).
    public static func remove(_ directories: [String]) {
        for d in directories.reversed() {
            var tries = 0
            // A reaped process can linger in cgroup.procs for a moment: EBUSY, retry briefly.
            while unsafe rmdir(d) != 0 && errno == EBUSY && tries < 100 {
                usleep(10_000)
                tries += 1
            }
        }
    }

    /// v2: each level from the root down to the parent must enable the controllers for its children.
    private func enableControllers(_ group: Group) throws(JailError) {
        var level = group.root
        var levels = [level]
        for part in parent.split(separator: "/") {
            level += "/" + part
            levels.append(level)
        }
        for (i, dir) in levels.enumerated() {
            if i > 0 {
                if unsafe mkdir(dir, 0o755) != 0 && errno != EEXIST { throw .current("create cgroup \(dir)") }
            }
            let enabled = (HostFiles.readSmallFile(dir + "/cgroup.subtree_control") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
            for c in group.controllers where !enabled.contains(c) {
                do throws(JailError) {
                    try HostFiles.write("+\(c)", to: dir + "/cgroup.subtree_control")
                } catch {
                    if case .system(_, let e) = error { throw JailError.system(step: "enable the \(c) controller in \(dir)/cgroup.subtree_control", errno: e) }
                    throw error
                }
            }
        }
    }

    /// v1 cpuset: a new group starts with no CPUs and no memory nodes, and a process cannot
    /// join it; copy them from the parent when empty.
    private func inheritCpuset(_ root: String, relative: String) throws(JailError) {
        var path = root
        for part in relative.split(separator: "/") {
            let parentPath = path
            path += "/" + part
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let current = (HostFiles.readSmallFile(path + "/" + file) ?? "").split(separator: "\n").first.map(String.init) ?? ""
                guard current.isEmpty else { continue }
                let inherited = (HostFiles.readSmallFile(parentPath + "/" + file) ?? "").split(separator: "\n").first.map(String.init) ?? ""
                try HostFiles.write(inherited, to: path + "/" + file)
            }
        }
    }

    /// The controllers a v2 hierarchy's root offers.
    public static func readUnifiedControllers(_ root: String) -> [String]? {
        HostFiles.readSmallFile(root + "/cgroup.controllers")?.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }
}

extension Result where Failure == JailError {
    var failureText: String {
        if case .failure(let e) = self { return e.description }
        return "usable"
    }
}
