#if canImport(Glibc)
import Glibc
#endif
import CSkiffJail

/// The forked child: PID 1 of the new PID namespace. It enters the remaining namespaces,
/// mounts the jail, pivots into it, drops every privilege and execs the monitor. A failure
/// goes to the parent as one line through the error pipe.
enum JailChild {
    static func run(_ spec: JailSpec, netFD: Int32, syncFD: Int32, errorFD: Int32) -> Never {
        // The parent's stop handlers must not take signals meant for the monitor (the parent
        // passes them on only once the monitor has set itself up).
        _ = skj_reset_signals()
        do throws(JailError) {
            // Wait until the parent has put this process in its cgroups (EOF: the parent gave up).
            var go: UInt8 = 0
            var n = 0
            repeat { n = unsafe read(syncFD, &go, 1) } while n < 0 && errno == EINTR
            guard n == 1 else { _exit(1) }
            close(syncFD)
            try enterJail(spec, netFD: netFD)
            try dropPrivileges(spec)
            try checkAccess(spec)
            try exec(spec, errorFD: errorFD)
        } catch {
            let bytes = Array(error.description.utf8)
            _ = unsafe bytes.withUnsafeBytes { unsafe write(errorFD, $0.baseAddress, $0.count) }
            _exit(1)
        }
    }

    static let dataFlags = SKJ_MS_NOSUID | SKJ_MS_NODEV | SKJ_MS_NOEXEC

    /// Namespaces, mounts and pivot_root.
    static func enterJail(_ spec: JailSpec, netFD: Int32) throws(JailError) {
        if netFD >= 0, let netns = spec.options.netns {
            try JailError.from(skj_setns(netFD, SKJ_CLONE_NEWNET), "join the network namespace \(netns)")
            close(netFD)
        }
        try JailError.from(skj_unshare(SKJ_CLONE_NEWNS | SKJ_CLONE_NEWIPC | SKJ_CLONE_NEWUTS), "create mount, IPC and UTS namespaces")
        // Nothing mounted from here on propagates back to the host, and pivot_root needs it.
        unsafe try JailError.from(skj_mount(nil, "/", nil, SKJ_MS_REC | SKJ_MS_PRIVATE, nil), "make the old root private")
        unsafe try JailError.from(skj_sethostname(spec.options.id), "set the host name")

        let root = spec.root
        // pivot_root needs the new root to be a mount point.
        unsafe try JailError.from(skj_mount(root, root, nil, SKJ_MS_BIND, nil), "bind-mount the jail root \(root)")
        for entry in spec.plan.entries {
            guard case .bind(let readOnly) = entry.placement else { continue }
            let target = root + entry.jailPath
            unsafe try JailError.from(skj_mount(entry.hostPath, target, nil, SKJ_MS_BIND, nil), "bind-mount \(entry.role) \(entry.hostPath) at \(entry.jailPath)")
            var flags = SKJ_MS_REMOUNT | SKJ_MS_BIND | SKJ_MS_NOSUID | SKJ_MS_NOEXEC
            if entry.kind != .blockDevice { flags |= SKJ_MS_NODEV }
            if readOnly { flags |= SKJ_MS_RDONLY }
            unsafe try JailError.from(skj_mount(nil, target, nil, flags, nil), "remount \(entry.role) \(entry.jailPath)\(readOnly ? " read-only" : "")")
        }
        if !spec.plan.createdNames.isEmpty {
            let run = root + JailPlan.runDirectory
            unsafe try JailError.from(skj_mount(run, run, nil, SKJ_MS_BIND, nil), "bind-mount \(JailPlan.runDirectory)")
            unsafe try JailError.from(skj_mount(nil, run, nil, SKJ_MS_REMOUNT | SKJ_MS_BIND | dataFlags, nil), "remount \(JailPlan.runDirectory)")
        }
        // A procfs of this PID namespace, with only the process directories.
        var r = unsafe skj_mount("proc", root + "/proc", "proc", dataFlags, "subset=pid")
        if r == -EINVAL { r = unsafe skj_mount("proc", root + "/proc", "proc", dataFlags, nil) }  // kernels before 5.8
        try JailError.from(r, "mount proc in the jail")
        // The root itself read-only: the monitor writes only in /run and to its disks.
        unsafe try JailError.from(skj_mount(nil, root, nil, SKJ_MS_REMOUNT | SKJ_MS_BIND | SKJ_MS_RDONLY | SKJ_MS_NOSUID, nil), "remount the jail root read-only")

        guard unsafe chdir(root) == 0 else { throw .current("enter \(root)") }
        // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves the jail.
        unsafe try JailError.from(skj_pivot_root(".", "."), "pivot_root into \(root)")
        unsafe try JailError.from(skj_umount_detach("."), "unmount the old root")
        guard unsafe chdir("/") == 0 else { throw .current("chdir /") }
    }

