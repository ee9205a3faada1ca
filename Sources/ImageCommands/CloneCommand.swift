import ArgumentParser
import Storage

struct CloneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clone", abstract: "Make a thin clone: a qcow2 overlay backed by BASE (milliseconds, no copy).")

    @Option(name: .customShort("F"), help: "Format of BASE; if omitted it is read from BASE's header once and recorded.")
    var baseFormat: String?
    @Option(name: .long, help: "Cluster size of the clone.")
    var clusterSize: String = "64K"
    @Argument(help: "Golden image the clone reads from.")
    var base: String
    @Argument(help: "New qcow2 overlay.")
    var path: String

    func run() throws {
        let format: DiskFormat
        if let baseFormat {
            format = try CLI.format(baseFormat)
        } else {
            format = DiskImage.looksLikeQCOW2(path: base) ? .qcow2 : .raw
            print("base format: \(format.rawValue) (detected; pass -F to set it)")
        }
        try ImageOperations.clone(base: base, baseFormat: format, to: path, clusterSize: try CLI.parseSize(clusterSize))
        print("Created clone '\(path)' backed by '\(base)'")
    }
}
