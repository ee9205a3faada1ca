import OptionFields
/// What the jail holds for one VM and the monitor arguments that name it, derived from the
/// monitor options after `--`.
public struct JailPlan: Equatable, Sendable {
    /// How a host file or directory appears in the jail.
    public enum Placement: Equatable, Sendable {
        /// A hard link (the same inode, page cache shared between VMs), or a copy when the
        /// jail is on another filesystem. For files the monitor only reads.
        case linkOrCopy
        /// A bind mount in the monitor's mount namespace over an empty placeholder: writes
        /// reach the original, nothing is copied, any filesystem works.
        case bind(readOnly: Bool)
    }

    public struct Entry: Equatable, Sendable {
        /// What the file is to the VM ("kernel", "disk", ...), for messages.
        public var role: String
        /// Absolute host path with symbolic links resolved.
        public var hostPath: String
        /// Absolute path inside the jail.
        public var jailPath: String
        public var kind: HostFileKind
        public var placement: Placement
        /// The monitor writes it (a read-write disk).
        public var writable: Bool
    }

    public var entries: [Entry] = []
    /// Names of files the monitor creates in /run (sockets, console logs).
    public var createdNames: [String] = []
    /// The monitor's arguments with every path replaced by its place in the jail.
    public var arguments: [String] = []

    /// The directory inside the jail where the monitor creates its sockets and logs.
    public static let runDirectory = "/run"
}

/// What a host path is.
public enum HostFileKind: Equatable, Sendable {
    case regular, directory, blockDevice, other
}

/// A host path looked up: its resolved absolute path and kind, or the errno of the failure.
public enum HostLookup: Equatable, Sendable {
    case found(path: String, kind: HostFileKind)
    case failed(errno: Int32)
}

/// The monitor options the jailer understands, and how each one's value is placed.
///
/// Every option of `skiff-vmm` must be listed: an unknown one is refused rather than passed
/// on, because the jailer cannot tell whether its value names a host file
/// (`JailerTests` compares this table with the monitor's own option list).
public enum MonitorArguments {
    enum Kind: Equatable {
        /// No value.
        case flag
        /// A value that names no file.
        case value
        /// A file the monitor reads at boot: linked into /boot.
        case bootFile(role: String)
        /// `--module 'PATH ARGS'`.
        case module
        /// `--disk PATH[,options]`: bind-mounted at /disks.
        case disk
        /// A snapshot directory: bind-mounted read-only at /snapshots.
        case snapshotDirectory(role: String)
        /// A file the monitor creates: a name in /run.
        case createdFile
        /// `--vsock cid=N,socket=PATH`: the socket is created in /run.
        case vsock
        /// `--incoming tcp://...|unix:PATH`: a unix socket is created in /run.
        case incoming
        /// `--serial stdio|none|file=NAME`: the file is created in /run.
        case serial
    }

    static let options: [String: Kind] = [
        "--kernel": .bootFile(role: "kernel"),
        "--initrd": .bootFile(role: "initrd"),
        "--module": .module,
        "--restore": .snapshotDirectory(role: "snapshot directory"),
        "--incoming": .incoming,
        "--incoming-base": .snapshotDirectory(role: "incoming base snapshot"),
        "--kernel-format": .value,
        "--cmdline": .value,
        "--memory": .value,
        "--cpus": .value,
        "--cpu-template": .value,
        "--on-reboot": .value,
        "--emulation-assist": .value,
        "--rng": .flag,
        "--balloon": .flag,
        "--balloon-deflate-on-oom": .flag,
        "--balloon-free-page-reporting": .flag,
        "--console": .value,
        "--api-socket": .createdFile,
        "--disk": .disk,
        "--net": .value,
        "--vsock": .vsock,
        "--verbose": .flag,
        "--console-log": .createdFile,
        "--console-log-size": .value,
        "--console-socket": .createdFile,
        "--serial": .serial,
        "--ksm": .value,
        "--seccomp": .value,
        "--version": .flag,
        "--help": .flag,
        "-h": .flag,
    ]

    /// The option names the jailer knows, with whether each takes a value (for the test that
    /// compares them with the monitor's).
    public static var knownOptions: [String: Bool] {
        options.mapValues { $0 != .flag }
    }

    /// The longest unix socket path (sun_path holds 108 bytes with the terminating NUL).
    static let socketPathLimit = 107

    /// Top-level names of the jail that a backing file's absolute path may not enter.
    static let reservedTopLevel: Set<String> = ["dev", "proc", "run"]

