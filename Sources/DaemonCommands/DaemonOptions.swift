import ArgumentParser
import DaemonClient
import Foundation
import SkiffAPI

/// Options every daemon verb takes: which daemon, and the output format.
public struct DaemonOptions: ParsableArguments {
    @Option(help: ArgumentHelp("skiffd's unix socket (default: $SKIFF_SOCKET or /run/skiff/skiffd.sock).", valueName: "path"))
    var socket: String?

    @Option(help: ArgumentHelp("Output format: text or json.", valueName: "format"))
    var output: OutputFormat = .text

    public init() {}

    var socketPath: String { socket ?? DaemonConnection.defaultSocket }

    /// Runs `body` with a connection, blocking this (synchronous) command until it finishes.
    func run(_ body: @escaping @Sendable (DaemonConnection) async throws -> Void) throws {
        let path = socketPath
        try blockingAwait {
            let connection = try DaemonConnection(socketPath: path)
            do {
                try await body(connection)
            } catch {
                await connection.shutdown()
                throw Self.explain(error, socket: path)
            }
            await connection.shutdown()
        }
    }

    /// Turns transport errors into one line that says what to check.
    static func explain(_ error: any Error, socket: String) -> any Error {
        if error is DaemonClientError || error is ExitCode || error is ValidationError { return error }
        let text = "\(error)"
        if text.contains("connect") || text.contains("No such file") || text.contains("ENOENT") || text.contains("refused") {
            return DaemonClientError("cannot reach skiffd at \(socket) (is it running? --socket or SKIFF_SOCKET pick another)")
        }
        return DaemonClientError(text)
    }
}

public enum OutputFormat: String, ExpressibleByArgument, Sendable {
    case text, json
}

/// Waits for an async operation from synchronous code (the `skiff` command tree is synchronous).
func blockingAwait(_ body: @escaping @Sendable () async throws -> Void) throws {
    let box = ResultBox()
    let semaphore = DispatchSemaphore(value: 0)
    Task {
        do {
            try await body()
        } catch {
            box.set(error)
        }
        semaphore.signal()
    }
    semaphore.wait()
    if let error = box.get() { throw error }
}

final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var error: (any Error)?
    func set(_ e: any Error) { lock.lock(); error = e; lock.unlock() }
    func get() -> (any Error)? { lock.lock(); defer { lock.unlock() }; return error }
}

/// Output helpers.
enum Print {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    static func json<T: Encodable>(_ value: T) throws {
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func vm(_ vm: Components.Schemas.Vm, _ format: OutputFormat) throws {
        if format == .json { return try json(vm) }
        var lines = [("name", vm.name), ("state", vm.state.rawValue), ("desired", vm.desiredState.rawValue),
                     ("cpus", String(vm.spec.cpus ?? 1)), ("memory", vm.spec.memory ?? "256M"), ("kernel", vm.spec.kernel)]
        if let pid = vm.pid { lines.append(("pid", String(pid))) }
        if let s = vm.apiSocket { lines.append(("control socket", s)) }
        if let c = vm.cgroup { lines.append(("cgroup", c)) }
        lines.append(("qos", vm.spec.qos?._class?.rawValue ?? "normal"))
        lines.append(("restart", vm.spec.restart?.rawValue ?? "never"))
        lines.append(("restarts", String(vm.restartCount)))
        if let e = vm.lastExit { lines.append(("last exit", e.description)) }
        if let log = vm.consoleLog { lines.append(("console log", log)) }
        for (k, v) in lines { print("\(k.padding(toLength: 15, withPad: " ", startingAt: 0)) \(v)") }
    }

    static func table(_ rows: [[String]]) {
        guard let header = rows.first else { return }
        var widths = header.map(\.count)
        for row in rows { for (i, c) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        for row in rows {
            print(row.enumerated().map { i, c in i == row.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  "))
        }
    }
}

/// Unwraps an API response or throws the daemon's error.
func expect<T>(_ value: T?, _ status: Int, _ error: Components.Responses._Error?) throws -> T {
    if let value { return value }
    throw DaemonClientError.from(status: status, error ?? .init(body: .json(.init(code: ._internal, message: "unexpected response"))))
}
