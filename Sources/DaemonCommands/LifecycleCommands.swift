import ArgumentParser
import DaemonClient
import Foundation
import SkiffAPI
import SkiffSpec

/// `skiff create -f FILE`: a VM from a spec (YAML or JSON).
public struct CreateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a VM from a spec file (YAML or JSON) through skiffd.")
    @Option(name: .shortAndLong, help: ArgumentHelp("The spec file ('-' reads standard input).", valueName: "file")) var file: String
    @Flag(help: "Start it right away.") var start = false
    @OptionGroup var server: DaemonOptions
    public init() {}

    public func run() throws {
        let spec: VMSpec
        do {
            if file == "-" {
                let data = FileHandle.standardInput.readDataToEndOfFile()
                spec = try SpecLoader.parse(String(decoding: data.prefix(SpecLoader.maxDocumentLength + 1), as: UTF8.self))
            } else {
                spec = try SpecLoader.load(path: file)
            }
        } catch {
            throw DaemonClientError(error.message)
        }
        let body = try JSONDecoder().decode(Components.Schemas.VMSpec.self, from: JSONEncoder().encode(spec))
        let start = self.start
        let format = server.output
        try server.run { c in
            let out = try await c.client.createVM(query: .init(start: start), body: .json(body))
            switch out {
            case .created(let r): try Print.vm(try r.body.json, format)
            case .default(let status, let e): throw DaemonClientError.from(status: status, e)
            }
        }
    }
}

/// The verbs that name one VM and answer with it.
enum VMVerb: Sendable {
    case start, kill, pause, resume

    func call(_ c: DaemonConnection, _ name: String) async throws -> Components.Schemas.Vm {
        let path = Operations.StartVM.Input.Path(name: name)
        func unwrap(_ r: Components.Responses.Vm) throws -> Components.Schemas.Vm { try r.body.json }
        switch self {
        case .start:
            switch try await c.client.startVM(path: path) {
            case .ok(let r): return try unwrap(r)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        case .kill:
            switch try await c.client.killVM(path: .init(name: name)) {
            case .ok(let r): return try unwrap(r)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        case .pause:
            switch try await c.client.pauseVM(path: .init(name: name)) {
            case .ok(let r): return try unwrap(r)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        case .resume:
            switch try await c.client.resumeVM(path: .init(name: name)) {
            case .ok(let r): return try unwrap(r)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

func runVerb(_ verb: VMVerb, _ name: String, _ server: DaemonOptions) throws {
    let format = server.output
    try server.run { c in try Print.vm(try await verb.call(c, name), format) }
}

public struct StartCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a VM (skiffd).")
    @Argument var name: String
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws { try runVerb(.start, name, server) }
}

public struct StopCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop a VM: the ACPI power button, then a hard stop after the timeout (skiffd).")
    @Argument var name: String
    @Option(help: ArgumentHelp("Seconds the guest gets to power off (default: the daemon's, 10).", valueName: "seconds")) var timeout: Int?
    @Flag(name: .customLong("no-wait"), help: "Return the stop task at once (its id; the task with --output json) instead of waiting for it.")
    var noWait = false
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let (name, timeout, noWait, format) = (self.name, self.timeout, self.noWait, server.output)
        try server.run { c in
            switch try await c.client.stopVM(path: .init(name: name), query: .init(timeout: timeout)) {
            case .accepted(let t):
                try await follow(c, try t.body.json, noWait: noWait, format: format)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

public struct KillCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "kill", abstract: "Kill a VM's monitor at once (skiffd).")
    @Argument var name: String
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws { try runVerb(.kill, name, server) }
}

public struct RebootCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "reboot", abstract: "Stop a VM as `stop` does and start it again (skiffd).")
    @Argument var name: String
    @Option(help: ArgumentHelp("Seconds the guest gets to power off (default: the daemon's, 10).", valueName: "seconds")) var timeout: Int?
    @Flag(name: .customLong("no-wait"), help: "Return the reboot task at once (its id; the task with --output json) instead of waiting for it.")
    var noWait = false
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let (name, timeout, noWait, format) = (self.name, self.timeout, self.noWait, server.output)
        try server.run { c in
            switch try await c.client.rebootVM(path: .init(name: name), query: .init(timeout: timeout)) {
            case .accepted(let t):
                try await follow(c, try t.body.json, noWait: noWait, format: format)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

public struct PauseCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "pause", abstract: "Pause a running VM (skiffd).")
    @Argument var name: String
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws { try runVerb(.pause, name, server) }
}

public struct ResumeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume a paused VM (skiffd).")
    @Argument var name: String
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws { try runVerb(.resume, name, server) }
}

public struct DeleteCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a stopped VM and the files skiffd made for it.")
    @Argument var name: String
    @Flag(help: "Kill it first if it runs.") var force = false
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let name = self.name
        let force = self.force
        let format = server.output
        try server.run { c in
            switch try await c.client.deleteVM(path: .init(name: name), query: .init(force: force)) {
            case .noContent: if format == .json { print("{}") } else { print("deleted \(name)") }
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

public struct ShowCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one VM (skiffd).")
    @Argument var name: String
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let name = self.name
        let format = server.output
        try server.run { c in
            switch try await c.client.getVM(path: .init(name: name)) {
            case .ok(let r): try Print.vm(try r.body.json, format)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

public struct ListCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "list", abstract: "List the VMs skiffd runs.")
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let format = server.output
        try server.run { c in
            switch try await c.client.listVMs() {
            case .ok(let r):
                let vms = try r.body.json
                if format == .json { return try Print.json(vms) }
                var rows = [["NAME", "STATE", "CPUS", "MEMORY", "PID", "QOS", "RESTARTS"]]
                for v in vms {
                    let pid: String = v.pid.map { String($0) } ?? "-"
                    let qos: String = v.spec.qos?._class?.rawValue ?? "normal"
                    rows.append([v.name, v.state.rawValue, String(v.spec.cpus ?? 1), v.spec.memory ?? "256M", pid, qos, String(v.restartCount)])
                }
                Print.table(rows)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}