    /// The longest qcow2 backing chain followed (Storage's limit).
    static let maxBackingDepth = 32

    /// Plans the jail for `arguments`. `lookup` resolves host paths; `backing` reads a qcow2
    /// image's backing file name (nil: none); `hostRoot` is the jail's root as the host sees
    /// it (to check socket path lengths).
    public static func plan(_ arguments: [String], hostRoot: String, lookup: (String) -> HostLookup,
                            backing: (String) throws(JailError) -> String? = { _ in nil }) throws(JailError) -> JailPlan {
        var plan = JailPlan()
        var used: [String: String] = [:]  // jail path -> the option that put it there
        func claim(_ jailPath: String, _ option: String) throws(JailError) {
            if let other = used[jailPath] {
                throw .invalid("\(option) and \(other) both need \(jailPath) in the jail: give the files different names")
            }
            used[jailPath] = option
        }
        func place(_ role: String, _ host: String, directory: String, option: String, kinds: [HostFileKind],
                   placement: JailPlan.Placement, writable: Bool) throws(JailError) -> String {
            guard !host.isEmpty else { throw .usage("\(option) needs a path") }
            let resolved: String, kind: HostFileKind
            switch lookup(host) {
            case .failed(let e): throw .invalid("cannot read \(role) \(host): \(JailError.text(errno: e))")
            case .found(let p, let k): (resolved, kind) = (p, k)
            }
            guard kinds.contains(kind) else {
                throw .invalid("\(role) \(host) is not \(kinds.contains(.directory) ? "a directory" : "a regular file")")
            }
            // The name as given (a disk's default serial is its file name), else the resolved one.
            let name: String
            if let given = try? fileName(of: host, option: option) { name = given } else { name = try fileName(of: resolved, option: option) }
            let jailPath = directory + "/" + name
            try claim(jailPath, option)
            plan.entries.append(JailPlan.Entry(role: role, hostPath: resolved, jailPath: jailPath, kind: kind,
                                               placement: placement, writable: writable))
            return jailPath
        }
        /// A qcow2 disk's backing chain, each file bind-mounted read-only where the monitor will
        /// look for it: a relative name beside the image in the jail, an absolute one at the
        /// same path inside the jail.
        func placeBackingChain(given: String, host: String, jail: String) throws(JailError) {
            var (given, host, jail) = (given, host, jail)
            var seen: Set<String> = [host]
            for _ in 0..<maxBackingDepth {
                guard let name = try backing(host) else { return }
                guard !name.isEmpty, !name.utf8.contains(0) else { throw .invalid("disk \(given): malformed backing file name") }
                let hostBacking = name.hasPrefix("/") ? name : ELFDependencies.directory(of: given) + "/" + name
                let jailBacking = lexicallyNormalized(name.hasPrefix("/") ? name : ELFDependencies.directory(of: jail) + "/" + name)
                let top = jailBacking.split(separator: "/").first.map(String.init) ?? ""
                guard jailBacking != "/", !reservedTopLevel.contains(top) else {
                    throw .invalid("the backing file \(name) of \(given) would be \(jailBacking) in the jail, which the jail reserves")
                }
                let resolved: String
                switch lookup(hostBacking) {
                case .failed(let e): throw .invalid("cannot read backing file \(hostBacking) of \(given): \(JailError.text(errno: e))")
                case .found(let p, let kind):
                    guard kind == .regular || kind == .blockDevice else { throw .invalid("backing file \(hostBacking) of \(given) is not a regular file") }
                    resolved = p
                }
                guard !seen.contains(resolved) else { throw .invalid("the backing chain of \(given) loops back to \(hostBacking)") }
                seen.insert(resolved)
                try claim(jailBacking, "the backing file of \(given)")
                plan.entries.append(JailPlan.Entry(role: "backing file", hostPath: resolved, jailPath: jailBacking, kind: .regular,
                                                   placement: .bind(readOnly: true), writable: false))
                (given, host, jail) = (hostBacking, resolved, jailBacking)
            }
            throw .invalid("the backing chain of \(given) is deeper than \(maxBackingDepth)")
        }
        func created(_ name: String, option: String) throws(JailError) -> String {
            var n = name
            if n.hasPrefix(JailPlan.runDirectory + "/") { n.removeFirst(JailPlan.runDirectory.utf8.count + 1) }
            guard !n.isEmpty, n != ".", n != "..", !n.contains("/"), !n.utf8.contains(0) else {
                throw .usage("\(option) '\(name)' must be a file name: the monitor creates it in the jail's \(JailPlan.runDirectory) (\(hostRoot)\(JailPlan.runDirectory)/NAME on the host)")
            }
            let jailPath = JailPlan.runDirectory + "/" + n
            try claim(jailPath, option)
            let hostPath = hostRoot + jailPath
            guard hostPath.utf8.count <= socketPathLimit else {
                throw .invalid("\(option): the host path \(hostPath) is longer than \(socketPathLimit) bytes, too long for a unix socket (use a shorter --chroot-base-dir or --id)")
            }
            plan.createdNames.append(n)
            return jailPath
        }

        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let word = arguments[i]
            var name = word
            var inline: String?
            if word.hasPrefix("--"), let eq = word.firstIndex(of: "=") {
                name = String(word[..<eq])
                inline = String(word[word.index(after: eq)...])
            }
            guard let kind = options[name] else {
                if word.hasPrefix("-") {
                    throw .usage("unknown monitor option '\(name)': the jailer passes on only the options it knows, so that no host path escapes it")
                }
                throw .usage("unexpected monitor argument '\(word)'")
            }
            if kind == .flag {
                out.append(word)
                i += 1
                continue
            }
            let value: String
            if let inline {
                value = inline
            } else {
                guard i + 1 < arguments.count else { throw .usage("monitor option \(name) needs a value") }
                i += 1
                value = arguments[i]
            }
            i += 1
            let rewritten: String
            switch kind {
            case .flag, .value:
                rewritten = value
            case .bootFile(let role):
                rewritten = try place(role, value, directory: "/boot", option: name, kinds: [.regular], placement: .linkOrCopy, writable: false)
            case .module:
                let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                let path = try place("module", String(parts.first ?? ""), directory: "/boot", option: name, kinds: [.regular],
                                     placement: .linkOrCopy, writable: false)
                rewritten = parts.count > 1 ? path + " " + parts[1] : path
            case .disk:
                var fields = OptionFields.split(value)
                let readOnly = fields.dropFirst().contains { $0 == "readonly" || $0 == "readonly=on" }
                let given = fields[0]
                fields[0] = try place("disk", given, directory: "/disks", option: name, kinds: [.regular, .blockDevice],
                                      placement: .bind(readOnly: readOnly), writable: !readOnly)
                if fields.dropFirst().contains("format=qcow2"), let disk = plan.entries.last {
                    try placeBackingChain(given: given, host: disk.hostPath, jail: disk.jailPath)
                }
                rewritten = fields.map { $0.replacingOccurrences(",", with: ",,") }.joined(separator: ",")
            case .snapshotDirectory(let role):
                rewritten = try place(role, value, directory: "/snapshots", option: name, kinds: [.directory],
                                      placement: .bind(readOnly: true), writable: false)
            case .createdFile:
                rewritten = try created(value, option: name)
            case .vsock:
                var fields = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                guard let at = fields.firstIndex(where: { $0.hasPrefix("socket=") }) else {
                    throw .usage("--vsock '\(value)': socket= is needed (cid=N,socket=NAME)")
                }
                fields[at] = "socket=" + (try created(String(fields[at].dropFirst(7)), option: "--vsock socket="))
                rewritten = fields.joined(separator: ",")
            case .serial:
                if value.hasPrefix("file=") {
                    rewritten = "file=" + (try created(String(value.dropFirst(5)), option: "--serial file="))
                } else {
                    rewritten = value
                }
            case .incoming:
                if value.hasPrefix("unix:") {
                    rewritten = "unix:" + (try created(String(value.dropFirst(5)), option: "--incoming unix:"))
                } else {
                    rewritten = value
                }
            }
            out.append(name)
            out.append(rewritten)
        }
        plan.arguments = out
        return plan
    }

    /// The last component of a resolved path, checked to be a usable name.
    static func fileName(of path: String, option: String) throws(JailError) -> String {
        guard let last = path.split(separator: "/").last.map(String.init), last != ".", last != ".." else {
            throw .invalid("\(option) \(path): cannot place a file without a name")
        }
        return last
    }

    /// `.` and `..` applied to an absolute path without looking at the filesystem (the jail
    /// has no symbolic links); `..` at the root stays at the root, as the kernel resolves it.
    static func lexicallyNormalized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }
}

extension String {
    /// Foundation-free replacement of every occurrence of `target`.
    func replacingOccurrences(_ target: Character, with replacement: String) -> String {
        var result = ""
        for c in self {
            if c == target { result += replacement } else { result.append(c) }
        }
        return result
    }
}
