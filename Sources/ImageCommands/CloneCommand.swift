import ArgumentParser
import Storage

struct CloneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clone", abstract: "Make a thin clone: a qcow2 overlay backed by BASE (milliseconds, no copy).")

    @Option(name: .customShort("F"), help: ArgumentHelp(
        "Format of BASE; if omitted it is read from BASE's header once, recorded and printed.", valueName: "base-format"))
    var baseFormat: String?
    @Option(name: .long, help: ArgumentHelp("Cluster size of the clone (a power of two, 512 to 2M).", valueName: "size"))
    var clusterSize: String = "64K"
    @Argument(help: ArgumentHelp("Golden image the clone reads from.", valueName: "base"))
    var base: String
    @Argument(help: ArgumentHelp("New qcow2 overlay.", valueName: "path"))
    var path: String

    func run() throws {
        let clusterSize = try CLI.parseSize(clusterSize, option: "--cluster-size")
        let format: DiskFormat
        if let baseFormat {
            format = try CLI.format(baseFormat)
        } else {
            format = DiskImage.looksLikeQCOW2(path: base) ? .qcow2 : .raw
            print("base format: \(format.rawValue) (detected; pass -F to set it)")
        }
        try CLI.run { try ImageOperations.clone(base: base, baseFormat: format, to: path, clusterSize: clusterSize) }
        print("Created clone '\(path)' backed by '\(base)'")
    }
}
