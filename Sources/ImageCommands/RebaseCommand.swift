import ArgumentParser
import Storage

struct RebaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebase", abstract: "Change a qcow2 image's backing file (qemu-img rebase).")

    @Option(name: .customShort("b"), help: ArgumentHelp("New backing file; \"\" removes it (flattens).", valueName: "backing-file"))
    var backing: String
    @Option(name: .customShort("F"), help: ArgumentHelp("New backing file's format (required with a backing file).", valueName: "backing-format"))
    var backingFormat: String?
    @Flag(name: .customShort("u"), help: "Unsafe: rewrite the header only, copy nothing.")
    var unsafe = false
    @Flag(name: .customShort("p"), help: "Show progress.")
    var progress = false
    @Argument(help: ArgumentHelp("qcow2 image.", valueName: "path"))
    var path: String

    func run() throws {
        let newBacking = backing.isEmpty ? nil : backing
        let format = try backingFormat.map(CLI.format)
        if newBacking != nil && format == nil { throw ValidationError("-b needs -F (the backing format is never guessed)") }
        let bar = ProgressBar("rebase", force: progress)
        try CLI.run {
            try ImageOperations.rebase(path: path, newBacking: newBacking, newFormat: format, unsafe: unsafe, progress: bar.handler)
        }
        bar.finish()
    }
}
