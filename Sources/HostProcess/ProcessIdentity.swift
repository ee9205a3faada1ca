#if canImport(Glibc)
import Glibc
#endif

/// A process as the kernel names it: its pid and its start time (field 22 of /proc/PID/stat,
/// clock ticks since boot). A pid alone can be reused; the pair cannot, so a database row that
/// records both can tell its monitor from a stranger that got the same pid.
public struct ProcessIdentity: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    public var pid: Int32
    public var startTime: UInt64

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// The process's state letter and start time, read from `/proc/PID/stat` (nil when the
    /// pid does not exist). `procRoot` is for tests.
    public static func readStat(pid: Int32, procRoot: String = "/proc") -> (state: Character, startTime: UInt64)? {
        guard pid > 0, let text = readSmallFile("\(procRoot)/\(pid)/stat") else { return nil }
        return parseStat(text)
    }

    /// Parses a `/proc/PID/stat` line: the command name may hold spaces and parentheses, so
    /// fields are counted from the last ')'.
    public static func parseStat(_ text: String) -> (state: Character, startTime: UInt64)? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let rest = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
        guard rest.count > 19, let state = rest[0].first, let start = UInt64(rest[19]) else { return nil }
        return (state, start)
    }

    /// The identity of a running process, or nil if it does not exist or is a zombie.
    public static func of(pid: Int32, procRoot: String = "/proc") -> ProcessIdentity? {
        guard let stat = readStat(pid: pid, procRoot: procRoot), stat.state != "Z", stat.state != "X" else { return nil }
        return ProcessIdentity(pid: pid, startTime: stat.startTime)
    }

    /// Whether this very process still runs (same pid, same start time, not a zombie).
    public func isAlive(procRoot: String = "/proc") -> Bool {
        Self.of(pid: pid, procRoot: procRoot) == self
    }

    public var description: String { "pid \(pid) (start \(startTime))" }
}

/// Reads a file of at most 64 KiB (proc and sysfs files); nil when it cannot be read.
func readSmallFile(_ path: String) -> String? {
    SmallFile.read(path).map { String(decoding: $0, as: UTF8.self) }
}

/// Small files read with open(2) and read(2): `/proc` and `/sys` files, pid files. (Foundation's
/// `FileManager.contents(atPath:)` leaks its read buffer when a file whose size stat reports as 0
/// turns out empty, as `/proc/PID/cmdline` of a kernel thread or a zombie does: about 4 KiB a
/// call, which a daemon scanning `/proc` cannot afford.)
public enum SmallFile {
    /// The first `limit` bytes of the file at `path` (the whole file when shorter); nil when it
    /// cannot be opened or read.
    public static func read(_ path: String, limit: Int = 65536) -> [UInt8]? {
        let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let want = min(chunk.count, limit - bytes.count)
            let n = unsafe chunk.withUnsafeMutableBytes { unsafe Glibc.read(fd, $0.baseAddress, want) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }
}
