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
        subcommands: [RunCommand.self, ImageCommand.self, VMCommand.self, SnapshotCommand.self, MigrateCommand.self, ForkCommand.self,
                      // Verbs served by skiffd (the host daemon).
                      CreateCommand.self, StartCommand.self, StopCommand.self, KillCommand.self, RebootCommand.self, PauseCommand.self,
                      ResumeCommand.self, DeleteCommand.self, ShowCommand.self, ListCommand.self, ConsoleCommand.self, LogsCommand.self,
                      ResizeCommand.self, SaveCommand.self, RestoreCommand.self, CloneCommand.self, MoveCommand.self, EventsCommand.self,
                      HostCommand.self])

    public init() {}
}
