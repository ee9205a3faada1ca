import ControlProtocol
import Foundation
import HostProcess
import SkiffSpec
import SkiffStore

extension Supervisor {
    /// Called on the watcher's thread when a monitor ends. Exits the daemon caused are
    /// recorded by the request that caused them; this handles the others.
    func monitorExited(_ name: String, _ identity: ProcessIdentity, _ status: ExitStatus) {
        Task {
            try? await self.serialized(name) { () async throws in
                await self.handleUnexpectedExit(name, identity, status)
            }
        }
    }

    private func handleUnexpectedExit(_ name: String, _ identity: ProcessIdentity, _ status: ExitStatus) async {
        guard let r = try? store.vm(named: name), Self.identity(of: r) == identity else { return }
        // A stop task in progress records this exit itself.
        if controller(name).stopTask(of: identity) != nil { return }
        // A VM that was migrating in never ran here: it is removed, not restarted.
        if r.actualState == "incoming" {
            let stderr = tail(files(name).monitorErrors, from: 0)
            await discardIncoming(name, why: "the monitor \(status)\(stderr.isEmpty ? "" : ": \(stderr.suffix(1000))")")
            return
        }
        controller(name).forget(identity)
        let ranFor = r.startedAt.map { Date().timeIntervalSince($0) } ?? 0
        let spec = try? Self.spec(of: r)
        let policy = spec?.restartPolicy ?? .never
        let wanted = r.desiredState != "stopped"
        let restart = wanted && (policy == .always || (policy == .onFailure && !status.isSuccess))
        let state = status.isSuccess ? "stopped" : "crashed"
        _ = try? store.updateVM(name) { v in
            v.actualState = state
            v.pid = nil
            v.pidStartTime = nil
            v.monitorPid = nil
            v.monitorStartTime = nil
            v.lastExitAt = Date()
            v.lastExitDescription = "\(status)"
            Self.setExit(&v, status)
            if !restart { v.desiredState = "stopped" }
        }
        if !restart { releaseFiles(name) }
        events.publish(vm: name, kind: status.isSuccess ? "exited" : "crashed", "VM \(name): the monitor \(status)")
        if restart { scheduleRestart(name, ranFor: ranFor) }
    }

    /// Starts the VM again after the back-off delay, unless someone stopped it meanwhile.
    func scheduleRestart(_ name: String, ranFor: Double) {
        let c = controller(name)
        guard c.claimRestart() else { return }
        let delay = c.nextBackoff(ranFor: ranFor)
        events.publish(vm: name, kind: "restart-scheduled", "VM \(name) restarts in \(delay) s (restart policy)")
        Task {
            try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            c.restartDone()
            try? await self.serialized(name) { () async throws in
                guard let r = try? self.store.vm(named: name), r.desiredState != "stopped" else { return }
                if let id = Self.identity(of: r), id.isAlive() { return }
                do {
                    _ = try await self.startLocked(name, reason: "restarted")
                    _ = try? self.store.updateVM(name) { $0.restartCount += 1 }
                } catch {
                    self.events.publish(vm: name, kind: "restart-failed", "VM \(name) could not be restarted: \(error)")
                    _ = try? self.store.updateVM(name) { $0.desiredState = "running"; $0.actualState = "crashed" }
                    self.releaseFiles(name)
                    self.scheduleRestart(name, ranFor: 0)
                }
            }
        }
    }

    /// Takes over the VMs a previous daemon left: monitors still running are watched again
    /// (nothing is started twice); those that ended meanwhile are handled by restart policy.
    public func reattach() async {
        let records = (try? store.allVMs()) ?? []
        await withTaskGroup(of: Void.self) { group in
            for r in records {
                group.addTask { await self.reattach(r.name) }
            }
        }
    }