    /// rlimits, the capability bounding set, no_new_privs, uid and gid, the remaining capability sets.
    static func dropPrivileges(_ spec: JailSpec) throws(JailError) {
        let options = spec.options
        var limit = rlimit(rlim_cur: rlim_t(options.openFiles), rlim_max: rlim_t(options.openFiles))
        guard unsafe setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw .current("set the open-file limit to \(options.openFiles)") }
        if let size = options.fileSize {
            var l = rlimit(rlim_cur: rlim_t(size), rlim_max: rlim_t(size))
            guard unsafe setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &l) == 0 else { throw .current("set the file-size limit to \(size)") }
        }
        // Needs CAP_SETPCAP, so before the uid changes.
        let dropped = skj_drop_bounding_set()
        try JailError.from(dropped, "drop the capability bounding set")
        try JailError.from(skj_set_no_new_privs(), "set no_new_privs")
        try JailError.from(skj_clear_groups(), "clear the supplementary groups")
        try JailError.from(skj_setresgid(options.gid), "set gid \(options.gid)")
        try JailError.from(skj_setresuid(options.uid), "set uid \(options.uid)")
        // A uid change from 0 clears the permitted and effective sets, not the inheritable one.
        try JailError.from(skj_clear_capabilities(), "clear the capability sets")
        guard skj_capabilities_nonempty() == 0, skj_bounding_set_nonempty() == 0 else {
            throw .invalid("capabilities remain after dropping them")
        }
        // Cleared by the uid change, so set afterwards: the VM stops cleanly if the jailer dies.
        try JailError.from(skj_set_parent_death_signal(SIGTERM), "set the parent-death signal")
    }

    /// The VM's files as its uid sees them, so a permission problem names the host file.
    static func checkAccess(_ spec: JailSpec) throws(JailError) {
        let uid = spec.options.uid
        for entry in spec.plan.entries {
            var mode = R_OK
            if entry.writable { mode |= W_OK }
            if entry.kind == .directory { mode |= X_OK }
            guard unsafe access(entry.jailPath, mode) == 0 else {
                throw .invalid("uid \(uid) cannot \(entry.writable ? "read and write" : "read") \(entry.role) \(entry.hostPath): \(JailError.text(errno: errno))")
            }
        }
        guard unsafe access("/dev/kvm", R_OK | W_OK) == 0 else { throw .current("uid \(uid) cannot open /dev/kvm in the jail") }
    }

    static func exec(_ spec: JailSpec, errorFD: Int32) throws(JailError) -> Never {
        var environment: [String] = []
        if var p = unsafe Optional(environ) {
            while let entry = unsafe p.pointee {
                let s = unsafe String(cString: entry)
                // The monitor's own settings (log format and level, start trace) and nothing else.
                if s.hasPrefix("SKIFF_") { environment.append(s) }
                unsafe p = unsafe p.advanced(by: 1)
            }
        }
        if !spec.libraries.extraSearchPath.isEmpty {
            environment.append("LD_LIBRARY_PATH=" + spec.libraries.extraSearchPath.joined(separator: ":"))
        }
        try JailError.from(skj_reset_signals(), "reset signal handlers")
        try JailError.from(skj_close_from(3, errorFD), "close inherited descriptors")
        let argv = [spec.execJail] + spec.plan.arguments
        let e = unsafe withCStrings(argv) { args in
            unsafe withCStrings(environment) { env in
                unsafe execve(spec.execJail, args, env)
                return errno
            }
        }
        throw .system(step: "exec \(spec.execJail) in the jail", errno: e)
    }

    /// A NULL-terminated array of C strings for `body`.
    static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        var pointers = unsafe strings.map { unsafe strdup($0) }
        unsafe pointers.append(nil)
        defer { for unsafe p in unsafe pointers { unsafe free(p) } }
        return unsafe body(pointers)
    }
}
