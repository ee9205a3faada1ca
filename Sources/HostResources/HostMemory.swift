import Foundation

/// The host's CPUs and memory, and how pressed its memory is.
public enum HostMemory {
    /// Online CPUs.
    public static var cpus: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// MemTotal and MemAvailable of /proc/meminfo, in bytes.
    public static func meminfo(path: String = "/proc/meminfo") -> (total: UInt64, available: UInt64)? {
        guard let text = SysFS.read(path) else { return nil }
        let kv = SysFS.keyValues(text)
        guard let total = kv["MemTotal"] else { return nil }
        return (UInt64(max(0, total)) * 1024, UInt64(max(0, kv["MemAvailable"] ?? 0)) * 1024)
    }

    /// Memory pressure stall information (/proc/pressure/memory).
    public struct Pressure: Sendable, Equatable {
        /// Share of the last 10 s in which some task stalled on memory (percent).
        public var some10: Double
        /// Share in which all non-idle tasks stalled (percent).
        public var full10: Double

        public init(some10: Double, full10: Double) {
            self.some10 = some10
            self.full10 = full10
        }
    }

    public static func pressure(path: String = "/proc/pressure/memory") -> Pressure? {
        guard let text = SysFS.read(path) else { return nil }
        return parsePressure(text)
    }

    /// Parses PSI text: `some avg10=0.00 avg60=... total=...` and `full ...`.
    public static func parsePressure(_ text: String) -> Pressure? {
        var some: Double?
        var full: Double?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let kind = fields.first else { continue }
            let avg10 = fields.first { $0.hasPrefix("avg10=") }.flatMap { Double($0.dropFirst(6)) }
            if kind == "some" { some = avg10 } else if kind == "full" { full = avg10 }
        }
        guard let some else { return nil }
        return Pressure(some10: some, full10: full ?? 0)
    }

    /// Resident and proportional memory of a process (bytes): VmRSS of /proc/PID/status and
    /// Pss of /proc/PID/smaps_rollup.
    public static func process(pid: Int32, procRoot: String = "/proc") -> (rss: UInt64, pss: UInt64?)? {
        guard let status = SysFS.read("\(procRoot)/\(pid)/status") else { return nil }
        let rss = SysFS.keyValues(status)["VmRSS"] ?? 0
        let pss = SysFS.read("\(procRoot)/\(pid)/smaps_rollup").flatMap { SysFS.keyValues($0)["Pss"] }
        return (UInt64(max(0, rss)) * 1024, pss.map { UInt64(max(0, $0)) * 1024 })
    }
}
