import ArgumentParser
import Storage

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a qcow2 image's metadata (qemu-img check).",
        discussion: "Exit status: 0 clean, 2 corrupt, 3 leaked clusters only, 63 for a format without checks (raw), 64 for usage errors, 1 when the image cannot be read.")

    enum Repair: String, ExpressibleByArgument { case leaks, all }

    @Option(name: .customShort("f"), help: ArgumentHelp(
        "Image format: qcow2 (default) or raw; a file that is not qcow2 needs -f.", valueName: "format"))
    var format: String?
    @Option(name: .customShort("r"), help: ArgumentHelp("Repair leaked clusters, or all errors.", valueName: "leaks|all"))
    var repair: Repair?
    @Option(name: .long, help: ArgumentHelp("Output format: human or json.", valueName: "human|json"))
    var output: OutputFormat = .human
    @Argument(help: ArgumentHelp("Image file.", valueName: "path"))
    var path: String

    func run() throws {
        guard try CLI.existingImageFormat(format, path: path) == .qcow2 else {
            print("This image format does not support checks")
            throw ExitCode(63)
        }
        let image = try DiskImage.openQCOW2(path: path, readOnly: repair == nil)
        let result = try image.check(repairing: repair != nil)
        try image.close()
        if output == .json {
            try CLI.printJSON(result)
        } else {
            for message in result.messages { print(message) }
            if result.leaksFixed > 0 || result.corruptionsFixed > 0 {
                print("The following inconsistencies were found and repaired:")
                print("    \(result.leaksFixed) leaked clusters")
                print("    \(result.corruptionsFixed) corruptions")
            }
            if result.exitCode == 0 {
                print("No errors were found on the image.")
            } else {
                if result.corruptions > 0 { print("\(result.corruptions) errors were found on the image.") }
                if result.leaks > 0 { print("\(result.leaks) leaked clusters were found on the image.") }
            }
            print("\(result.allocatedClusters)/\(result.totalClusters) = "
                + "\(String(format: "%.2f", result.totalClusters == 0 ? 0 : Double(result.allocatedClusters) * 100 / Double(result.totalClusters)))% allocated")
            print("Image end offset: \(result.imageEndOffset)")
        }
        if result.exitCode != 0 { throw ExitCode(result.exitCode) }
    }
}
