import ArgumentParser
import Foundation
import Storage
import Units

/// `--output human|json`, as qemu-img spells it.
enum OutputFormat: String, ExpressibleByArgument, Sendable {
    case human
    case json
}

/// Shared option: where the image store lives.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Image store directory (default: $SKIFF_IMAGE_STORE or /var/lib/skiff/images).", valueName: "dir"))
    var store: String?

    var path: String {
        store ?? ProcessInfo.processInfo.environment["SKIFF_IMAGE_STORE"] ?? "/var/lib/skiff/images"
    }
}

enum CLI {
    /// Parses a size with the grammar every size option shares (`Units.ByteSize`); a plain
    /// number is bytes, as in qemu-img. A malformed size is a usage error.
    static func parseSize(_ text: String, option: String? = nil) throws(ValidationError) -> UInt64 {
        do {
            return try ByteSize.parse(text, defaultUnitShift: ByteSize.bytes)
        } catch {
            throw ValidationError(option.map { "\($0): \(error)" } ?? error.description)
        }
    }

    /// Parses `-o key=value,...` qcow2 options into create options.
    static func qcow2Options(_ text: String?, size: UInt64) throws -> QCOW2CreateOptions {
        var options = QCOW2CreateOptions(size: size)
        guard let text else { return options }
        for pair in text.split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("option '\(pair)' is not key=value") }
            switch parts[0] {
            case "cluster_size": options.clusterSize = try parseSize(parts[1], option: "cluster_size")
            case "compat":
                switch parts[1] {
                case "0.10", "v2": options.version = 2
                case "1.1", "v3": options.version = 3
                default: throw ValidationError("compat must be 0.10 or 1.1")
                }
            case "refcount_bits":
                guard let bits = UInt64(parts[1]) else { throw ValidationError("refcount_bits must be a number") }
                options.refcountBits = bits
            case "lazy_refcounts": options.lazyRefcounts = parts[1] == "on" || parts[1] == "true"
            default: throw ValidationError("unsupported option '\(parts[0])'")
            }
        }
        return options
    }

    static func format(_ name: String) throws -> DiskFormat {
        do { return try DiskFormat(name: name) } catch { throw ValidationError("\(error)") }
    }

    /// The format of the existing image at `path`: `-f` when given, otherwise qcow2. A file
    /// that is not qcow2 is refused with a hint rather than opened as whatever it looks like:
    /// formats are never guessed (a raw disk whose guest wrote a qcow2 header stays raw).
    static func existingImageFormat(_ flag: String?, path: String) throws -> DiskFormat {
        if let flag { return try format(flag) }
        // Errors opening the file (missing, a directory, no permission) are reported as they are.
        _ = try ImageFile.open(path: path, readOnly: true, lock: .none)
        guard DiskImage.looksLikeQCOW2(path: path) else {
            throw ValidationError("\(path) is not a qcow2 image; if it is a raw image, pass -f raw (formats are never guessed)")
        }
        return .qcow2
    }

    /// Runs work whose `StorageError.invalidArgument` refusals are about the command line
    /// (option values out of range, a size a format cannot hold, a missing --shrink, a bad
    /// store name): they become usage errors (exit status 64). Everything else stays a
    /// runtime error (exit status 1). Verbs whose refusals are about the image itself (commit
    /// of an image without a backing file) do not use it.
    static func run<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch StorageError.invalidArgument(let text) {
            throw ValidationError(text)
        }
    }

    /// Prints an Encodable as JSON (sorted keys, indented), like qemu-img --output=json.
    static func printJSON<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func humanBytes(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.3g %@", value, units[unit])
    }
}

/// A one-line progress bar on stderr, drawn when stderr is a terminal or when forced (`-p`).
final class ProgressBar {
    private let enabled: Bool
    private let label: String
    private var lastPercent = -1

    init(_ label: String, force: Bool) {
        self.label = label
        enabled = force || isatty(STDERR_FILENO) != 0
    }

    func update(_ done: UInt64, _ total: UInt64) {
        guard enabled else { return }
        let percent = total == 0 ? 100 : Int(Double(done) / Double(total) * 100)
        guard percent != lastPercent else { return }
        lastPercent = percent
        let width = 30
        let filled = width * percent / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(percent)%".utf8))
    }

    func finish() {
        guard enabled, lastPercent >= 0 else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }

    var handler: ProgressHandler { { [self] done, total in update(done, total) } }
}
