import ArgumentParser
import DaemonClient
import Foundation
import SkiffAPI
import SystemExtras

/// `skiff console NAME`: the VM's serial console, interactively. Recent output comes first;
/// Ctrl-] or Ctrl-A then x detaches (the VM keeps running). One client at a time types;
/// others (and `--read-only`) watch.
public struct ConsoleCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "console", abstract: "Attach to a VM's serial console through skiffd (Ctrl-] or Ctrl-A x detaches).")
    @Argument var name: String
    @Flag(name: .customLong("read-only"), help: "Watch only; never type into the console.") var readOnly = false
    @OptionGroup var server: DaemonOptions
    public init() {}

    /// Whether `byte` (after `previous`) is a detach key: Ctrl-] alone, or Ctrl-A then x.
    static func isDetach(_ byte: UInt8, after previous: UInt8?) -> Bool {
        byte == 0x1D || (previous == 0x01 && (byte == 0x78 || byte == 0x58))
    }

    public func run() throws {
        let ws: ConsoleWebSocket
        do {
            ws = try ConsoleWebSocket(socketPath: server.socketPath, vm: name, write: !readOnly)
        } catch {
            throw DaemonOptions.explain(error, socket: server.socketPath)
        }
        let terminal = isatty(0) != 0 ? TerminalMode(rawModeFor: 0) : nil
        defer { terminal?.restore() }
        if isatty(2) != 0 { FileHandle.standardError.write(Data("skiff: attached to \(name); Ctrl-] or Ctrl-A x detaches\r\n".utf8)) }
        let input = Thread { [readOnly] in
            var previous: UInt8?
            var buffer = [UInt8](repeating: 0, count: 1024)
            var pendingEscape = false
            while true {
                let n = unsafe buffer.withUnsafeMutableBytes { unsafe read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    // Standard input ended: keep watching until the daemon closes.
                    return
                }
                var out: [UInt8] = []
                for b in buffer[0..<n] {
                    if Self.isDetach(b, after: previous) {
                        // What was typed before the detach key in the same read still goes.
                        if !readOnly, !out.isEmpty { try? ws.send(out) }
                        ws.close()
                        ws.shutdown()
                        return
                    }
                    if pendingEscape { out.append(0x01); pendingEscape = false }
                    if b == 0x01 { pendingEscape = true } else { out.append(b) }
                    previous = b
                }
                if !readOnly, !out.isEmpty { try? ws.send(out) }
            }
        }
        input.start()
        while true {
            let frame: ConsoleWebSocket.Frame
            do { frame = try ws.receive() } catch { break }
            switch frame {
            case .data(let bytes): FileHandle.standardOutput.write(Data(bytes))
            case .text(let t): FileHandle.standardError.write(Data(t.utf8))
            case .closed:
                if isatty(2) != 0 { FileHandle.standardError.write(Data("\r\nskiff: detached from \(name)\r\n".utf8)) }
                return
            }
        }
    }
}

/// `skiff logs NAME [-f]`: the console log (PATH.1 + PATH, the recent output).
public struct LogsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a VM's console log through skiffd (-f follows it).")
    @Argument var name: String
    @Flag(name: .shortAndLong, help: "Keep printing new output.") var follow = false
    @Option(help: ArgumentHelp("Print at most this many of the last bytes (default 64 KiB).", valueName: "bytes")) var bytes: Int = 65536
    @OptionGroup var server: DaemonOptions
    public init() {}

    public func run() throws {
        let name = self.name
        let follow = self.follow
        let bytes = max(1, min(self.bytes, 4 << 20))
        try server.run { c in
            var offset: Int64? = nil
            while true {
                let out = try await c.client.getConsoleLog(path: .init(name: name), query: .init(bytes: offset == nil ? bytes : 1 << 20, offset: offset))
                switch out {
                case .ok(let r):
                    let data = try await Data(collecting: try r.body.binary, upTo: 8 << 20)
                    if !data.isEmpty { FileHandle.standardOutput.write(data) }
                    offset = r.headers.skiffLogEnd
                    if !follow { return }
                    if data.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
                case .default(let s, let e): throw DaemonClientError.from(status: s, e)
                }
            }
        }
    }
}
