#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Start-up phase timestamps for benchmarks: with SKIFF_TRACE_START set, each phase of
/// building a VM is stamped (CLOCK_MONOTONIC) and the list is printed with the vCPU start.
public enum StartTrace {
    /// Whether SKIFF_TRACE_START is set.
    public static let enabled = unsafe getenv("SKIFF_TRACE_START") != nil
    private static let marks = Mutex<[(String, Int64)]>([])

    /// CLOCK_MONOTONIC in nanoseconds.
    public static func now() -> Int64 {
        var ts = timespec()
        unsafe clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// Records that `phase` ended now.
    public static func mark(_ phase: String) {
        guard enabled else { return }
        let t = now()
        marks.withLock { $0.append((phase, t)) }
    }

    /// "phase=ns phase=ns …".
    public static var summary: String {
        marks.withLock { $0.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }
    }
}
