import CloudInit
import ControlProtocol
import Foundation
import HostProcess
import SkiffSpec
import SkiffStore

/// Where a VM migrating in is awaited: `tcp://HOST:PORT` (port 0: a free port the daemon picks)
/// or `unix:PATH` (absolute; it must not exist).
enum IncomingListen: Equatable, Sendable {
    case tcp(host: String, port: UInt16)
    case unix(path: String)

    static func parse(_ text: String) throws(DaemonError) -> IncomingListen {
        let shown = text.prefix(200)
        guard text.utf8.count <= 512 else { throw DaemonError(.invalidRequest, "listen is longer than 512 bytes") }
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/"), path.utf8.count <= VMFiles.maxSocketPath, !path.contains("\0"),
                  !path.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }), !path.hasSuffix("/") else {
                throw DaemonError(.invalidRequest, "listen unix:PATH needs an absolute path of at most \(VMFiles.maxSocketPath) bytes, not '\(shown)'")
            }
            return .unix(path: path)
        }
        guard text.hasPrefix("tcp://") else {
            throw DaemonError(.invalidRequest, "listen must be tcp://HOST:PORT or unix:PATH, not '\(shown)'")
        }
        let rest = text.dropFirst(6)
        guard let colon = rest.lastIndex(of: ":") else { throw DaemonError(.invalidRequest, "listen '\(shown)' has no port") }
        let portText = rest[rest.index(after: colon)...]
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
              let port = UInt16(portText) else {
            throw DaemonError(.invalidRequest, "listen '\(shown)': the port must be 0 to 65535")
        }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:")
        guard !host.isEmpty, host.utf8.count <= 255, host.allSatisfy({ allowed.contains($0) }) else {
            throw DaemonError(.invalidRequest, "listen '\(shown)': the host must be a name or an address")
        }
        return .tcp(host: host, port: port)
    }

    var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        }
    }
}

/// A VM waiting for a migration stream, and where its monitor listens.
public struct IncomingVM: Sendable {
    public var record: VMRecord
    public var address: String
}

