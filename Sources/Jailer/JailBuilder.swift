#if canImport(Glibc)
import Glibc
#endif
import CSkiffJail

/// Everything about one jail that the host side decides before anything is created.
public struct JailSpec: Sendable {
    public var options: JailerOptions
    /// The monitor executable on the host (symbolic links resolved).
    public var execHost: String
    /// Its name: the directory level under the chroot base, and its path in the jail (`/NAME`).
    public var execName: String
    /// `<chroot base>/<exec name>/<id>`.
    public var jailDirectory: String
    /// `<jailDirectory>/root`: what the monitor sees as `/`.
    public var root: String
    public var plan: JailPlan
    public var libraries: ELFDependencies
    public var cgroups: CgroupPlan

    public var execJail: String { "/" + execName }
    /// Where the jailer writes the monitor's pid (as the host sees it), beside the root.
    public var pidFile: String { jailDirectory + "/" + execName + ".pid" }

    /// Validates the options against the host and plans the jail; creates nothing.
    public static func make(_ options: JailerOptions, jailerPath: String) throws(JailError) -> JailSpec {
        let execGiven = options.execFile ?? ELFDependencies.directory(of: jailerPath) + "/skiff-vmm"
        let execHost: String, kind: HostFileKind
        switch HostFiles.lookup(execGiven) {
        case .found(let p, let k): (execHost, kind) = (p, k)
        case .failed(let e): throw .invalid("cannot read the monitor executable \(execGiven): \(JailError.text(errno: e))")
        }
        guard kind == .regular, unsafe access(execHost, X_OK) == 0 else { throw .invalid("the monitor executable \(execGiven) is not an executable file") }
        let execName = try MonitorArguments.fileName(of: execHost, option: "--exec-file")
        guard execName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { throw .invalid("the monitor executable's name \(execName) is not plain ASCII") }
        let jailDirectory = options.chrootBase + "/" + execName + "/" + options.id
        let root = jailDirectory + "/root"
        let plan = try MonitorArguments.plan(options.monitorArguments, hostRoot: root, lookup: HostFiles.lookup,
                                             backing: HostFiles.qcow2BackingName)
        let libraries = try ELFDependencies.resolve(executable: execHost, jailPath: "/" + execName)
        if let netns = options.netns {
            if case .failed(let e) = HostFiles.lookup(netns) {
                throw .invalid("cannot open the network namespace \(netns): \(JailError.text(errno: e))")
            }
        }
        guard let mountinfo = HostFiles.readSmallFile("/proc/self/mountinfo") else { throw .current("read /proc/self/mountinfo") }
        let mounts = CgroupPlan.mounts(mountinfo: mountinfo)
        let cgroups = options.joinCgroups.isEmpty
            ? try CgroupPlan.make(id: options.id, parent: options.parentCgroup ?? execName, settings: options.cgroups,
                                  choice: options.cgroupVersion, mounts: mounts, unifiedControllers: CgroupPlan.readUnifiedControllers)
            : try CgroupPlan.joining(options.joinCgroups, mounts: mounts)
        return JailSpec(options: options, execHost: execHost, execName: execName, jailDirectory: jailDirectory, root: root,
                        plan: plan, libraries: libraries, cgroups: cgroups)
    }
}

/// Builds the jail directory on the host (the parent side, before any namespace).
enum JailBuilder {
    /// The device nodes the jail holds, owned by the VM's uid and gid, mode 0600.
    static let devices: [(path: String, major: UInt32, minor: UInt32, required: Bool)] = [
        ("/dev/kvm", 10, 232, true),
        ("/dev/net/tun", 10, 200, false),
        ("/dev/urandom", 1, 9, false),
    ]

