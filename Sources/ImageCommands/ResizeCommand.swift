import ArgumentParser
import Storage

struct ResizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resize", abstract: "Change an image's virtual size (qemu-img resize).",
        usage: "skiff image resize [-f <format>] [--shrink] <path> [+|-]<size>",
        discussion: "A size to subtract needs no '--': 'skiff image resize -f raw --shrink disk.raw -1G' works as written (so does '... disk.raw -- -1G').")

    @Option(name: .customShort("f"), help: ArgumentHelp(
        "Image format: qcow2 (default) or raw; a file that is not qcow2 needs -f.", valueName: "format"))
    var format: String?
    @Flag(name: .long, help: "Allow shrinking (raw only).")
    var shrink = false
    @Argument(help: ArgumentHelp("Image file.", valueName: "path"))
    var path: String
    /// The size, gathered with every word ArgumentParser does not know so that `-1G`, which
    /// looks like an option, needs no `--`; `validate()` sorts sizes from mistyped options.
    @Argument(parsing: .allUnrecognized, help: ArgumentHelp(
        "New size, or +SIZE / -SIZE relative to the current one (a number is bytes; K, M, G, T suffixes).",
        valueName: "size"))
    var sizeWords: [String] = []

    /// A new size as given: absolute or relative.
    enum Change: Equatable {
        case absolute(UInt64)
        case grow(UInt64)
        case shrink(UInt64)

        /// Parses `SIZE`, `+SIZE` or `-SIZE`; nil when `text` is none of these.
        init?(_ text: String) {
            let sign = text.first
            let magnitude = sign == "+" || sign == "-" ? String(text.dropFirst()) : text
            guard let bytes = try? CLI.parseSize(magnitude) else { return nil }
            switch sign {
            case "+": self = .grow(bytes)
            case "-": self = .shrink(bytes)
            default: self = .absolute(bytes)
            }
        }

        /// The new size of an image of `current` bytes.
        func apply(to current: UInt64) throws(ValidationError) -> UInt64 {
            switch self {
            case .absolute(let size):
                return size
            case .grow(let delta):
                let (sum, overflow) = current.addingReportingOverflow(delta)
                guard !overflow else { throw ValidationError("+\(delta) bytes makes the image too large") }
                return sum
            case .shrink(let delta):
                guard delta <= current else {
                    throw ValidationError("cannot shrink by \(delta) bytes: the image has \(current)")
                }
                return current - delta
            }
        }
    }

    /// The one size among the gathered words.
    func change() throws(ValidationError) -> Change {
        var found: Change?
        var words = sizeWords
        // ArgumentParser hands on the `--` terminator too; what follows it is a size or an extra argument.
        if let terminator = words.firstIndex(of: "--") { words.remove(at: terminator) }
        for word in words {
            let change = Change(word)
            if found == nil, let change {
                found = change
            } else if change == nil && word.hasPrefix("-") {
                throw ValidationError("Unknown option '\(word)'")
            } else if change == nil && found == nil {
                // A malformed size: the size grammar says what is wrong.
                _ = try CLI.parseSize(word.hasPrefix("+") ? String(word.dropFirst()) : word)
                throw ValidationError("invalid size '\(word)'")
            } else {
                throw ValidationError("Unexpected argument '\(word)'")
            }
        }
        guard let found else { throw ValidationError("Missing expected argument '<size>'") }
        return found
    }

    func validate() throws {
        _ = try change()
    }

    func run() throws {
        let change = try change()
        let format = try CLI.existingImageFormat(self.format, path: path)
        try CLI.run {
            let current = try ImageInfo.inspect(path: path, format: format).virtualSize
            try ImageOperations.resize(path: path, format: format, size: try change.apply(to: current), allowShrink: shrink)
        }
        print("Image resized.")
    }
}
