import HostResources
import Foundation
import HostProcess
import SkiffSpec
import SkiffStore

/// How the daemon runs monitors through `skiff-jailer` (resolved once at start).
struct JailSettings: Sendable, Equatable {
    /// The jailer executable.
    let jailerPath: String
    /// `--chroot-base-dir`.
    let chrootBase: String
    /// The monitor's file name (symbolic links resolved), the jail level under the base.
    let execName: String
    /// The uids (and gids) the daemon gives to VMs.
    let uids: ClosedRange<Int64>

    /// The jail directory of VM `name`.
    func directory(_ name: String) -> String { "\(chrootBase)/\(execName)/\(name)" }

    /// The jail settings `configuration` asks for, or nil for unconfined monitors. `on`
    /// without a usable jailer (not root, no executable, a bad base directory) is an error.
    static func resolve(_ configuration: DaemonConfiguration, jailerPath: String, monitorPath: String,
                        isRoot: Bool = geteuid() == 0) throws(DaemonError) -> JailSettings? {
        let mode = configuration.jailer
        if mode == .off { return nil }
        let executable = FileManager.default.isExecutableFile(atPath: jailerPath)
        guard isRoot, executable else {
            if mode == .auto { return nil }
            throw DaemonError(.invalidRequest, isRoot
                ? "--jailer on: the jailer \(jailerPath) is not an executable file (give --jailer-path)"
                : "--jailer on: the jailer needs root, and skiffd runs as uid \(geteuid())")
        }
        let base = configuration.resolvedChrootBase
        guard base.hasPrefix("/"), !base.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
            throw DaemonError(.invalidRequest, "the chroot base \(base) must be an absolute path without '.' or '..'")
        }
        let execName = URL(fileURLWithPath: monitorPath).resolvingSymlinksInPath().lastPathComponent
        // The shortest socket path a VM gets must fit; longer names are refused at create.
        let shortest = "\(base)/\(execName)/x/root/run/\(VMFiles.jailConsoleSocket)"
        guard shortest.utf8.count <= VMFiles.maxSocketPath else {
            throw DaemonError(.invalidRequest, "the chroot base \(base) is too long: a VM's socket \(shortest) would exceed \(VMFiles.maxSocketPath) bytes (give a shorter --chroot-base)")
        }
        let first = Int64(configuration.jailFirstUID)
        let count = Int64(configuration.jailUIDCount)
        guard first > 0, count > 0, first + count - 1 < Int64(UInt32.max) else {
            throw DaemonError(.invalidRequest, "jail uids \(first) + \(count) are out of range (1 to 4294967294)")
        }
        // The jailer wants the base and its exec level owned by root and writable only by root.
        try? FileManager.default.createDirectory(atPath: (base as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        for dir in [base, "\(base)/\(execName)"] {
            if unsafe mkdir(dir, 0o755) != 0 && errno != EEXIST {
                throw DaemonError(.internal, unsafe "cannot create the chroot base \(dir): \(String(cString: strerror(errno)))")
            }
            var st = stat()
            guard unsafe lstat(dir, &st) == 0, st.st_mode & 0o170000 == 0o040000 else {
                throw DaemonError(.invalidRequest, "the chroot base \(dir) is not a directory")
            }
            guard st.st_uid == 0, st.st_mode & 0o022 == 0 else {
                throw DaemonError(.invalidRequest, "the chroot base \(dir) must be owned by root and writable only by root")
            }
        }
        return JailSettings(jailerPath: jailerPath, chrootBase: base, execName: execName, uids: first...(first + count - 1))
    }
}

extension Supervisor {
    // MARK: Preparing a jailed start

