import ArgumentParser

/// `skiff image ...`: create, inspect, convert and clone disk images, and manage the de-duplicating store.
/// Verbs and flags follow qemu-img where it has the verb.
public struct ImageCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Create, inspect, convert and clone disk images; manage the image store.",
        discussion: """
            Sizes: a number is bytes; a unit B, K, M, G, T, P or E (also KB, KiB, ...; powers of 1024) \
            multiplies it, e.g. 10G or 1.5T, the same spellings as 'skiff run --memory'.

            Formats are never guessed: resize and check take qcow2 unless -f says raw, import takes raw \
            unless -f says qcow2, convert always needs -f; a file whose header disagrees is refused with \
            a hint ("pass -f raw") rather than opened as something else. Only 'info' (for display) and \
            'clone' without -F (which records and prints what it saw) read a header to decide.

            Exit status: 0 on success, 64 for usage errors (unknown options, malformed or out-of-range \
            values, a missing -f), 1 for other errors; 'check' also exits 2 (corrupt), 3 (leaks only) \
            and 63 (a format without checks), as qemu-img does.
            """,
        subcommands: [
            CreateCommand.self, InfoCommand.self, CheckCommand.self, ConvertCommand.self, CloneCommand.self,
            CommitCommand.self, RebaseCommand.self, ResizeCommand.self, ImportCommand.self, ExportCommand.self,
            ListCommand.self, RemoveCommand.self, GCCommand.self, VerifyCommand.self,
        ])

    public init() {}
}
