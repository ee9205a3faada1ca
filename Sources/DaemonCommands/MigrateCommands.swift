import ArgumentParser
import DaemonClient
import Foundation
import SkiffAPI

/// `skiff migrate NAME --to TARGET`: live-migrates a VM from this skiffd to another one, which
/// creates it from this one's spec, receives it and supervises it afterwards.
public struct DaemonMigrateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Live-migrate a VM from skiffd to another skiffd (--to); it is stopped here afterwards.",
        discussion: """
            The target daemon creates the VM from this daemon's spec with a monitor waiting for the stream \
            (POST /migrations/incoming), this daemon streams it (POST /vms/NAME/migrate, a task with progress), \
            and the target then owns it: running there with its restart policy, stopped here (--remove-source \
            deletes it here). Disks are shared storage (the same paths on both hosts) unless --copy-disks. If \
            the move fails the VM keeps running here and the target removes what it created.
            """)

    @Argument(help: "The VM on this daemon (--socket).") var name: String

    @Option(help: ArgumentHelp("The target skiffd: its unix socket, or http(s)://HOST:PORT (with --to-token-file).", valueName: "socket|url"))
    var to: String

    @Option(name: .customLong("to-token-file"), help: ArgumentHelp("File holding the target's bearer token (a TCP target).", valueName: "path"))
    var toTokenFile: String?

    @Option(help: ArgumentHelp(
        "Where the target's monitor listens: tcp://HOST:PORT (port 0: any) or unix:PATH (default tcp://127.0.0.1:0 for a socket target, tcp://0.0.0.0:0 for a URL).",
        valueName: "address"))
    var listen: String?

    @Option(name: .customLong("max-downtime"), help: ArgumentHelp("Longest pause at switch-over (ms).", valueName: "ms")) var maxDowntime: Int?

    @Flag(name: .customLong("copy-disks"), help: "Stream the disks too (no shared storage): the target keeps them under its VM directory.")
    var copyDisks = false

    @Option(help: ArgumentHelp("Cap on the stream's rate, MiB a second.", valueName: "MiB")) var bandwidth: Int64?

    @Flag(name: .customLong("remove-source"), help: "Delete the VM on this daemon once it runs on the target.") var removeSource = false

    @Option(help: ArgumentHelp("Seconds the target waits for the stream to complete (default 600).", valueName: "seconds")) var timeout: Int = 600

    @OptionGroup var server: DaemonOptions

    public init() {}

    public func validate() throws {
        guard !to.isEmpty else { throw ValidationError("--to needs the target daemon's socket or URL") }
        if to.hasPrefix("http://") || to.hasPrefix("https://") {
            guard URL(string: to)?.host != nil else { throw ValidationError("--to: '\(to)' is not a URL") }
            guard toTokenFile != nil else { throw ValidationError("--to with a URL needs --to-token-file") }
        }
        guard (1...86_400).contains(timeout) else { throw ValidationError("--timeout must be 1 to 86400 seconds") }
        if let bandwidth { guard (1...(1 << 40)).contains(bandwidth) else { throw ValidationError("--bandwidth must be 1 MiB/s or more") } }
        if let maxDowntime { guard (1...60_000).contains(maxDowntime) else { throw ValidationError("--max-downtime must be 1 to 60000 ms") } }
    }

    public func run() throws {
        let name = self.name, target = self.to, copy = copyDisks, remove = removeSource, ms = maxDowntime, format = server.output
        let waitSeconds = timeout
        let bytes = bandwidth.map { $0 << 20 }
        let remote = target.hasPrefix("http://") || target.hasPrefix("https://")
        let listen = self.listen ?? (remote ? "tcp://0.0.0.0:0" : "tcp://127.0.0.1:0")
        var token: String?
        if let file = toTokenFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw DaemonClientError("cannot read \(file)") }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let bearer = token
        try server.run { source in
            // The spec, from the source.
            let vm: Components.Schemas.Vm
            switch try await source.client.getVM(path: .init(name: name)) {
            case .ok(let r): vm = try r.body.json
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
            guard vm.state == .running || vm.state == .paused else {
                throw DaemonClientError("VM '\(name)' is \(vm.state.rawValue): only a running or paused VM migrates", code: "invalidState")
            }
            let destination: DaemonConnection
            if remote {
                guard let url = URL(string: target) else { throw DaemonClientError("bad URL \(target)") }
                destination = DaemonConnection(baseURL: url, token: bearer ?? "")
            } else {
                destination = try DaemonConnection(socketPath: target)
            }
            do {
                try await Self.move(name, vm: vm, source: source, destination: destination, target: target, remote: remote, listen: listen,
                                    timeout: waitSeconds, copyDisks: copy, maxDowntime: ms, bandwidth: bytes, removeSource: remove, format: format)
            } catch {
                await destination.shutdown()
                throw error
            }
            await destination.shutdown()
        }
    }

    static func move(_ name: String, vm: Components.Schemas.Vm, source: DaemonConnection, destination: DaemonConnection, target: String,
                     remote: Bool, listen: String, timeout: Int, copyDisks: Bool, maxDowntime: Int?, bandwidth: Int64?, removeSource: Bool,
                     format: OutputFormat) async throws {
        // The target creates the VM, waiting for the stream.
        let incoming: Components.Schemas.IncomingVM
        do {
            switch try await destination.client.createIncomingVM(body: .json(.init(spec: vm.spec, listen: listen, timeout: timeout, copyDisks: copyDisks))) {
            case .created(let r): incoming = try r.body.json
            case .default(let s, let e):
                let error = DaemonClientError.from(status: s, e)
                throw DaemonClientError("the target refused the VM: \(error.message)", code: error.code, status: error.status)
            }
        } catch let error as DaemonClientError {
            throw error
        } catch {
            throw DaemonClientError("cannot reach the target skiffd at \(target): \(error)")
        }
        var address = incoming.address
        // A target listening on every address is reached at the host its API was reached at.
        if remote, let host = URL(string: target)?.host {
            for any in ["tcp://0.0.0.0:", "tcp://[::]:"] where address.hasPrefix(any) {
                address = "tcp://\(host.contains(":") ? "[\(host)]" : host):\(address.dropFirst(any.count))"
            }
        }
        if format == .text { FileHandle.standardError.write(Data("the target waits for \(name) on \(address)\n".utf8)) }
        // The source streams it.
        let task: Components.Schemas.Task
        do {
            switch try await source.client.migrateVM(path: .init(name: name),
                                                     body: .json(.init(destination: address, maxDowntimeMs: maxDowntime, copyDisks: copyDisks,
                                                                       bandwidth: bandwidth))) {
            case .accepted(let t): task = try t.body.json
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        } catch {
            await abandon(name, destination)
            throw error
        }
        let final = try await follow(source, task, format: format)
        guard final.state == .succeeded else {
            await abandon(name, destination)
            throw DaemonClientError(final.error?.message ?? "task \(final.id) failed", code: final.error?.code.rawValue)
        }
        // The target owns it once its monitor answers.
        var arrived: Components.Schemas.Vm?
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if case .ok(let r) = try await destination.client.getVM(path: .init(name: name)), let v = try? r.body.json, v.state != .incoming {
                arrived = v
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard let arrived else { throw DaemonClientError("the stream completed but the target does not report '\(name)' running yet") }
        if removeSource {
            switch try await source.client.deleteVM(path: .init(name: name)) {
            case .noContent: break
            case .default(let s, let e): throw DaemonClientError("migrated, but deleting the source VM failed: \(DaemonClientError.from(status: s, e).message)")
            }
        }
        if format == .json { return try Print.json(arrived) }
        let result = (final.result?.additionalProperties ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        print("migrated \(name) to \(target): \(arrived.state.rawValue) there, \(removeSource ? "deleted" : "stopped") here\(result.isEmpty ? "" : " (\(result))")")
    }

    /// Removes the target's VM if it is still waiting (the move failed before it arrived).
    static func abandon(_ name: String, _ destination: DaemonConnection) async {
        guard case .ok(let r)? = try? await destination.client.getVM(path: .init(name: name)), let v = try? r.body.json,
              v.state == .incoming else { return }
        _ = try? await destination.client.deleteVM(path: .init(name: name), query: .init(force: true))
    }

    /// Polls a task to its end, with a progress line on a terminal (text output).
    static func follow(_ c: DaemonConnection, _ initial: Components.Schemas.Task, format: OutputFormat) async throws -> Components.Schemas.Task {
        var task = initial
        let tty = isatty(2) != 0 && format == .text
        var last = ""
        while task.state == .running {
            let line = "\(Int(task.progress * 100))% \(task.message ?? "")"
            if tty, line != last { FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8)) }
            last = line
            try await Task.sleep(for: .milliseconds(200))
            switch try await c.client.getTask(path: .init(id: task.id)) {
            case .ok(let r): task = try r.body.json
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
        if tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        return task
    }
}
