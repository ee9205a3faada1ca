/// What `skiff-jailer` was asked to do: the options before `--` and the monitor's
/// arguments after it.
public struct JailerOptions: Equatable, Sendable {
    /// The VM's id: 1 to 64 letters, digits and hyphens (it names directories and cgroups).
    public var id: String
    public var uid: UInt32
    public var gid: UInt32
    /// The monitor executable (default: `skiff-vmm` beside the jailer).
    public var execFile: String?
    /// Where jails are built: `<chrootBase>/<exec name>/<id>/root`.
    public var chrootBase: String = JailerOptions.defaultChrootBase
    /// A network namespace to join (e.g. /run/netns/NAME); nil keeps the host's.
    public var netns: String?
    /// The cgroup under which `<id>` is created, relative to each controller's root
    /// (default: the exec file's name).
    public var parentCgroup: String?
    /// `FILE=VALUE` settings written into the VM's cgroup before the monitor starts.
    public var cgroups: [CgroupSetting] = []
    public var cgroupVersion: CgroupVersionChoice = .automatic
    /// Existing cgroup directories (absolute, under a mounted hierarchy) the monitor joins
    /// instead of a group the jailer creates: a supervisor that prepared the VM's groups and
    /// their limits itself keeps them. The jailer neither creates nor removes them.
    public var joinCgroups: [String] = []
    /// RLIMIT_NOFILE for the monitor.
    public var openFiles: UInt64 = JailerOptions.defaultOpenFiles
    /// RLIMIT_FSIZE for the monitor (nil: inherited).
    public var fileSize: UInt64?
    /// Allows uid or gid 0.
    public var allowRoot = false
    /// Removes the jail directory when the monitor has exited.
    public var cleanup = false
    /// Everything after `--`.
    public var monitorArguments: [String] = []

    public static let defaultChrootBase = "/srv/jailer"
    /// Firecracker's default no-file limit.
    public static let defaultOpenFiles: UInt64 = 2048

    public init(id: String, uid: UInt32, gid: UInt32) {
        self.id = id
        self.uid = uid
        self.gid = gid
    }

    public static let usage = """
        usage: skiff-jailer --id ID --uid UID --gid GID [--exec-file PATH] [--chroot-base-dir DIR]
                            [--netns PATH] [--parent-cgroup PATH] [--cgroup FILE=VALUE]...
                            [--cgroup-version auto|1|2] [--join-cgroup DIR]...
                            [--resource-limit no-file=N|fsize=BYTES]...
                            [--allow-root] [--cleanup] -- MONITOR-OPTIONS...

        Builds <chroot-base-dir>/<exec name>/<ID>/root holding only what the VM needs, enters new
        mount, PID, IPC and UTS namespaces (and --netns), pivots into the jail, places the monitor in
        the cgroup <parent-cgroup>/<ID> (or the existing groups --join-cgroup names), drops to UID:GID with no capabilities and no_new_privs, and
        execs the monitor with MONITOR-OPTIONS, their paths rewritten to the jail:
          --kernel, --initrd, --module      linked (or copied) into /boot
          --disk                            bind-mounted at /disks/NAME (read-only with readonly)
          --restore, --incoming-base        bind-mounted read-only at /snapshots/NAME
          --api-socket, --console-socket,   a file NAME created in /run, which the host sees as
          --console-log, --vsock socket=,   <chroot-base-dir>/<exec name>/<ID>/root/run/NAME
          --incoming unix:, --serial file=
        The jailer waits for the monitor and exits with its status; SIGTERM, SIGINT and SIGHUP
        are passed on. See docs/jailer.md.
        """

