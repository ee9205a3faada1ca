import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// A runtime failure of a command: one line on stderr and exit status 1. What the user typed
/// wrong is a `ValidationError` instead (exit status 64).
public struct CommandFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

extension ParsableCommand {
    /// Parses the process arguments, runs the command and exits. Errors become one line on
    /// stderr (`NAME: error: …`) with no usage dump and no stack trace; `--help` prints help.
    ///
    /// Exit statuses (sysexits.h): 64 (EX_USAGE) for usage errors — ArgumentParser's own
    /// (unknown options, missing or malformed values) and every `ValidationError`, which the
    /// commands throw for out-of-range and inconsistent values; 1 for any other error; or the
    /// status a command chose (`ExitCode`: a guest's debug-exit status, `image check`'s 2/3/63).
    public static func runAndExit(_ arguments: [String]? = nil) -> Never {
        // `skiff run` exec'd as the monitor speaks as `skiff`, as it does in process.
        let name = configuration.commandName.map { $0 == MonitorExec.runName ? "skiff" : $0 } ?? "skiff"
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            Glibc.exit(0)
        } catch let code as ExitCode {
            Glibc.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            let message = Self.message(for: error)
            printError("\(name): error: \(message.isEmpty ? "\(error)" : message)")
            Glibc.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }
}

/// Writes one line to stderr.
func printError(_ line: String) {
    var text = line
    if !text.hasSuffix("\n") { text += "\n" }
    unsafe text.utf8CString.withUnsafeBufferPointer { buf in
        _ = unsafe Glibc.write(2, buf.baseAddress, buf.count - 1)
    }
}
