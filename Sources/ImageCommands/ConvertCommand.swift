import ArgumentParser
import Storage

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert", abstract: "Copy an image into a new file of any format (qemu-img convert).")

    @Option(name: .customShort("f"), help: ArgumentHelp("Source format: raw or qcow2 (required; never guessed).", valueName: "format"))
    var sourceFormat: String?
    @Option(name: .customShort("O"), help: ArgumentHelp("Output format: raw or qcow2.", valueName: "output-format"))
    var outputFormat: String = "raw"
    @Option(name: .customShort("o"), help: ArgumentHelp(
        "qcow2 options: cluster_size=SIZE, compat=0.10|1.1, refcount_bits=N, lazy_refcounts=on|off.", valueName: "options"))
    var options: String?
    @Flag(name: .customShort("p"), help: "Show progress.")
    var progress = false
    @Argument(help: ArgumentHelp("Source image.", valueName: "source"))
    var source: String
    @Argument(help: ArgumentHelp("Destination image (created).", valueName: "destination"))
    var destination: String

    func validate() throws {
        guard sourceFormat != nil else {
            throw ValidationError("pass the source format with -f raw|qcow2 (formats are never guessed)")
        }
    }

    func run() throws {
        let inputFormat = try CLI.format(sourceFormat ?? "")
        let output = try CLI.format(outputFormat)
        let input = try DiskImage.open(path: source, format: inputFormat, readOnly: true)
        let qcow = try CLI.qcow2Options(options, size: input.size)
        let bar = ProgressBar("convert", force: progress)
        try CLI.run {
            try ImageOperations.convert(source: input, to: destination, format: output, options: qcow, progress: bar.handler)
        }
        bar.finish()
        try input.close()
    }
}
