import ArgumentParser
import ClientCommands
import DaemonCommands
import ImageCommands
import VMCommands

#if canImport(Glibc)
import Glibc
#endif

/// The `skiff` command line.
public struct SkiffCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "skiff",
        abstract: "Skiff: virtual machines on Linux KVM.",
        discussion: """
            Exit status: 0 on success; 64 (EX_USAGE) for usage errors: unknown options, malformed or \
            out-of-range values, options that cannot be combined; 1 for other errors, with one line on \
            stderr. 'skiff run' passes on what the guest reports through the debug-exit port, and \
            'skiff image check' exits 2, 3 or 63 as qemu-img check does.
            """,
        version: SkiffVersion.current,
        subcommands: [RunCommand.self, ImageCommand.self, VMCommand.self, SnapshotCommand.self, MigrateCommand.self, ForkCommand.self,
                      // Verbs served by skiffd (the host daemon).
                      CreateCommand.self, StartCommand.self, StopCommand.self, KillCommand.self, RebootCommand.self, PauseCommand.self,
                      ResumeCommand.self, DeleteCommand.self, ShowCommand.self, ListCommand.self, ConsoleCommand.self, LogsCommand.self,
                      ResizeCommand.self, SaveCommand.self, RestoreCommand.self, CloneCommand.self, MoveCommand.self, EventsCommand.self,
                      HostCommand.self, ImagesCommand.self])

    public init() {}
}

extension SkiffCommand {
    /// `skiff migrate NAME --to TARGET` is the daemon-to-daemon move; `skiff migrate URL` (no
    /// `--to`) moves a monitor's VM to a bare `--incoming` monitor. Runs the former and exits
    /// when the arguments ask for it.
    public static func runDaemonMigrateIfAsked(_ arguments: [String]) {
        guard arguments.first == "migrate", arguments.dropFirst().contains(where: { $0 == "--to" || $0.hasPrefix("--to=") }) else { return }
        DaemonMigrateCommand.runAndExit(Array(arguments.dropFirst()))
    }
}
