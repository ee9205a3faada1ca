#if canImport(Glibc)
import Glibc
#endif

/// One failure of the jailer. Its description is the single line printed after
/// `skiff-jailer: error: `.
public enum JailError: Error, Equatable, CustomStringConvertible {
    /// Bad options (exit status 64, like the monitor's usage errors).
    case usage(String)
    /// Something the jail needs is missing or unsuitable: a file, an id already in use, a uid.
    case invalid(String)
    /// A system call of one step failed: `step` names the step and its object.
    case system(step: String, errno: Int32)

    public var description: String {
        switch self {
        case .usage(let m), .invalid(let m): return m
        case .system(let step, let e): return "\(step): \(JailError.text(errno: e))"
        }
    }

    /// The process exit status for this error.
    public var exitStatus: Int32 {
        if case .usage = self { return 64 }
        return 1
    }

    static func text(errno e: Int32) -> String { unsafe String(cString: strerror(e)) }

    /// `.system` from the current errno.
    static func current(_ step: String) -> JailError { .system(step: step, errno: errno) }

    /// `.system` from a C wrapper's negative errno result.
    static func from(_ result: Int32, _ step: String) throws(JailError) {
        if result < 0 { throw .system(step: step, errno: -result) }
    }
}
