import ArgumentParser
import ClientCommands
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
        version: SkiffVersion.current,
        subcommands: [RunCommand.self, ImageCommand.self, VMCommand.self, SnapshotCommand.self, MigrateCommand.self, ForkCommand.self])

    public init() {}
}
