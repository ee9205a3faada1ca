import ControlProtocol
import Foundation
import HostProcess
import HostResources
import SkiffSpec
import SkiffStore

extension Supervisor {
    // MARK: Start

    public func start(_ name: String) async throws(DaemonError) -> VMRecord {
        try await serialized(name) { () async throws -> VMRecord in
            try await self.startLocked(name, reason: "started")
        }
    }

    /// Starts the monitor of a stopped VM; the caller holds the VM's queue. With `incoming`
    /// (a migration endpoint) the monitor waits for a VM migrating in: the VM is left in state
    /// `incoming` once the monitor runs, and the caller waits for the stream.
    func startLocked(_ name: String, reason: String, restoreFrom: String? = nil, incoming: String? = nil) async throws(DaemonError) -> VMRecord {
        let r = try record(name)
        if let identity = Self.identity(of: r), identity.isAlive() {
            throw DaemonError(.invalidState, "VM '\(name)' is already \(r.actualState)")
        }
        let spec = try Self.spec(of: r)
        // An incoming VM's caller checked its files (copied disks do not exist yet).
        if incoming == nil { try checkFilesExist(spec) }
        let jail = self.jail
        let files = files(name, jailDirectory: jail?.directory(name))
        try files.checkSocketPaths()
        if let old = r.jailDirectory, jail == nil { retireJail(name, old) }
        for s in [files.apiSocket, files.consoleSocket, files.vsockSocket] { unsafe unlink(s) }
        var procFiles: [String] = []
        if let cgroups {
            do {
                try cgroups.prepare(vm: name, limits: limits(spec))
                procFiles = cgroups.procFiles(vm: name)
            } catch {
                events.publish(vm: name, kind: "qos-unavailable", "VM \(name): no cgroup, so no QoS: \(error)")
            }
        }
        var uid: UInt32 = 0
        if let jail {
            do {
                uid = try prepareJail(name, spec, jail)
            } catch {
                releaseFiles(name)
                throw error
            }
        }
        do {
            try store.updateVM(name) {
                $0.desiredState = "running"
                $0.actualState = incoming == nil ? "starting" : "incoming"
                $0.jailDirectory = files.jailDirectory
                $0.monitorPid = nil
                $0.monitorStartTime = nil
            }
        } catch {
            throw DaemonError.from(error)
        }
        let errorOffset = fileSize(files.monitorErrors)
        var arguments = MonitorCommandLine.arguments(spec: spec, files: files, diskPaths: diskPaths(spec, files), capabilities: capabilities)
        if let restoreFrom {
            arguments = MonitorCommandLine.restoreArguments(spec: spec, files: files, directory: restoreFrom, diskPaths: diskPaths(spec, files),
                                                            capabilities: capabilities)
        }
        if let incoming {
            arguments = MonitorCommandLine.incomingArguments(spec: spec, files: files, endpoint: incoming, diskPaths: diskPaths(spec, files),
                                                             capabilities: capabilities)
        }
        var executable = monitorPath
        if let jail {
            // The jailer joins the daemon's cgroups (it is spawned into them, and so is the
            // monitor it forks): QoS and metrics stay the daemon's.
            let directories = procFiles.map { ($0 as NSString).deletingLastPathComponent }
            arguments = jailerArguments(name, uid: uid, jail: jail, cgroupDirectories: directories) + ["--"] + arguments
            executable = jail.jailerPath
        }
        let identity: ProcessIdentity
        do {
            // The monitor logs JSON lines (swift-log) into monitor.err, one record per line;
            // the jailer's own errors are one plain line there.
            identity = try Spawner.spawn(executable: executable, arguments: arguments, environment: ["SKIFF_LOG_FORMAT=json"],
                                         stdoutPath: capabilities.consoleLog ? files.monitorOutput : files.consoleArchive,
                                         stderrPath: files.monitorErrors, cgroupProcFiles: procFiles)
        } catch {
            _ = try? store.updateVM(name) { $0.actualState = "stopped"; $0.desiredState = "stopped" }
            releaseFiles(name)
            throw DaemonError(.monitorFailed, "cannot start the monitor of '\(name)': \(error)")
        }
        let c = controller(name)
        let jailed = jail != nil
        watcher.watch(identity) { [weak self] identity, status in
            let status = Self.monitorStatus(status, jailed: jailed)
            c.post(identity, status)
            self?.monitorExited(name, identity, status)
        }
        do {
            try store.updateVM(name) {
                $0.pid = Int64(identity.pid)
                $0.pidStartTime = Int64(identity.startTime)
                $0.apiSocket = files.apiSocket
                $0.startedAt = Date()
            }
        } catch {
            // Without a record of its pid the monitor could not be found again: stop it.
            if let current = try? record(name) { killMonitor(current, identity) } else { watcher.signal(identity, SIGKILL) }
            _ = await c.waitForExit(of: identity, timeout: 5)
            _ = try? store.updateVM(name) { $0.actualState = "stopped"; $0.desiredState = "stopped"; $0.pid = nil; $0.pidStartTime = nil }
            releaseFiles(name)
            throw DaemonError.from(error)
        }
        // A monitor waiting for a migration opens its control socket once the VM has arrived;
        // a jailed one's host pid is recorded first (kill and re-attach need it).
        if incoming != nil {
            if let jail {
                let deadline = Date().addingTimeInterval(5)
                while Date() < deadline {
                    if let found = Self.jailedMonitor(jailDirectory: jail.directory(name), execName: jail.execName, jailer: identity) {
                        _ = try? store.updateVM(name) { $0.monitorPid = Int64(found.pid); $0.monitorStartTime = Int64(found.startTime) }
                        break
                    }
                    try? await Task.sleep(for: .milliseconds(10))
                }
            }
            return try record(name)
        }
        // Ready when the control socket answers.
        let deadline = Date().addingTimeInterval(configuration.startTimeout)
        var monitor: ProcessIdentity?
        while true {
            if let jail, monitor == nil, let found = Self.jailedMonitor(jailDirectory: jail.directory(name), execName: jail.execName, jailer: identity) {
                monitor = found
                _ = try? store.updateVM(name) { $0.monitorPid = Int64(found.pid); $0.monitorStartTime = Int64(found.startTime) }
            }
            if let status = c.exit(of: identity) ?? (identity.isAlive() ? nil : ExitStatus.unknown) {
                if status.isSuccess {
                    // The guest ran and powered off before the control socket was polled.
                    events.publish(vm: name, kind: reason, "VM \(name) \(reason) (\(identity))")
                    return try recordExit(name, identity, status, how: "powered off")
                }
                let stderr = tail(files.monitorErrors, from: errorOffset)
                _ = try? store.updateVM(name) {
                    $0.actualState = "stopped"
                    $0.desiredState = "stopped"
                    $0.pid = nil
                    $0.pidStartTime = nil
                    $0.lastExitAt = Date()
                    $0.lastExitDescription = "\(status)"
                    $0.monitorPid = nil
                    $0.monitorStartTime = nil
                }
                releaseFiles(name)
                events.publish(vm: name, kind: "start-failed", "VM \(name): the monitor \(status) while starting")
                throw DaemonError(.monitorFailed, "the monitor of '\(name)' \(status) while starting\(stderr.isEmpty ? "" : ": \(stderr)")")
            }
            if let reply = try? await control(files.apiSocket, .status, timeout: 1), case .status(let s) = reply {
                let state = s.state == .paused ? "paused" : "running"
                let record: VMRecord
                do {
                    record = try store.updateVM(name) { $0.actualState = state }
                } catch {
                    throw DaemonError.from(error)
                }
                events.publish(vm: name, kind: reason, "VM \(name) \(reason) (\(identity))")
                return record
            }
            if Date() > deadline {
                if let current = try? record(name) { killMonitor(current, identity) } else { watcher.signal(identity, SIGKILL) }
                _ = await c.waitForExit(of: identity, timeout: 5)
                _ = try? store.updateVM(name) {
                    $0.actualState = "stopped"; $0.desiredState = "stopped"; $0.pid = nil; $0.pidStartTime = nil; $0.monitorPid = nil; $0.monitorStartTime = nil
                }
                releaseFiles(name)
                let stderr = tail(files.monitorErrors, from: errorOffset)
                throw DaemonError(.monitorFailed, "the monitor of '\(name)' did not open its control socket within \(Int(configuration.startTimeout)) s\(stderr.isEmpty ? "" : ": \(stderr)")")
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    func limits(_ spec: VMSpec) -> CgroupLimits {
        CgroupLimits(weightUnits: spec.qosClass.weightUnits, cpuLimit: spec.qos?.cpuLimit, memoryLimit: spec.qos?.memoryLimitBytes,
                     cpuset: spec.qos?.cpuset)
    }

    // MARK: Stop, kill, reboot

    /// Starts a graceful stop as a task and returns it at once: the ACPI power button, up to
    /// `timeout` seconds for the guest to power off, then the monitor's `stop`, then SIGKILL.
    /// The VM is `stopping` meanwhile; reads and other requests on it are answered (those that
    /// need a running VM are refused). A second stop while one is in progress answers with the
    /// task already running (its timeout holds); a kill cuts it short (`kill` wins).
    public func stop(_ name: String, timeout: Double?) async throws(DaemonError) -> TaskRecord {
        try await beginGracefulStop(name, kind: "stop", timeout: timeout ?? configuration.stopTimeout) { _, stopped, _ in stopped }
    }

    /// Starts a stop task of `kind` on the VM's queue: the VM must run; it becomes `stopping`;
    /// the task runs the stop's phases, then `then` with what the stop returned. A stop already
    /// in progress answers a `stop` with its task and refuses anything else.
    private func beginGracefulStop(_ name: String, kind: String, timeout: Double,
                                   then: @escaping @Sendable (String, [String: String], TaskRunner.Progress) async throws -> [String: String])
        async throws(DaemonError) -> TaskRecord {
        try await serialized(name) { () async throws -> TaskRecord in
            let r = try self.record(name)
            guard let identity = Self.identity(of: r), identity.isAlive() else {
                throw DaemonError(.invalidState, "VM '\(name)' is not running (\(r.actualState))")
            }
            let c = self.controller(name)
            if let running = c.stopTask(of: identity) {
                guard kind == "stop" else {
                    throw DaemonError(.invalidState, "VM '\(name)' is stopping: wait for the stop (or kill it), then start it")
                }
                return (try? self.store.task(id: running.id)) ?? running
            }
            let paused = r.actualState == "paused"
            let socket = r.apiSocket ?? self.files(name).apiSocket
            do {
                try self.store.updateVM(name) { $0.desiredState = "stopped"; $0.actualState = "stopping" }
            } catch {
                throw DaemonError.from(error)
            }
            let task = try self.tasks.launch(kind: kind, vm: name) { progress in
                let stopped = try await self.runStop(name, identity, socket: socket, paused: paused, timeout: timeout, progress: progress)
                return try await then(name, stopped, progress)
            }
            c.beginStop(task, identity)
            let verb = kind == "stop" ? "stopping" : "rebooting"
            self.events.publish(vm: name, kind: verb, "VM \(name) \(verb) (timeout \(Int(timeout)) s, task \(task.id))")
            return task
        }
    }

    /// The work of a stop task. It does not hold the VM's queue while it waits for the guest;
    /// it takes it to record the exit (unless a kill recorded it first).
    func runStop(_ name: String, _ identity: ProcessIdentity, socket: String, paused: Bool, timeout: Double,
                 progress: TaskRunner.Progress) async throws(DaemonError) -> [String: String] {
        let c = controller(name)
        var how = "powered off"
        var status: ExitStatus?
        if !paused {
            progress.update(0.02, "pressing the power button")
            if (try? await control(socket, .powerButton, timeout: 2)) != nil, timeout > 0 {
                let started = Date()
                let deadline = started.addingTimeInterval(timeout)
                var lastReport = -1
                while status == nil {
                    let left = deadline.timeIntervalSinceNow
                    if left <= 0 { break }
                    let elapsed = Int(Date().timeIntervalSince(started))
                    if elapsed != lastReport {
                        lastReport = elapsed
                        progress.update(0.05 + 0.8 * Double(elapsed) / timeout,
                                        "power button pressed: waiting for the guest to power off (\(elapsed) of \(Int(timeout)) s)")
                    }
                    status = await c.waitForExit(of: identity, timeout: min(1, left))
                }
            }
        }
        if status == nil {
            how = "stopped"
            progress.update(0.88, paused ? "the VM is paused: stopping the monitor"
                                         : "the guest did not power off within \(Int(timeout)) s: stopping the monitor")
            _ = try? await control(socket, .stop, timeout: 5)
            status = await c.waitForExit(of: identity, timeout: 5)
        }
        if status == nil {
            how = "killed"
            progress.update(0.95, "the monitor did not stop: SIGKILL")
            if let current = try? record(name) { killMonitor(current, identity) } else { watcher.signal(identity, SIGKILL) }
            status = await c.waitForExit(of: identity, timeout: 10)
        }
        guard let status else {
            _ = c.endStop(identity)
            throw DaemonError(.internal, "the monitor of '\(name)' (\(identity)) did not exit after SIGKILL")
        }
        let final = how
        return try await serialized(name) { () async throws -> [String: String] in
            let killed = c.endStop(identity)
            let r = try self.record(name)
            if Self.identity(of: r) != identity {
                // A kill recorded the exit first.
                progress.update(1, "cut short by a kill")
                return ["how": "killed", "cutShortBy": "kill", "exit": r.lastExitDescription ?? "\(status)"]
            }
            // A SIGKILL this stop did not send is a kill that cut it short.
            let how = killed || (status == .signalled(SIGKILL) && final != "killed") ? "killed" : final
            _ = try self.recordExit(name, identity, status, how: how)
            progress.update(1, killed ? "cut short by a kill" : how)
            var result = ["how": how, "exit": "\(status)"]
            if killed { result["cutShortBy"] = "kill" }
            return result
        }
    }

    /// Graceful stop holding the VM's queue (reboot): the ACPI power button, then the monitor's
    /// `stop` after `timeout` seconds, then SIGKILL.
    func stopLocked(_ name: String, timeout: Double) async throws(DaemonError) -> VMRecord {
        let r = try record(name)
        guard let identity = Self.identity(of: r), identity.isAlive() else {
            throw DaemonError(.invalidState, "VM '\(name)' is not running (\(r.actualState))")
        }
        do {
            try store.updateVM(name) { $0.desiredState = "stopped"; $0.actualState = "stopping" }
        } catch {
            throw DaemonError.from(error)
        }
        let c = controller(name)
        let socket = r.apiSocket ?? files(name).apiSocket
        var how = "powered off"
        var status: ExitStatus?
        if r.actualState != "paused", (try? await control(socket, .powerButton, timeout: 2)) != nil, timeout > 0 {
            status = await c.waitForExit(of: identity, timeout: timeout)
        }
        if status == nil {
            how = "stopped"
            _ = try? await control(socket, .stop, timeout: 5)
            status = await c.waitForExit(of: identity, timeout: 5)
        }
        if status == nil {
            how = "killed"
            killMonitor(r, identity)
            status = await c.waitForExit(of: identity, timeout: 10)
        }
        guard let status else { throw DaemonError(.internal, "the monitor of '\(name)' (\(identity)) did not exit after SIGKILL") }
        return try recordExit(name, identity, status, how: how)
    }

    public func kill(_ name: String) async throws(DaemonError) -> VMRecord {
        // A kill does not wait for a graceful stop that waits for its guest: the monitor gets
        // SIGKILL now, and whichever of the two records the exit first records it as killed.
        var cutShort = false
        if let r = try? record(name), r.actualState == "stopping", let identity = Self.identity(of: r), identity.isAlive() {
            events.publish(vm: name, kind: "kill", "VM \(name): killed while stopping")
            _ = controller(name).markKilledDuringStop(identity)
            killMonitor(r, identity)
            cutShort = true
        }
        return try await serialized(name) { [cutShort] () async throws -> VMRecord in
            let r = try self.record(name)
            guard let identity = Self.identity(of: r), cutShort || identity.isAlive() else {
                // The stop this kill cut short has recorded the exit.
                if cutShort, r.pid == nil { return r }
                throw DaemonError(.invalidState, "VM '\(name)' is not running (\(r.actualState))")
            }
            do {
                try self.store.updateVM(name) { $0.desiredState = "stopped"; $0.actualState = "stopping" }
            } catch {
                throw DaemonError.from(error)
            }
            self.killMonitor(r, identity)
            guard let status = await self.controller(name).waitForExit(of: identity, timeout: 10) else {
                throw DaemonError(.internal, "the monitor of '\(name)' (\(identity)) did not exit after SIGKILL")
            }
            return try self.recordExit(name, identity, status, how: "killed")
        }
    }

    /// Starts a reboot as a task and returns it at once: a graceful stop as `stop` does it (the
    /// power button, `timeout` seconds, the monitor's stop, SIGKILL), then a start. The VM is
    /// `stopping`, then `starting`; a kill during the stop ends the reboot there (the VM stays
    /// stopped and the task records it).
    public func reboot(_ name: String, timeout: Double?) async throws(DaemonError) -> TaskRecord {
        try await beginGracefulStop(name, kind: "reboot", timeout: timeout ?? configuration.stopTimeout) { name, stopped, progress in
            var result = stopped
            if result["cutShortBy"] != nil {
                progress.update(1, "cut short by a kill: the VM stays stopped")
                return result
            }
            progress.update(0.97, "starting the VM again")
            let started = try await self.serialized(name) { () async throws -> VMRecord in
                try await self.startLocked(name, reason: "rebooted")
            }
            result["state"] = started.actualState
            return result
        }
    }

    /// Records a monitor's exit that the daemon caused (stop, kill).
    func recordExit(_ name: String, _ identity: ProcessIdentity, _ status: ExitStatus, how: String) throws(DaemonError) -> VMRecord {
        controller(name).forget(identity)
        let record: VMRecord
        do {
            record = try store.updateVM(name) { r in
                r.actualState = "stopped"
                r.desiredState = "stopped"
                r.pid = nil
                r.pidStartTime = nil
                r.monitorPid = nil
                r.monitorStartTime = nil
                r.lastExitAt = Date()
                r.lastExitDescription = "\(status)"
                Self.setExit(&r, status)
            }
        } catch {
            throw DaemonError.from(error)
        }
        releaseFiles(name)
        events.publish(vm: name, kind: "stopped", "VM \(name) \(how): the monitor \(status)")
        return record
    }

    static func setExit(_ r: inout VMRecord, _ status: ExitStatus) {
        switch status {
        case .exited(let s): r.lastExitStatus = Int64(s); r.lastExitSignal = nil
        case .signalled(let s): r.lastExitSignal = Int64(s); r.lastExitStatus = nil
        case .unknown: r.lastExitStatus = nil; r.lastExitSignal = nil
        }
    }

    // MARK: Pause and resume

    public func pause(_ name: String) async throws(DaemonError) -> VMRecord {
        try await stateChange(name, .pause, from: "running", to: "paused", kind: "paused")
    }

    public func resume(_ name: String) async throws(DaemonError) -> VMRecord {
        try await stateChange(name, .resume, from: "paused", to: "running", kind: "resumed")
    }

    private func stateChange(_ name: String, _ request: ControlRequest, from: String, to: String, kind: String) async throws(DaemonError) -> VMRecord {
        try await serialized(name) { () async throws -> VMRecord in
            let r = try self.record(name)
            guard let identity = Self.identity(of: r), identity.isAlive(), r.actualState == from else {
                throw DaemonError(.invalidState, "VM '\(name)' is \(r.actualState), not \(from)")
            }
            _ = try await self.control(r.apiSocket ?? self.files(name).apiSocket, request)
            let record: VMRecord
            do {
                record = try self.store.updateVM(name) { $0.actualState = to; $0.desiredState = to }
            } catch {
                throw DaemonError.from(error)
            }
            self.events.publish(vm: name, kind: kind, "VM \(name) \(kind)")
            return record
        }
    }

    // MARK: Monitor requests

    /// One request to a monitor's control socket, on the blocking pool.
    func control(_ socket: String, _ request: ControlRequest, timeout: Double = 30) async throws(DaemonError) -> ControlReply {
        do {
            return try await pool.run { () throws -> ControlReply in
                let client = try ControlClient(path: socket)
                return try client.send(request, timeout: timeout)
            }
        } catch let error as ControlError {
            switch error.code {
            case .invalidState: throw DaemonError(.invalidState, error.message)
            case .unsupported: throw DaemonError(.unsupported, error.message)
            case .invalidRequest: throw DaemonError(.invalidRequest, error.message)
            default: throw DaemonError(.monitorFailed, error.message)
            }
        } catch {
            throw DaemonError(.internal, "\(error)")
        }
    }

    /// The running monitor's control socket, or `invalidState`.
    func runningSocket(_ name: String) throws(DaemonError) -> String {
        let r = try record(name)
        guard let identity = Self.identity(of: r), identity.isAlive(), let socket = r.apiSocket else {
            throw DaemonError(.invalidState, "VM '\(name)' is not running (\(r.actualState))")
        }
        return socket
    }
}

/// The size of a file (0 if absent).
func fileSize(_ path: String) -> UInt64 {
    var st = stat()
    return unsafe stat(path, &st) == 0 ? UInt64(st.st_size) : 0
}

/// The text a file gained after `offset` (its last 2000 bytes), trimmed, on one line.
func tail(_ path: String, from offset: UInt64) -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
    defer { try? handle.close() }
    let size = fileSize(path)
    let start = max(offset, size > 2000 ? size - 2000 : 0)
    try? handle.seek(toOffset: start)
    let data = (try? handle.readToEnd()) ?? Data()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        .split(separator: "\n").map { monitorLogMessage(String($0)) }.joined(separator: " | ")
}

/// The message of one line of a monitor's log: its `message` field when the line is one of the
/// JSON records the monitor writes under `SKIFF_LOG_FORMAT=json`, else the line as it is
/// (usage errors are plain text).
func monitorLogMessage(_ line: String) -> String {
    guard line.hasPrefix("{"), let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
          let message = object["message"] as? String else { return line }
    let level = object["level"] as? String
    return level == "error" || level == "critical" ? "error: \(message)" : message
}
