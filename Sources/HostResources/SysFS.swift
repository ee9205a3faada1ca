import Foundation

/// Reading and writing the small text files of /proc, /sys and cgroup trees.
public enum SysFS {
    /// The file's text without the trailing newline; nil when it cannot be read.
    public static func read(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: 1 << 20) else { return nil }
        var text = String(decoding: data, as: UTF8.self)
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    /// The file's value as an integer.
    public static func readInt(_ path: String) -> Int64? {
        read(path).flatMap { Int64($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// Writes `value` to an existing file (as a kernel interface file wants: one write).
    public static func write(_ value: String, to path: String) throws(ResourceError) {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw ResourceError("cannot open \(path) for writing (\(String(cString: strerror(errno))))")
        }
        defer { try? handle.close() }
        do {
            try handle.write(contentsOf: Data(value.utf8))
        } catch {
            throw ResourceError("cannot write '\(value)' to \(path): \(error.localizedDescription)")
        }
    }

    /// `key value` lines (cpu.stat, memory.stat, ksm_stat, meminfo) as a dictionary; a value's
    /// unit suffix ("kB") is dropped.
    public static func keyValues(_ text: String) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == ":" || $0 == "\t" })
            guard parts.count >= 2, let v = Int64(parts[1]) else { continue }
            result[String(parts[0])] = v
        }
        return result
    }
}

/// A host resource could not be read or changed.
public struct ResourceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