    /// Parses the jailer's arguments (without the program name).
    public static func parse(_ arguments: [String]) throws(JailError) -> JailerOptions {
        var id: String?, uid: UInt32?, gid: UInt32?
        var execFile: String?, chrootBase: String?, netns: String?, parentCgroup: String?
        var cgroups: [CgroupSetting] = []
        var joins: [String] = []
        var version: CgroupVersionChoice?
        var openFiles: UInt64?, fileSize: UInt64?
        var allowRoot = false, cleanup = false
        var monitor: [String]?
        var i = 0
        func value(_ name: String, _ inline: String?) throws(JailError) -> String {
            if let inline { return inline }
            guard i + 1 < arguments.count else { throw .usage("\(name) needs a value") }
            i += 1
            return arguments[i]
        }
        func once<T>(_ slot: T?, _ name: String) throws(JailError) {
            if slot != nil { throw .usage("\(name) given twice") }
        }
        while i < arguments.count {
            let word = arguments[i]
            if word == "--" {
                monitor = Array(arguments[(i + 1)...])
                break
            }
            var name = word
            var inline: String?
            if word.hasPrefix("--"), let eq = word.firstIndex(of: "=") {
                name = String(word[..<eq])
                inline = String(word[word.index(after: eq)...])
            }
            switch name {
            case "--id":
                try once(id, name)
                id = try value(name, inline)
            case "--uid":
                try once(uid, name)
                uid = try parseID(try value(name, inline), name)
            case "--gid":
                try once(gid, name)
                gid = try parseID(try value(name, inline), name)
            case "--exec-file":
                try once(execFile, name)
                execFile = try value(name, inline)
            case "--chroot-base-dir":
                try once(chrootBase, name)
                chrootBase = try value(name, inline)
            case "--netns":
                try once(netns, name)
                netns = try value(name, inline)
            case "--parent-cgroup":
                try once(parentCgroup, name)
                parentCgroup = try value(name, inline)
            case "--cgroup":
                cgroups.append(try CgroupSetting.parse(try value(name, inline)))
            case "--join-cgroup":
                joins.append(try validateJoinedCgroup(try value(name, inline)))
            case "--cgroup-version":
                try once(version, name)
                let v = try value(name, inline)
                guard let c = CgroupVersionChoice(rawValue: v) else { throw .usage("--cgroup-version must be auto, 1 or 2 (got '\(v)')") }
                version = c
            case "--resource-limit":
                let v = try value(name, inline)
                let parts = v.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, let n = UInt64(parts[1]), parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    throw .usage("--resource-limit '\(v)': expected no-file=N or fsize=BYTES")
                }
                switch parts[0] {
                case "no-file":
                    try once(openFiles, "--resource-limit no-file")
                    guard n >= 64 else { throw .usage("--resource-limit no-file=\(n): the monitor needs at least 64 descriptors") }
                    openFiles = n
                case "fsize":
                    try once(fileSize, "--resource-limit fsize")
                    fileSize = n
                default:
                    throw .usage("--resource-limit '\(v)': unknown resource '\(parts[0])' (expected no-file or fsize)")
                }
            case "--allow-root" where inline == nil:
                allowRoot = true
            case "--cleanup" where inline == nil:
                cleanup = true
            default:
                throw .usage("unknown option '\(word)' (the monitor's options follow '--')")
            }
            i += 1
        }
        guard let id else { throw .usage("--id is required") }
        guard let uid else { throw .usage("--uid is required") }
        guard let gid else { throw .usage("--gid is required") }
        guard let monitor, !monitor.isEmpty else { throw .usage("the monitor's options follow '--' (e.g. -- --kernel PATH)") }
        try validateID(id)
        guard allowRoot || (uid != 0 && gid != 0) else {
            throw .usage("--uid 0 or --gid 0 would run the monitor with root's identity; pass --allow-root to allow it")
        }
        var options = JailerOptions(id: id, uid: uid, gid: gid)
        options.execFile = execFile
        if let chrootBase {
            guard chrootBase.hasPrefix("/"), !chrootBase.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
                throw .usage("--chroot-base-dir must be an absolute path without '.' or '..' (got '\(chrootBase)')")
            }
            options.chrootBase = chrootBase
        }
        if let netns {
            guard !netns.isEmpty else { throw .usage("--netns needs a path (e.g. /run/netns/NAME)") }
            options.netns = netns
        }
        if let parentCgroup { options.parentCgroup = try validateCgroupPath(parentCgroup) }
        if !joins.isEmpty {
            guard parentCgroup == nil, cgroups.isEmpty, version == nil else {
                throw .usage("--join-cgroup cannot be combined with --parent-cgroup, --cgroup or --cgroup-version (the joined groups are the caller's)")
            }
            guard Set(joins).count == joins.count else { throw .usage("--join-cgroup: the same group is given twice") }
            guard joins.count <= 16 else { throw .usage("--join-cgroup: at most 16 groups") }
            options.joinCgroups = joins
        }
        options.cgroups = cgroups
        options.cgroupVersion = version ?? .automatic
        options.openFiles = openFiles ?? defaultOpenFiles
        options.fileSize = fileSize
        options.allowRoot = allowRoot
        options.cleanup = cleanup
        options.monitorArguments = monitor
        return options
    }

    /// Ids name a directory and a cgroup: letters, digits and hyphens only, so '/', '.' and
    /// '..' can never appear (Firecracker's rule).
    public static func validateID(_ id: String) throws(JailError) {
        let ok = !id.isEmpty && id.utf8.count <= 64 && id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d
        }
        guard ok else { throw .usage("invalid --id '\(id)': use 1 to 64 letters, digits and hyphens") }
    }

    static func parseID(_ text: String, _ name: String) throws(JailError) -> UInt32 {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = UInt32(text), n != UInt32.max else {
            throw .usage("\(name) must be a number from 0 to 4294967294 (got '\(text)')")
        }
        return n
    }

    /// An absolute cgroup directory of plain components (checked against the mounted
    /// hierarchies when the jail is planned).
    static func validateJoinedCgroup(_ text: String) throws(JailError) -> String {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let ok = text.hasPrefix("/") && text.utf8.count <= 4096 && parts.count >= 2 && parts.allSatisfy { part in
            !part.isEmpty && part != "." && part != ".." && part.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f || c == 0x2e || c == 0x2c
            }
        }
        guard ok else { throw .usage("invalid --join-cgroup '\(text.prefix(200))': an absolute path of letters, digits, '.', ',', '_' and '-' components") }
        return text
    }

    /// A relative cgroup path of plain components.
    static func validateCgroupPath(_ text: String) throws(JailError) -> String {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        let ok = !text.isEmpty && !text.hasPrefix("/") && parts.allSatisfy { part in
            !part.isEmpty && part != "." && part != ".." && part.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x2d || c == 0x5f || c == 0x2e
            }
        }
        guard ok else { throw .usage("invalid --parent-cgroup '\(text)': a relative path of letters, digits, '.', '_' and '-' components") }
        return text
    }
}

