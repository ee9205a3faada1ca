import ArgumentParser
import Storage

struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create an empty image (qemu-img create).")

    @Option(name: .customShort("f"), help: ArgumentHelp("Image format: raw or qcow2.", valueName: "format"))
    var format: String = "qcow2"
    @Option(name: .customShort("b"), help: ArgumentHelp("Backing file (qcow2 only).", valueName: "backing-file"))
    var backing: String?
    @Option(name: .customShort("F"), help: ArgumentHelp("Backing file format (required with -b).", valueName: "backing-format"))
    var backingFormat: String?
    @Option(name: .customShort("o"), help: ArgumentHelp(
        "qcow2 options: cluster_size=SIZE, compat=0.10|1.1, refcount_bits=N, lazy_refcounts=on|off.", valueName: "options"))
    var options: String?
    @Argument(help: ArgumentHelp("Image file to create.", valueName: "path"))
    var path: String
    @Argument(help: ArgumentHelp(
        "Virtual size: a number is bytes; K, M, G, T, P, E (or KB, KiB, ...) are powers of 1024, e.g. 10G or 1.5T. Taken from the backing file if omitted.",
        valueName: "size"))
    var size: String?

    func run() throws {
        let format = try CLI.format(self.format)
        let size = try self.size.map { try CLI.parseSize($0) }
        var qcow = try CLI.qcow2Options(options, size: size ?? 0)
        if let backing {
            guard format == .qcow2 else { throw ValidationError("only qcow2 images have backing files") }
            guard let backingFormat else { throw ValidationError("-b needs -F (the backing format is never guessed)") }
            qcow.backingFile = backing
            qcow.backingFormat = try CLI.format(backingFormat)
        }
        try CLI.run { try ImageOperations.create(path: path, format: format, size: size, options: qcow) }
        print("Formatting '\(path)', fmt=\(format.rawValue) size=\(size.map(String.init) ?? "from backing file")")
    }
}
