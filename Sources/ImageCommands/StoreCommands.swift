import ArgumentParser
import Storage
import ImageStore

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Add an image to the de-duplicating store.")

    @OptionGroup var store: StoreOptions
    @Option(name: .customShort("f"), help: ArgumentHelp(
        "Source format: raw (default) or qcow2; a file with a qcow2 header needs -f.", valueName: "format"))
    var format: String?
    @Flag(name: .long, help: "Compress new chunks (raw deflate).")
    var compress = false
    @Option(name: .long, help: ArgumentHelp("Average chunk size for a new store (a power of two, 256 to 16M).", valueName: "size"))
    var chunkSize: String = "64K"
    @Flag(name: .long, help: "Replace an image of the same name.")
    var replace = false
    @Flag(name: .customShort("p"), help: "Show progress.")
    var progress = false
    @Option(name: .long, help: ArgumentHelp("Output format: human or json.", valueName: "human|json"))
    var output: OutputFormat = .human
    @Argument(help: ArgumentHelp("Image file to import.", valueName: "source"))
    var source: String
    @Argument(help: ArgumentHelp("Name in the store.", valueName: "name"))
    var name: String

    func run() throws {
        let averageChunk = try CLI.parseSize(chunkSize, option: "--chunk-size")
        guard let averageChunkSize = Int(exactly: averageChunk), averageChunkSize <= 16 << 20 else {
            throw ValidationError("--chunk-size must be a power of two from 256 B to 16 MiB")
        }
        let format: DiskFormat
        if let name = self.format {
            format = try CLI.format(name)
        } else {
            // Raw unless said otherwise; a qcow2 header is not silently stored as raw bytes.
            guard !DiskImage.looksLikeQCOW2(path: source) else {
                throw ValidationError("\(source) has a qcow2 header: pass -f qcow2, or -f raw to import the file as it is")
            }
            format = .raw
        }
        let result = try CLI.run {
            let images = try ImageStore.open(root: store.path, create: true, averageChunkSize: averageChunkSize, compress: compress)
            let device = try DiskImage.open(path: source, format: format, readOnly: true)
            let bar = ProgressBar("import", force: progress)
            let result = try images.importImage(from: device, name: name, replace: replace, progress: bar.handler)
            bar.finish()
            try device.close()
            return result
        }
        if output == .json {
            try CLI.printJSON(result)
        } else {
            print("imported \(name): \(CLI.humanBytes(result.logicalBytes)), \(result.chunks) chunks, "
                + "\(result.newChunks) new (\(CLI.humanBytes(result.newBytes)))")
        }
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write an image from the store to a raw or qcow2 file.")

    @OptionGroup var store: StoreOptions
    @Option(name: .customShort("O"), help: ArgumentHelp("Output format: raw or qcow2.", valueName: "output-format"))
    var outputFormat: String = "qcow2"
    @Flag(name: .customShort("p"), help: "Show progress.")
    var progress = false
    @Argument(help: ArgumentHelp("Name in the store.", valueName: "name"))
    var name: String
    @Argument(help: ArgumentHelp("Destination file (created).", valueName: "destination"))
    var destination: String

    func run() throws {
        let format = try CLI.format(outputFormat)
        let bar = ProgressBar("export", force: progress)
        try CLI.run { try ImageStore.open(root: store.path).export(name: name, to: destination, format: format, progress: bar.handler) }
        bar.finish()
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the store's images with logical and stored bytes and the ratio.")

    @OptionGroup var store: StoreOptions
    @Option(name: .long, help: ArgumentHelp("Output format: human or json.", valueName: "human|json"))
    var output: OutputFormat = .human

    struct Listing: Encodable {
        struct Image: Encodable {
            var name: String
            var size: UInt64
        }
        var images: [Image]
        var stats: ImageStore.Stats
    }

    func run() throws {
        let images = try ImageStore.open(root: store.path)
        let listing = Listing(
            images: try images.imageNames().map { Listing.Image(name: $0, size: try images.manifest(named: $0).size) },
            stats: try images.stats())
        if output == .json {
            try CLI.printJSON(listing)
            return
        }
        for image in listing.images { print("\(image.name)\t\(CLI.humanBytes(image.size))") }
        let s = listing.stats
        print("logical \(CLI.humanBytes(s.logicalBytes)), stored \(CLI.humanBytes(s.storedBytes)), "
            + "ratio \(String(format: "%.2f", s.ratio)) (\(s.chunks) chunks, zeros \(CLI.humanBytes(s.zeroBytes)))")
    }
}

struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove an image from the store (its chunks go at the next gc).")

    @OptionGroup var store: StoreOptions
    @Argument(help: ArgumentHelp("Name in the store.", valueName: "name"))
    var name: String

    func run() throws {
        try CLI.run { try ImageStore.open(root: store.path).remove(name: name) }
    }
}

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc", abstract: "Delete chunks no image references.")

    @OptionGroup var store: StoreOptions
    @Option(name: .long, help: ArgumentHelp("Output format: human or json.", valueName: "human|json"))
    var output: OutputFormat = .human

    func run() throws {
        let result = try ImageStore.open(root: store.path).collectGarbage()
        if output == .json { try CLI.printJSON(result) } else {
            print("removed \(result.removedChunks) chunks (\(CLI.humanBytes(result.freedBytes))), kept \(result.keptChunks)")
        }
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Re-hash every chunk; name the images a bad chunk affects. Exit 1 if any.")

    @OptionGroup var store: StoreOptions
    @Flag(name: .customShort("p"), help: "Show progress.")
    var progress = false
    @Option(name: .long, help: ArgumentHelp("Output format: human or json.", valueName: "human|json"))
    var output: OutputFormat = .human

    func run() throws {
        let bar = ProgressBar("verify", force: progress)
        let result = try ImageStore.open(root: store.path).verify(progress: bar.handler)
        bar.finish()
        if output == .json { try CLI.printJSON(result) } else {
            print("checked \(result.checkedChunks) chunks")
            for hash in result.badChunks { print("damaged chunk \(hash)") }
            for hash in result.missingChunks { print("missing chunk \(hash)") }
            for name in result.affectedImages { print("affected image: \(name)") }
        }
        if !result.isClean { throw ExitCode(1) }
    }
}
