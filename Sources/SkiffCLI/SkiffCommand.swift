import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// The `skiff` command line.
public struct SkiffCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "skiff",
        abstract: "Skiff: virtual machines on Linux KVM.",
        subcommands: [RunCommand.self])

    public init() {}

    /// Parses `arguments`, runs the command and exits: errors become one line on stderr.
    public static func runAndExit(_ arguments: [String]? = nil) -> Never {
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            exit(0)
        } catch {
            let code = exitCode(for: error)
            if code == .success || code == .validationFailure && isHelpRequest(error) {
                print(fullMessage(for: error))
                exit(code.rawValue)
            }
            if let e = error as? ExitCode {
                exit(e.rawValue)
            }
            let message = Self.message(for: error)
            if !message.isEmpty {
                fputs("skiff: error: \(message)\n", stderr)
            }
            exit(code == .success ? 1 : code.rawValue)
        }
    }

    private static func isHelpRequest(_ error: Error) -> Bool {
        exitCode(for: error) == .success
    }
}