/// Which cgroup hierarchy the VM is placed in.
public enum CgroupVersionChoice: String, Sendable {
    /// v2 when the unified hierarchy has every controller needed, else v1.
    case automatic = "auto"
    case v1 = "1"
    case v2 = "2"
}

/// One `--cgroup FILE=VALUE`: a controller file of the VM's cgroup and what to write into it.
public struct CgroupSetting: Equatable, Sendable {
    public var file: String
    public var value: String

    /// The controller the file belongs to (`memory` for `memory.limit_in_bytes`).
    public var controller: String { String(file.prefix { $0 != "." }) }

    static func parse(_ text: String) throws(JailError) -> CgroupSetting {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .usage("--cgroup '\(text)': expected FILE=VALUE (e.g. cpu.shares=512)") }
        let file = String(parts[0]), value = String(parts[1])
        let fileOK = file.utf8.allSatisfy { c in (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || c == 0x5f || c == 0x2e }
        guard fileOK, let dot = file.firstIndex(of: "."), dot != file.startIndex, file.index(after: dot) != file.endIndex,
              !file.hasPrefix("cgroup."), file != "tasks" else {
            throw .usage("--cgroup '\(text)': FILE must be a controller file such as cpu.shares or memory.max")
        }
        guard !value.isEmpty, !value.utf8.contains(0x0a), value.utf8.count <= 4096 else {
            throw .usage("--cgroup '\(text)': VALUE must be one non-empty line")
        }
        return CgroupSetting(file: file, value: value)
    }
}
