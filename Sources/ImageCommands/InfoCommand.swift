import ArgumentParser
import Storage

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show an image's format, sizes and backing file (qemu-img info).")

    @Option(name: .customShort("f"), help: ArgumentHelp(
        "Image format; if omitted it is read from the header (for this display only).", valueName: "format"))
    var format: String?
    @Option(name: .long, help: ArgumentHelp("Output format: human or json.", valueName: "human|json"))
    var output: OutputFormat = .human
    @Argument(help: ArgumentHelp("Image file.", valueName: "path"))
    var path: String

    func run() throws {
        let format = try self.format.map(CLI.format) ?? (DiskImage.looksLikeQCOW2(path: path) ? .qcow2 : .raw)
        let info = try ImageInfo.inspect(path: path, format: format)
        if output == .json {
            try CLI.printJSON(info)
            return
        }
        print("image: \(info.filename)")
        print("file format: \(info.format)")
        print("virtual size: \(CLI.humanBytes(info.virtualSize)) (\(info.virtualSize) bytes)")
        print("disk size: \(CLI.humanBytes(info.actualSize))")
        if let cluster = info.clusterSize { print("cluster_size: \(cluster)") }
        if let backing = info.backingFilename {
            print("backing file: \(backing)")
            if let format = info.backingFilenameFormat { print("backing file format: \(format)") }
        }
        if let data = info.formatSpecific?.data {
            print("Format specific information:")
            print("    compat: \(data.compat)")
            print("    compression type: \(data.compressionType)")
            print("    lazy refcounts: \(data.lazyRefcounts)")
            print("    refcount bits: \(data.refcountBits)")
            print("    corrupt: \(data.corrupt)")
            print("    extended l2: \(data.extendedL2)")
        }
        if let dirty = info.dirtyFlag, dirty { print("dirty flag: true") }
    }
}
