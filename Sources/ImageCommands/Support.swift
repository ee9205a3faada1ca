import ArgumentParser
import Foundation
import Storage

/// `--output human|json`, as qemu-img spells it.
enum OutputFormat: String, ExpressibleByArgument, Sendable {
    case human
    case json
}

/// Shared option: where the image store lives.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "Image store directory (default: $SKIFF_IMAGE_STORE or /var/lib/skiff/images).")
    var store: String?

    var path: String {
        store ?? ProcessInfo.processInfo.environment["SKIFF_IMAGE_STORE"] ?? "/var/lib/skiff/images"
    }
}

enum CLI {
    /// Parses sizes like qemu-img: plain bytes or a number with k/K, M, G, T, P, E suffix (powers of 1024).
    static func parseSize(_ text: String) throws -> UInt64 {
        let multipliers: [Character: UInt64] = [
            "b": 1, "B": 1, "k": 1 << 10, "K": 1 << 10, "m": 1 << 20, "M": 1 << 20, "g": 1 << 30, "G": 1 << 30,
            "t": 1 << 40, "T": 1 << 40, "p": 1 << 50, "P": 1 << 50, "e": 1 << 60, "E": 1 << 60,
        ]
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        if let last = digits.last, let m = multipliers[last] {
            multiplier = m
            digits = digits.dropLast()
        }
        guard let value = UInt64(digits) else { throw ValidationError("invalid size '\(text)'") }
        let (result, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw ValidationError("size '\(text)' is too large") }
        return result
    }

    /// Parses `-o key=value,...` qcow2 options into create options.
    static func qcow2Options(_ text: String?, size: UInt64) throws -> QCOW2CreateOptions {
        var options = QCOW2CreateOptions(size: size)
        guard let text else { return options }
        for pair in text.split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("option '\(pair)' is not key=value") }
            switch parts[0] {
            case "cluster_size": options.clusterSize = try parseSize(parts[1])
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
