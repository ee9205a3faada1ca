import ArgumentParser

/// `skiff image ...`: create, inspect, convert and clone disk images, and manage the de-duplicating store.
/// Verbs and flags follow qemu-img where it has the verb.
public struct ImageCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Create, inspect, convert and clone disk images; manage the image store.",
        subcommands: [
            CreateCommand.self, InfoCommand.self, CheckCommand.self, ConvertCommand.self, CloneCommand.self,
            CommitCommand.self, RebaseCommand.self, ResizeCommand.self, ImportCommand.self, ExportCommand.self,
            ListCommand.self, RemoveCommand.self, GCCommand.self, VerifyCommand.self,
        ])

    public init() {}
}
