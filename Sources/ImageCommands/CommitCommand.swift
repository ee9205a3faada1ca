import ArgumentParser
import Storage

struct CommitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit", abstract: "Write a clone's changes into its backing file (qemu-img commit).")

    @Flag(name: .customShort("d"), help: "Keep the overlay's data (do not empty it).")
    var keep = false
    @Flag(name: .customShort("p"), help: "Show progress.")
    var progress = false
    @Argument(help: ArgumentHelp("qcow2 overlay.", valueName: "path"))
    var path: String

    func run() throws {
        let bar = ProgressBar("commit", force: progress)
        try ImageOperations.commit(path: path, keepOverlay: keep, progress: bar.handler)
        bar.finish()
        print("Image committed.")
    }
}