    /// Gets a jailed start ready: the VM's uid, the previous run's jail retired (its console
    /// log archived), the VM's files and TAPs given to its uid. Returns the uid.
    func prepareJail(_ name: String, _ spec: VMSpec, _ jail: JailSettings) throws(DaemonError) -> UInt32 {
        let uid: Int64
        do {
            // Never a uid or gid the host already names (a user's files would be the VM's).
            let accounts = HostAccounts.read()
            uid = try store.assignJailUID(name, range: jail.uids) { candidate in
                guard let id = UInt32(exactly: candidate) else { return false }
                return !accounts.names(id)
            }
        } catch {
            throw DaemonError.from(error)
        }
        let id = UInt32(uid)
        let r = try record(name)
        if let previous = r.jailDirectory { retireJail(name, previous) }
        retireJail(name, jail.directory(name))
        let files = files(name, jailDirectory: nil)
        // Files the daemon made for the VM are the VM's.
        var own: [String] = []
        for (i, disk) in (spec.disks ?? []).enumerated() where disk.clone != nil { own.append(files.disk(i)) }
        if spec.cloudInit != nil { own.append(files.seed) }
        for path in own where unsafe chown(path, id, id) != 0 {
            throw DaemonError(.internal, unsafe "cannot give \(path) to uid \(id): \(String(cString: strerror(errno)))")
        }
        // Writable disks the user gave: to the VM's uid, their owner remembered (libvirt's
        // dynamic_ownership with remember_owner) and put back when the VM stops for good.
        for (i, disk) in (spec.disks ?? []).enumerated() where disk.clone == nil && disk.readonly != true {
            guard let given = disk.path else { continue }
            let path = URL(fileURLWithPath: given).resolvingSymlinksInPath().path
            var st = stat()
            guard unsafe stat(path, &st) == 0 else {
                throw DaemonError(.invalidRequest, unsafe "disks[\(i)].path \(given): \(String(cString: strerror(errno)))")
            }
            if st.st_uid == id && st.st_gid == id { continue }
            do {
                try store.rememberOwner(FileOwnerRecord(path: path, vm: name, uid: Int64(st.st_uid), gid: Int64(st.st_gid)))
            } catch {
                throw DaemonError.from(error)
            }
            guard unsafe chown(path, id, id) == 0 else {
                let e = errno
                try? store.forgetOwner(path)
                throw DaemonError(.internal, unsafe "cannot give disks[\(i)] \(path) to uid \(id): \(String(cString: strerror(e)))")
            }
        }
        // TAPs: to the VM's uid, their owner and group remembered (or that the daemon made
        // them) and put back (or the TAP deleted) when the VM stops for good.
        for nic in spec.nics ?? [] {
            let before = TapDevice.owner(nic.tap)
            do {
                try store.rememberTap(TapOwnerRecord(name: nic.tap, vm: name, uid: before?.uid, gid: before?.gid, created: before == nil))
            } catch {
                throw DaemonError.from(error)
            }
            do {
                if try TapDevice.setOwner(nic.tap, uid: id, gid: id) {
                    events.publish(vm: name, kind: "tap-created", "VM \(name): created the persistent TAP \(nic.tap) for uid \(id)")
                }
            } catch {
                if before != nil || !TapDevice.exists(nic.tap) { try? store.forgetTap(nic.tap) }
                throw DaemonError(.invalidRequest, "VM '\(name)': \(error.message)")
            }
        }
        return id
    }

    /// The jailer's arguments before `--` and the monitor's.
    func jailerArguments(_ name: String, uid: UInt32, jail: JailSettings, cgroupDirectories: [String]) -> [String] {
        var args = ["--id", name, "--uid", String(uid), "--gid", String(uid), "--exec-file", monitorPath, "--chroot-base-dir", jail.chrootBase]
        for dir in cgroupDirectories { args += ["--join-cgroup", dir] }
        return args
    }

