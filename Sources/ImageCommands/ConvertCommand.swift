import ArgumentParser
import Storage

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert", abstract: "Copy an image into a new file of any format (qemu-img convert).")

    @Option(name: .customShort("f"), help: "Source format (raw or qcow2); never guessed.")
    var sourceFormat: String?
    @Option(name: .customShort("O"), help: "Output format: raw or qcow2.")
    var outputFormat: String = "raw"
    @Option(name: .customShort("o"), help: "qcow2 options: cluster_size, compat, refcount_bits, lazy_refcounts.")
    var options: String?
    @Flag(name: .customShort("p"), help: "Show progress.")
    var progress = false
    @Argument(help: "Source image.")
    var source: String
    @Argument(help: "Destination image (created).")
    var destination: String

    func run() throws {
        guard let sourceFormat else {
            throw ValidationError("pass the source format with -f raw|qcow2 (formats are never guessed)")
        }
        let input = try DiskImage.open(path: source, format: try CLI.format(sourceFormat), readOnly: true)
        let qcow = try CLI.qcow2Options(options, size: input.size)
        let bar = ProgressBar("convert", force: progress)
        try ImageOperations.convert(source: input, to: destination, format: try CLI.format(outputFormat),
                                    options: qcow, progress: bar.handler)
        bar.finish()
        try input.close()
    }
}
