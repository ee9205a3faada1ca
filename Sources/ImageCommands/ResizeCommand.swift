import ArgumentParser
import Storage

struct ResizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resize", abstract: "Change an image's virtual size (qemu-img resize).")

    @Option(name: .customShort("f"), help: "Image format.")
    var format: String = "qcow2"
    @Flag(name: .long, help: "Allow shrinking (raw only).")
    var shrink = false
    @Argument(help: "Image file.")
    var path: String
    @Argument(help: "New size, or +SIZE / -SIZE relative to the current one.")
    var size: String

    func run() throws {
        let format = try CLI.format(self.format)
        let current = try ImageInfo.inspect(path: path, format: format).virtualSize
        let newSize: UInt64
        if size.hasPrefix("+") {
            let (sum, overflow) = current.addingReportingOverflow(try CLI.parseSize(String(size.dropFirst())))
            guard !overflow else { throw ValidationError("size too large") }
            newSize = sum
        } else if size.hasPrefix("-") {
            let delta = try CLI.parseSize(String(size.dropFirst()))
            guard delta <= current else { throw ValidationError("cannot shrink below zero") }
            newSize = current - delta
        } else {
            newSize = try CLI.parseSize(size)
        }
        try ImageOperations.resize(path: path, format: format, size: newSize, allowShrink: shrink)
        print("Image resized.")
    }
}
