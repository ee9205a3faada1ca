#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem

/// A non-blocking CLOCK_MONOTONIC timerfd, for event loops that wait in epoll.
public final class TimerFD: Sendable {
    public let fd: OwnedFileDescriptor

    public init() throws(SystemError) {
        let raw = csystem_timerfd_create()
        guard raw >= 0 else { throw SystemError("timerfd_create", code: -raw) }
        fd = OwnedFileDescriptor(taking: raw)
    }

    /// Fires every `seconds` (0 disarms).
    public func setPeriodic(_ seconds: Double) {
        let ns = UInt64(max(0, seconds) * 1e9)
        _ = csystem_timerfd_set(fd.rawValue, ns, ns)
    }

    /// Fires once after `nanoseconds`; 0 disarms.
    public func fireOnce(after nanoseconds: UInt64) {
        _ = csystem_timerfd_set(fd.rawValue, nanoseconds, 0)
    }

    /// The epoll events to watch it with.
    public static let readableEvents: UInt32 = EPOLLIN.rawValue

    /// Reads the expiry count so the descriptor stops being readable.
    public func consume() {
        var v: UInt64 = 0
        _ = unsafe withUnsafeMutableBytes(of: &v) { unsafe read(fd.rawValue, $0.baseAddress, 8) }
    }
}