    private func reattach(_ name: String) async {
        try? await serialized(name) { () async throws in
            guard let r = try? self.store.vm(named: name) else { return }
            let files = self.files(name)
            // A migration in that no daemon followed: kept if it completed meanwhile, else removed.
            if r.actualState == "incoming" {
                if let reply = try? await self.control(files.apiSocket, .status, timeout: 2), case .status = reply {
                    _ = try? self.store.updateVM(name) { $0.actualState = "starting" }
                } else {
                    await self.discardIncoming(name, why: "the daemon restarted while it waited for the stream")
                    return
                }
            }
            let jailed = r.jailDirectory != nil
            // The recorded process, or (if the previous daemon died before recording it) a
            // monitor serving this VM's control socket (a jailer building its jail).
            var identity = Self.identity(of: r).flatMap { $0.isAlive() ? $0 : nil }
            if identity == nil, r.desiredState != "stopped" || r.actualState == "starting" {
                if let directory = r.jailDirectory {
                    let base = ((directory as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
                    identity = Self.findJailer(id: name, base: base)
                } else {
                    identity = Self.findMonitor(apiSocket: files.apiSocket)
                }
            }
            if let identity {
                let c = self.controller(name)
                self.watcher.watch(identity) { [weak self] identity, status in
                    let status = Self.monitorStatus(status, jailed: jailed)
                    c.post(identity, status)
                    self?.monitorExited(name, identity, status)
                }
                var seen = "running"
                if let reply = try? await self.control(files.apiSocket, .status, timeout: 2), case .status(let s) = reply, s.state == .paused {
                    seen = "paused"
                }
                let state = seen
                let execName = self.jail?.execName ?? "skiff-vmm"
                let monitor = r.jailDirectory.flatMap { Self.jailedMonitor(jailDirectory: $0, execName: execName, jailer: identity) }
                _ = try? self.store.updateVM(name) {
                    $0.pid = Int64(identity.pid)
                    $0.pidStartTime = Int64(identity.startTime)
                    $0.apiSocket = files.apiSocket
                    $0.actualState = state
                    if let monitor { $0.monitorPid = Int64(monitor.pid); $0.monitorStartTime = Int64(monitor.startTime) }
                    if $0.desiredState == "stopped" { $0.desiredState = state }
                }
                self.events.publish(vm: name, kind: "reattached", "VM \(name) re-attached (\(identity))")
                return
            }
            guard r.pid != nil || r.actualState == "starting" || r.actualState == "running" || r.actualState == "paused" else {
                if r.desiredState == "running", r.actualState == "crashed" { self.scheduleRestart(name, ranFor: 0) } else { self.releaseFiles(name) }
                return
            }
            // It ended while no daemon watched: its status is unknown.
            let policy = (try? Self.spec(of: r))?.restartPolicy ?? .never
            let restart = r.desiredState != "stopped" && policy != .never
            _ = try? self.store.updateVM(name) { v in
                v.actualState = "crashed"
                v.pid = nil
                v.pidStartTime = nil
                v.monitorPid = nil
                v.monitorStartTime = nil
                v.lastExitAt = Date()
                v.lastExitDescription = "\(ExitStatus.unknown)"
                Self.setExit(&v, .unknown)
                if !restart { v.desiredState = "stopped" }
            }
            if !restart { self.releaseFiles(name) }
            self.events.publish(vm: name, kind: "crashed", "VM \(name): the monitor ended while the daemon was away")
            if restart { self.scheduleRestart(name, ranFor: 0) }
        }
    }

    /// A running skiff-vmm whose command line names `apiSocket` (found through /proc).
    static func findMonitor(apiSocket: String) -> ProcessIdentity? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for entry in entries {
            guard let pid = Int32(entry), let data = SmallFile.read("/proc/\(pid)/cmdline") else { continue }
            let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let first = args.first, first.hasSuffix("skiff-vmm") else { continue }
            if let i = args.firstIndex(of: "--api-socket"), i + 1 < args.count, args[i + 1] == apiSocket {
                return ProcessIdentity.of(pid: pid)
            }
        }
        return nil
    }
}
