import ArgumentParser
import Storage

struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create an empty image (qemu-img create).")

    @Option(name: .customShort("f"), help: "Image format: raw or qcow2.")
    var format: String = "qcow2"
    @Option(name: .customShort("b"), help: "Backing file (qcow2 only).")
    var backing: String?
    @Option(name: .customShort("F"), help: "Backing file format (required with -b).")
    var backingFormat: String?
    @Option(name: .customShort("o"), help: "qcow2 options: cluster_size, compat, refcount_bits, lazy_refcounts.")
    var options: String?
    @Argument(help: "Image file to create.")
    var path: String
    @Argument(help: "Virtual size (bytes, or with k/M/G/T suffix); taken from the backing file if omitted.")
    var size: String?

    func run() throws {
        let format = try CLI.format(self.format)
        let size = try self.size.map(CLI.parseSize)
        var qcow = try CLI.qcow2Options(options, size: size ?? 0)
        if let backing {
            guard format == .qcow2 else { throw ValidationError("only qcow2 images have backing files") }
            guard let backingFormat else { throw ValidationError("-b needs -F (the backing format is never guessed)") }
            qcow.backingFile = backing
            qcow.backingFormat = try CLI.format(backingFormat)
        }
        try ImageOperations.create(path: path, format: format, size: size, options: qcow)
        print("Formatting '\(path)', fmt=\(format.rawValue) size=\(size.map(String.init) ?? "from backing file")")
    }
}