    /// Creates `<jailDirectory>` (it must not exist) and fills its root. On failure whatever
    /// was created is removed again.
    static func build(_ spec: JailSpec) throws(JailError) {
        let base = spec.options.chrootBase
        // Nobody else may be able to swap a level of the path for a symbolic link.
        for dir in [base, base + "/" + spec.execName] {
            try HostFiles.makeDirectories(dir)
            var st = stat()
            guard unsafe lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == 0, st.st_mode & 0o022 == 0 else {
                throw .invalid("\(dir) must be a directory owned by root and writable only by it (jails are built under it)")
            }
        }
        guard unsafe mkdir(spec.jailDirectory, 0o700) == 0 else {
            if errno == EEXIST {
                throw .invalid("the jail directory \(spec.jailDirectory) already exists (ids must be unique; remove it first)")
            }
            throw .current("create the jail directory \(spec.jailDirectory)")
        }
        do throws(JailError) {
            try fill(spec)
        } catch {
            HostFiles.removeTree(spec.jailDirectory)
            throw error
        }
    }

    private static func fill(_ spec: JailSpec) throws(JailError) {
        let root = spec.root
        let uid = spec.options.uid, gid = spec.options.gid
        guard unsafe chmod(spec.jailDirectory, 0o700) == 0 else { throw .current("chmod \(spec.jailDirectory)") }
        try HostFiles.makeDirectory(root, mode: 0o755)

        // The monitor and what its loader needs, at the paths the loader looks at.
        try HostFiles.linkOrCopy(spec.execHost, root + spec.execJail)
        var files: [ELFDependencies.File] = spec.libraries.libraries
        if let interp = spec.libraries.interpreter { files.insert(interp, at: 0) }
        for file in files {
            let target = root + file.jailPath
            if HostFiles.exists(target) { continue }
            try HostFiles.makeDirectories(ELFDependencies.directory(of: target))
            guard case .found(let real, .regular) = HostFiles.lookup(file.hostPath) else {
                throw .invalid("cannot read the library \(file.hostPath)")
            }
            try HostFiles.linkOrCopy(real, target)
        }

        // Device nodes: exactly these three.
        try HostFiles.makeDirectory(root + "/dev", mode: 0o755)
        try HostFiles.makeDirectory(root + "/dev/net", mode: 0o755)
        for device in devices {
            var major = device.major, minor = device.minor
            var st = stat()
            if unsafe stat(device.path, &st) == 0, (st.st_mode & S_IFMT) == S_IFCHR {
                major = skj_major(UInt64(st.st_rdev))
                minor = skj_minor(UInt64(st.st_rdev))
            } else if device.required {
                throw .invalid("\(device.path) is missing on the host")
            }
            let path = root + device.path
            unsafe try JailError.from(skj_mknod_char(path, 0o600, major, minor), "create the device node \(path)")
            guard unsafe chmod(path, 0o600) == 0 else { throw .current("chmod \(path)") }
            guard unsafe chown(path, uid, gid) == 0 else { throw .current("chown \(path)") }
        }

        // An empty mount point for the monitor's own procfs.
        try HostFiles.makeDirectory(root + "/proc", mode: 0o555)

        // Where the monitor creates its sockets and logs: its only writable directory.
        if !spec.plan.createdNames.isEmpty {
            try HostFiles.makeDirectory(root + JailPlan.runDirectory, mode: 0o700)
            guard unsafe chown(root + JailPlan.runDirectory, uid, gid) == 0 else { throw .current("chown \(root + JailPlan.runDirectory)") }
        }

        // Kernel files linked; disks and snapshot directories get placeholders for their bind mounts.
        for entry in spec.plan.entries {
            let target = root + entry.jailPath
            if HostFiles.exists(target) { throw .invalid("\(entry.role) \(entry.hostPath) would be \(entry.jailPath) in the jail, which already holds a file there") }
            try HostFiles.makeDirectories(ELFDependencies.directory(of: target))
            switch entry.placement {
            case .linkOrCopy:
                try HostFiles.linkOrCopy(entry.hostPath, target)
            case .bind:
                if entry.kind == .directory {
                    try HostFiles.makeDirectory(target, mode: 0o755)
                } else {
                    let fd = unsafe open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                    guard fd >= 0 else { throw .current("create the mount point \(target)") }
                    close(fd)
                }
            }
        }
    }
}