extension Supervisor {
    /// Creates VM `spec.name` with a monitor waiting for it to migrate in on `listen` (the target
    /// side of a move). The VM is admitted like a created one and recorded `incoming`; this
    /// returns once the monitor listens. When the stream completes the VM is `running` (or
    /// `paused`) with its spec's restart policy; if the monitor exits first or nothing has
    /// arrived within `timeout` seconds, the monitor is stopped and the VM removed (event
    /// `incoming-failed`). With `copyDisks` each path disk is created by the stream under the
    /// VM's directory (the recorded spec names the new path); otherwise the disks are shared
    /// storage at the paths the spec names. Disks cloned by the source daemon cannot move.
    public func incoming(_ requested: VMSpec, listen: String, timeout: Double, copyDisks: Bool) async throws(DaemonError) -> IncomingVM {
        var spec = requested
        do { try spec.validate() } catch { throw DaemonError(.invalidRequest, error.message) }
        let name = spec.name
        let files = files(name)
        try files.checkSocketPaths()
        if let i = (spec.disks ?? []).firstIndex(where: { $0.clone != nil }) {
            throw DaemonError(.unsupported, "disks[\(i)] is a clone the source daemon made: a VM with cloned disks cannot migrate between daemons")
        }
        if copyDisks {
            var disks = spec.disks ?? []
            for i in disks.indices {
                disks[i].path = "\(files.directory)/disk\(i).\((disks[i].format ?? .raw).rawValue)"
            }
            if !disks.isEmpty { spec.disks = disks }
            var check = spec
            check.disks = nil
            try checkFilesExist(check)
        } else {
            try checkFilesExist(spec)
        }
        var endpoint = try IncomingListen.parse(listen)
        if jail != nil {
            // A jailed monitor binds in its jail's network view and writes only its jail's /run.
            if case .unix = endpoint {
                throw DaemonError(.invalidRequest, "monitors run jailed here and cannot listen on a host unix socket: listen on tcp://HOST:PORT")
            }
            if copyDisks {
                throw DaemonError(.unsupported, "monitors run jailed here: a jailed monitor cannot create disks on the host, so copyDisks needs a target daemon run with --jailer off (or shared storage)")
            }
        }
        switch endpoint {
        case .unix(let path):
            var st = stat()
            if unsafe lstat(path, &st) == 0 { throw DaemonError(.conflict, "\(path) already exists") }
            let parent = (path as NSString).deletingLastPathComponent
            var isDirectory: ObjCBool = false
            guard unsafe FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw DaemonError(.invalidRequest, "the directory of \(path) does not exist")
            }
        case .tcp(let host, let port) where port == 0:
            endpoint = .tcp(host: host, port: try Self.freePort(host: host))
        case .tcp:
            break
        }
        let address = endpoint.description
        let listener = endpoint
        let recorded = spec
        let result = try await serialized(name) { () async throws -> IncomingVM in
            if (try? self.store.vm(named: name)) != nil {
                throw DaemonError(.conflict, "a VM named '\(name)' already exists")
            }
            try self.admit(recorded)
            let fm = FileManager.default
            if fm.fileExists(atPath: files.directory) { try? fm.removeItem(atPath: files.directory) }
            do {
                try fm.createDirectory(atPath: files.directory, withIntermediateDirectories: true)
            } catch {
                throw DaemonError(.internal, "cannot create \(files.directory): \(error.localizedDescription)")
            }
            let errorOffset = fileSize(files.monitorErrors)
            do {
                // The stream brings a copied seed with the other disks.
                if let seed = recorded.cloudInit, !copyDisks {
                    do {
                        try CloudInitSeed.build(at: files.seed, instanceID: name, userData: seed.userData,
                                                metaData: seed.metaData, networkConfig: seed.networkConfig)
                    } catch {
                        throw DaemonError(.internal, "\(error)")
                    }
                }
                do {
                    try self.store.insertVM(VMRecord(name: name, spec: Self.encode(recorded)))
                } catch {
                    throw DaemonError.from(error)
                }
                if case .unix(let path) = listener { self.incomingListeners.withLock { $0[name] = path } }
                let record = try await self.startLocked(name, reason: "incoming", incoming: address)
                guard let identity = Self.identity(of: record) else { throw DaemonError(.internal, "the monitor of '\(name)' has no recorded pid") }
                // Listening once the monitor says so (its log), or failed if it exits first.
                let deadline = Date().addingTimeInterval(self.configuration.startTimeout)
                while !Self.monitorListens(files.monitorErrors, from: errorOffset) {
                    if let status = self.controller(name).exit(of: identity) ?? (identity.isAlive() ? nil : ExitStatus.unknown) {
                        let stderr = tail(files.monitorErrors, from: errorOffset)
                        throw DaemonError(.monitorFailed, "the monitor of '\(name)' \(status) before it listened\(stderr.isEmpty ? "" : ": \(stderr)")")
                    }
                    if Date() > deadline {
                        throw DaemonError(.monitorFailed, "the monitor of '\(name)' did not listen on \(address) within \(Int(self.configuration.startTimeout)) s")
                    }
                    try? await Task.sleep(for: .milliseconds(10))
                }
                self.events.publish(vm: name, kind: "incoming", "VM \(name) waits for a migration on \(address) (\(identity))")
                return IncomingVM(record: try self.record(name), address: address)
            } catch {
                await self.discardIncoming(name, why: "\(error)")
                throw DaemonError.from(error)
            }
        }
        if let identity = Self.identity(of: result.record) {
            Task { await self.awaitIncoming(name, identity, deadline: Date().addingTimeInterval(timeout)) }
        }
        return result
    }

    /// Follows a VM migrating in until its monitor's control socket answers (the VM arrived:
    /// `running` or `paused` from now on), the monitor exits (handled by `monitorExited`), or
    /// the deadline passes (the monitor is killed; its exit removes the VM).
    func awaitIncoming(_ name: String, _ identity: ProcessIdentity, deadline: Date) async {
        let c = controller(name)
        let socket = files(name).apiSocket
        while true {
            guard let r = try? store.vm(named: name), Self.identity(of: r) == identity, r.actualState == "incoming" else { return }
            if c.exit(of: identity) != nil || !identity.isAlive() { return }
            if let reply = try? await control(socket, .status, timeout: 1), case .status(let s) = reply {
                let state = s.state == .paused ? "paused" : "running"
                try? await serialized(name) { () async throws in
                    guard let r = try? self.store.vm(named: name), Self.identity(of: r) == identity, r.actualState == "incoming" else { return }
                    _ = try? self.store.updateVM(name) { $0.actualState = state; $0.desiredState = state; $0.startedAt = Date() }
                    _ = self.incomingListeners.withLock { $0.removeValue(forKey: name) }
                    self.events.publish(vm: name, kind: "migrated-in", "VM \(name) migrated in and is \(state) (\(identity))")
                }
                return
            }
            if Date() > deadline {
                events.publish(vm: name, kind: "incoming-timeout", "VM \(name): no migration completed in time: stopping its monitor")
                killMonitor(r, identity)
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Removes a VM that did not migrate in: its monitor (killed if alive), record, cgroup,
    /// directory and sockets. The caller holds the VM's queue.
    func discardIncoming(_ name: String, why: String) async {
        let record = try? store.vm(named: name)
        if let r = record, let identity = Self.identity(of: r), identity.isAlive() {
            // A jailed monitor directly (its jailer would only pass on SIGTERM), then its jailer.
            if r.jailDirectory != nil { killMonitor(r, identity) }
            if watcher.signal(identity, SIGKILL) {
                _ = await controller(name).waitForExit(of: identity, timeout: 10)
            } else {
                // Not watched (a previous daemon started it): signalled by pid, its start time checked just above.
                _ = Glibc.kill(identity.pid, SIGKILL)
                let deadline = Date().addingTimeInterval(10)
                while identity.isAlive(), Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            }
            controller(name).forget(identity)
        }
        let files = files(name)
        releaseFiles(name)
        if let directory = record?.jailDirectory { try? FileManager.default.removeItem(atPath: directory) }
        _ = try? store.deleteVM(name)
        cgroups?.remove(vm: name)
        try? FileManager.default.removeItem(atPath: files.directory)
        for s in [files.apiSocket, files.consoleSocket, files.vsockSocket] { unsafe unlink(s) }
        if let path = incomingListeners.withLock({ $0.removeValue(forKey: name) }) { unsafe unlink(path) }
        events.publish(vm: name, kind: "incoming-failed", "VM \(name) did not migrate in and was removed: \(why.prefix(2000))")
    }

    /// Whether the monitor's log (from `offset`) says it is waiting for a migrating VM.
    static func monitorListens(_ path: String, from offset: UInt64) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        try? handle.seek(toOffset: offset)
        let data = (try? handle.read(upToCount: 1 << 20)) ?? Data()
        return String(decoding: data, as: UTF8.self).split(separator: "\n")
            .contains { monitorLogMessage(String($0)).hasPrefix("waiting for a migrating VM on ") }
    }

    /// A TCP port free on `host` now (bound to port 0 and released): the monitor's `--incoming`
    /// takes a port, not 0.
    static func freePort(host: String) throws(DaemonError) -> UInt16 {
        var hints = unsafe addrinfo()
        unsafe hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        unsafe hints.ai_family = AF_UNSPEC
        unsafe hints.ai_flags = AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        let r = unsafe getaddrinfo(host, "0", &hints, &result)
        guard r == 0, let first = unsafe result else {
            throw DaemonError(.invalidRequest, unsafe "cannot resolve \(host.prefix(255)): \(String(cString: gai_strerror(r)))")
        }
        defer { unsafe freeaddrinfo(first) }
        var next: UnsafeMutablePointer<addrinfo>? = unsafe first
        while let info = unsafe next {
            unsafe next = info.pointee.ai_next
            let fd = unsafe socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            guard unsafe bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { continue }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let got = unsafe withUnsafeMutablePointer(to: &storage) {
                unsafe $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe getsockname(fd, $0, &length) }
            }
            guard got == 0 else { continue }
            let port: UInt16 = unsafe withUnsafePointer(to: &storage) { p in
                if unsafe Int32(p.pointee.ss_family) == AF_INET6 {
                    return unsafe p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { unsafe UInt16(bigEndian: $0.pointee.sin6_port) }
                }
                return unsafe p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { unsafe UInt16(bigEndian: $0.pointee.sin_port) }
            }
            if port != 0 { return port }
        }
        throw DaemonError(.invalidRequest, "cannot listen on \(host.prefix(255)): no address of it is on this host")
    }
}
