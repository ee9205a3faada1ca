import ArgumentParser
import ControlProtocol
import Foundation

/// `--api-socket PATH`: the control socket of the VM's monitor (`skiff run`/`skiff-vmm --api-socket`).
struct MonitorOptions: ParsableArguments {
    @Option(name: .customLong("api-socket"), help: ArgumentHelp("Control socket of the running VM.", valueName: "path"))
    var apiSocket: String

    @Option(name: .long, help: ArgumentHelp("Output format: human or json.", valueName: "human|json"))
    var output: OutputFormat = .human

    /// Sends one request and returns the reply; control errors become one line and exit status 1.
    func send(_ request: ControlRequest, timeout: Double = 30) throws -> ControlReply {
        do {
            return try ControlClient(path: apiSocket).send(request, timeout: timeout)
        } catch {
            throw ClientFailure(error.message)
        }
    }

    func validate() throws {
        guard !apiSocket.isEmpty else { throw ValidationError("--api-socket needs a path") }
    }
}

/// `--output human|json`.
enum OutputFormat: String, ExpressibleByArgument, Sendable {
    case human
    case json
}

/// A failure reported by the monitor, printed as one line.
struct ClientFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

enum Output {
    /// Prints an Encodable as JSON (sorted keys, indented).
    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func milliseconds(_ ms: Double) -> String {
        String(format: "%.1f ms", ms)
    }
}
