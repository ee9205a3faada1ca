import ArgumentParser
import Storage

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a qcow2 image's metadata (qemu-img check). Exit 0 clean, 2 corrupt, 3 leaks only.")

    enum Repair: String, ExpressibleByArgument { case leaks, all }

    @Option(name: .customShort("f"), help: "Image format (qcow2).")
    var format: String = "qcow2"
    @Option(name: .customShort("r"), help: "Repair: leaks or all.")
    var repair: Repair?
    @Option(name: .long, help: "human or json.")
    var output: OutputFormat = .human
    @Argument(help: "Image file.")
    var path: String

    func run() throws {
        guard try CLI.format(format) == .qcow2 else {
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
