import ArgumentParser
import DaemonClient
import Foundation
import SkiffAPI

/// A task the daemon answered with: with `noWait`, its id (the task itself with `--output json`)
/// at once; otherwise waited for as `waitForTask` does.
func follow(_ c: DaemonConnection, _ task: Components.Schemas.Task, noWait: Bool, format: OutputFormat) async throws {
    guard noWait else { return try await waitForTask(c, task, format: format) }
    if format == .json { return try Print.json(task) }
    print(task.id)
}

/// Polls a task until it ends, drawing a progress bar on a terminal (lines otherwise).
func waitForTask(_ c: DaemonConnection, _ initial: Components.Schemas.Task, format: OutputFormat) async throws {
    var task = initial
    let tty = isatty(2) != 0 && format == .text
    var lastLine = ""
    while task.state == .running {
        let bar = Int((task.progress * 30).rounded())
        let line = "[\(String(repeating: "#", count: bar))\(String(repeating: " ", count: 30 - bar))] \(Int(task.progress * 100))% \(task.message ?? "")"
        if line != lastLine {
            if tty {
                FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
            } else if format == .text {
                FileHandle.standardError.write(Data("\(line)\n".utf8))
            }
            lastLine = line
        }
        try await Task.sleep(for: .milliseconds(200))
        switch try await c.client.getTask(path: .init(id: task.id)) {
        case .ok(let r): task = try r.body.json
        case .default(let s, let e): throw DaemonClientError.from(status: s, e)
        }
    }
    if tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    if format == .json { return try Print.json(task) }
    if task.state == .failed {
        throw DaemonClientError(task.error?.message ?? "task \(task.id) failed", code: task.error?.code.rawValue)
    }
    let result = (task.result?.additionalProperties ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    print("\(task.kind.rawValue) \(task.state.rawValue)\(result.isEmpty ? "" : ": \(result)")")
}

func acceptTask(_ out: Components.Responses.Task?, _ status: Int, _ error: Components.Responses._Error?) throws -> Components.Schemas.Task {
    let response = try expect(out, status, error)
    return try response.body.json
}

/// `skiff save NAME [--dir DIR]`: a snapshot through the daemon (`skiff snapshot create` talks to a monitor directly).
public struct SaveCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "save", abstract: "Snapshot a running VM through skiffd (a task with progress).")
    @Argument var name: String
    @Option(help: ArgumentHelp("Snapshot directory (must not exist; default: under the VM's directory).", valueName: "dir")) var dir: String?
    @Flag(help: "Only the pages written since the previous snapshot.") var diff = false
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let (name, dir, diff, format) = (self.name, self.dir, self.diff, server.output)
        try server.run { c in
            let out = try await c.client.snapshotVM(path: .init(name: name), body: .json(.init(directory: dir.map(absolutePath), diff: diff)))
            switch out {
            case .accepted(let t): try await waitForTask(c, try t.body.json, format: format)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

/// `skiff restore NAME DIR`: run a stopped VM from a snapshot.
public struct RestoreCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "restore", abstract: "Run a stopped VM from a snapshot through skiffd.")
    @Argument var name: String
    @Argument var directory: String
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let (name, dir, format) = (self.name, absolutePath(self.directory), server.output)
        try server.run { c in
            switch try await c.client.restoreVM(path: .init(name: name), body: .json(.init(directory: dir))) {
            case .accepted(let t): try await waitForTask(c, try t.body.json, format: format)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

/// `skiff clone NAME --count N`: fork a running VM into N new ones through the daemon.
public struct CloneCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "clone", abstract: "Fork a running VM into new VMs sharing its memory, through skiffd (names PREFIX-1...).")
    @Argument var name: String
    @Option(help: "How many.") var count: Int = 1
    @Option(help: ArgumentHelp("Name prefix of the new VMs (default: NAME).", valueName: "prefix")) var prefix: String?
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let (name, count, prefix, format) = (self.name, self.count, self.prefix, server.output)
        try server.run { c in
            switch try await c.client.forkVM(path: .init(name: name), body: .json(.init(count: count, namePrefix: prefix))) {
            case .accepted(let t): try await waitForTask(c, try t.body.json, format: format)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

/// `skiff move NAME URL`: live-migrate through the daemon to a monitor started with --incoming.
public struct MoveCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "move", abstract: "Live-migrate a VM through skiffd to a monitor waiting with --incoming URL.")
    @Argument var name: String
    @Argument(help: "tcp://HOST:PORT or unix:PATH") var destination: String
    @Option(name: .customLong("max-downtime"), help: ArgumentHelp("Longest pause at switch-over (ms).", valueName: "ms")) var maxDowntime: Int?
    @Flag(name: .customLong("copy-disks"), help: "Copy the disks too (no shared storage).") var copyDisks = false
    @Option(help: ArgumentHelp("Cap on the stream's rate, MiB a second.", valueName: "MiB")) var bandwidth: Int64?
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func validate() throws {
        if let bandwidth { guard (1...(1 << 40)).contains(bandwidth) else { throw ValidationError("--bandwidth must be 1 MiB/s or more") } }
    }
    public func run() throws {
        let (name, dest, ms, copy, format) = (self.name, self.destination, self.maxDowntime, self.copyDisks, server.output)
        let bytes = bandwidth.map { $0 << 20 }
        try server.run { c in
            switch try await c.client.migrateVM(path: .init(name: name),
                                                body: .json(.init(destination: dest, maxDowntimeMs: ms, copyDisks: copy, bandwidth: bytes))) {
            case .accepted(let t): try await waitForTask(c, try t.body.json, format: format)
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

/// `skiff resize NAME MiB`: the balloon target (memory taken from the guest).
public struct ResizeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "resize", abstract: "Set a VM's balloon target through skiffd: MiB taken from the guest (0 gives all back).")
    @Argument var name: String
    @Argument(help: "Balloon size in MiB.") var balloonMiB: Int64
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let (name, mib, format) = (self.name, self.balloonMiB, server.output)
        try server.run { c in
            switch try await c.client.setBalloon(path: .init(name: name), body: .json(.init(targetMiB: mib))) {
            case .ok(let r):
                let b = try r.body.json
                if format == .json { return try Print.json(b) }
                print("balloon target \(b.targetMiB) MiB, actual \(b.actualMiB) MiB")
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

/// `skiff events [-f]`: VM and host events.
public struct EventsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "events", abstract: "Print skiffd's VM and host events (-f follows).")
    @Flag(name: .shortAndLong, help: "Keep printing new events.") var follow = false
    @Option(help: ArgumentHelp("Only this VM's events.", valueName: "name")) var vm: String?
    @Option(help: ArgumentHelp("Only events after this id.", valueName: "id")) var since: Int64?
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let (follow, vm, since, format) = (self.follow, self.vm, self.since, server.output)
        try server.run { c in
            switch try await c.client.listEvents(query: .init(since: since, vm: vm, follow: follow)) {
            case .ok(let r):
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                let encoder = JSONEncoder()
                encoder.dateEncodingStrategy = .iso8601
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                for try await e in try r.body.applicationJsonl.asDecodedJSONLines(of: Components.Schemas.Event.self, decoder: decoder) {
                    // One write per event, unbuffered, so a follower sees each as it happens.
                    let line = format == .json ? String(decoding: try encoder.encode(e), as: UTF8.self)
                        : "\(e.id)  \(ISO8601DateFormatter().string(from: e.time))  \(e.kind)  \(e.message)"
                    FileHandle.standardOutput.write(Data((line + "\n").utf8))
                }
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

/// `skiff host`: capacity, allocation, KSM and memory pressure.
public struct HostCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "host", abstract: "Show the host as skiffd sees it: capacity, allocation, KSM.")
    @OptionGroup var server: DaemonOptions
    public init() {}
    public func run() throws {
        let format = server.output
        try server.run { c in
            switch try await c.client.getHost() {
            case .ok(let r):
                let h = try r.body.json
                if format == .json { return try Print.json(h) }
                print("cpus            \(h.cpus) (x\(h.cpuAllocationRatio): \(h.allocatedCpus) vCPUs allocated)")
                print("memory          \(h.memoryBytes >> 20) MiB (x\(h.memoryAllocationRatio): \(h.allocatedMemoryBytes >> 20) MiB allocated)")
                print("vms             \(h.vms)")
                print("cgroup          \(h.cgroup.rawValue)")
                print("ksm             \(h.ksm.available ? (h.ksm.run ? "on" : "off") : "unavailable"), sharing \(h.ksm.pagesSharing) pages (\(h.ksm.savedBytes >> 20) MiB saved)")
                if let p = h.memoryPressureSome10 { print("memory pressure \(p)% (some, avg10)") }
            case .default(let s, let e): throw DaemonClientError.from(status: s, e)
            }
        }
    }
}

/// `path` against this process's working directory: the daemon and its monitors have their own.
func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}
