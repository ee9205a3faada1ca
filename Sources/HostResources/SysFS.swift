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

    /// Writes `value` to an existing file in one write, as `echo value > file` does (the file
    /// is truncated first, which kernel interface files ignore).
    public static func write(_ value: String, to path: String) throws(ResourceError) {
        let fd = unsafe open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw ResourceError(unsafe "cannot open \(path) for writing (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        let bytes = Array(value.utf8)
        let n = unsafe bytes.withUnsafeBytes { unsafe Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else {
            throw ResourceError(unsafe "cannot write '\(value)' to \(path): \(n < 0 ? String(cString: strerror(errno)) : "short write")")
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