    /// Removes a previous run's jail directory (no monitor may run in it), first appending its
    /// console log to the VM's archive so `skiff logs` keeps the earlier runs' output.
    func retireJail(_ name: String, _ directory: String) {
        guard FileManager.default.fileExists(atPath: directory) else { return }
        let run = "\(directory)/root/run"
        let archive = files(name, jailDirectory: nil).consoleArchive
        var bytes = Data()
        for path in [archive, "\(run)/console.log.1", "\(run)/console.log"] {
            bytes += Self.lastBytes(of: path, upTo: Self.consoleArchiveBytes)
        }
        if bytes.count > Self.consoleArchiveBytes { bytes = bytes.suffix(Self.consoleArchiveBytes) }
        // Written whole and synced before it replaces the old archive.
        let tmp = archive + ".partial"
        if FileManager.default.createFile(atPath: tmp, contents: nil), let out = FileHandle(forWritingAtPath: tmp) {
            let written = (try? out.write(contentsOf: bytes)) != nil && (try? out.synchronize()) != nil
            try? out.close()
            if written { unsafe rename(tmp, archive) } else { unsafe unlink(tmp) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The most console output kept of a jailed VM's earlier runs.
    static let consoleArchiveBytes = 4 << 20

    /// The last `count` bytes of the regular file at `path` (empty if it is missing or empty),
    /// read from there: a large log is not read whole.
    static func lastBytes(of path: String, upTo count: Int) -> Data {
        var st = stat()
        guard unsafe stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size > 0,
              let handle = FileHandle(forReadingAtPath: path) else { return Data() }
        defer { try? handle.close() }
        let start = UInt64(max(0, Int64(st.st_size) - Int64(count)))
        guard (try? handle.seek(toOffset: start)) != nil else { return Data() }
        return ((try? handle.read(upToCount: count)) ?? nil) ?? Data()
    }

    /// Puts back the owners of the files and TAPs given to VM `name`'s uid, and deletes the
    /// TAPs the daemon created for it. Nothing while its monitor runs.
    func releaseFiles(_ name: String) {
        if let r = try? store.vm(named: name), let identity = Self.identity(of: r), identity.isAlive() { return }
        for owner in (try? store.owners(of: name)) ?? [] {
            var st = stat()
            // A file that is gone or was replaced meanwhile is only forgotten.
            if unsafe stat(owner.path, &st) == 0, unsafe chown(owner.path, uid_t(owner.uid), gid_t(owner.gid)) != 0 {
                events.publish(vm: name, kind: "owner-not-restored", unsafe "VM \(name): cannot give \(owner.path) back to \(owner.uid):\(owner.gid): \(String(cString: strerror(errno)))")
                continue
            }
            try? store.forgetOwner(owner.path)
        }
        for tap in (try? store.taps(of: name)) ?? [] {
            do {
                if !TapDevice.exists(tap.name) {
                    // Gone meanwhile: only forgotten.
                } else if tap.created {
                    try TapDevice.delete(tap.name)
                    events.publish(vm: name, kind: "tap-deleted", "VM \(name): deleted the TAP \(tap.name) it had created")
                } else {
                    // A TAP that had no owner or group gets root's: the kernel takes no "none" back.
                    try TapDevice.restoreOwner(tap.name, uid: UInt32(clamping: tap.uid ?? 0), gid: UInt32(clamping: tap.gid ?? 0))
                }
            } catch {
                events.publish(vm: name, kind: "owner-not-restored", "VM \(name): \(error.message)")
                continue
            }
            try? store.forgetTap(tap.name)
        }
    }

    // MARK: Process control

    /// A jailed monitor's process, from its jail's pid file, when it is the jailer's child.
    static func jailedMonitor(jailDirectory: String, execName: String, jailer: ProcessIdentity) -> ProcessIdentity? {
        guard let data = SmallFile.read("\(jailDirectory)/\(execName).pid", limit: 64), data.count < 32,
              let pid = Int32(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
              let status = SmallFile.read("/proc/\(pid)/status") else { return nil }
        let parent = String(decoding: status, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("PPid:") }
            .flatMap { Int32($0.dropFirst(5).trimmingCharacters(in: .whitespaces)) }
        guard parent == jailer.pid else { return nil }
        return ProcessIdentity.of(pid: pid)
    }

    /// The monitor of record `r` (the jailed one, or the watched process itself).
    static func monitorIdentity(of r: VMRecord) -> ProcessIdentity? {
        if let pid = r.monitorPid, let start = r.monitorStartTime { return ProcessIdentity(pid: Int32(pid), startTime: UInt64(start)) }
        return identity(of: r)
    }

    /// SIGKILL for a VM's monitor: a jailed one directly (SIGKILL of its jailer would only
    /// give it its parent-death SIGTERM), else through the watched process's pidfd.
    func killMonitor(_ r: VMRecord, _ identity: ProcessIdentity) {
        if let directory = r.jailDirectory {
            let monitor = Self.monitorIdentity(of: r).flatMap { $0 == identity ? nil : $0 }
                ?? Self.jailedMonitor(jailDirectory: directory, execName: jail?.execName ?? "skiff-vmm", jailer: identity)
            if let monitor, monitor.send(SIGKILL) { return }
        }
        watcher.signal(identity, SIGKILL)
    }

    /// The monitor's status as the jailer reports it: 128 + N is signal N (docs/jailer.md).
    static func monitorStatus(_ status: ExitStatus, jailed: Bool) -> ExitStatus {
        guard jailed, case .exited(let s) = status, s > 128, s < 128 + 65 else { return status }
        return .signalled(s - 128)
    }

    /// A running skiff-jailer building VM `name`'s jail under `base` (found through /proc).
    static func findJailer(id name: String, base: String) -> ProcessIdentity? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for entry in entries {
            guard let pid = Int32(entry), let data = SmallFile.read("/proc/\(pid)/cmdline") else { continue }
            let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let first = args.first, first.hasSuffix("skiff-jailer"), let end = args.firstIndex(of: "--") else { continue }
            let own = Array(args[..<end])
            func value(_ option: String) -> String? { own.firstIndex(of: option).flatMap { $0 + 1 < own.count ? own[$0 + 1] : nil } }
            if value("--id") == name, value("--chroot-base-dir") == base { return ProcessIdentity.of(pid: pid) }
        }
        return nil
    }
}
