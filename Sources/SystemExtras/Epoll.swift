#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSkiffSystem

/// A level-triggered epoll set keyed by caller-chosen 64-bit tokens.
public final class Epoll: Sendable {
    public let fd: OwnedFileDescriptor

    public init() throws(SystemError) {
        let raw = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard raw >= 0 else { throw .current("epoll_create1") }
        fd = OwnedFileDescriptor(taking: raw)
    }

    /// Watches `target` for readability (and `events` extra bits), reporting `token`.
    public func add(_ target: Int32, token: UInt64, events: UInt32 = EPOLLIN.rawValue) throws(SystemError) {
        var ev = unsafe epoll_event()
        unsafe ev.events = events
        unsafe ev.data.u64 = token
        guard unsafe epoll_ctl(fd.rawValue, EPOLL_CTL_ADD, target, &ev) == 0 else { throw .current("epoll_ctl ADD") }
    }

    /// Changes the events watched for `target`.
    public func modify(_ target: Int32, token: UInt64, events: UInt32) throws(SystemError) {
        var ev = unsafe epoll_event()
        unsafe ev.events = events
        unsafe ev.data.u64 = token
        guard unsafe epoll_ctl(fd.rawValue, EPOLL_CTL_MOD, target, &ev) == 0 else { throw .current("epoll_ctl MOD") }
    }

    /// Stops watching `target`.
    public func remove(_ target: Int32) {
        var ev = unsafe epoll_event()
        _ = unsafe epoll_ctl(fd.rawValue, EPOLL_CTL_DEL, target, &ev)
    }

    /// Waits up to `timeoutMilliseconds` (-1 = forever) and returns the ready tokens with their events.
    public func wait(maxEvents: Int = 32, timeoutMilliseconds: Int32) throws(SystemError) -> [(token: UInt64, events: UInt32)] {
        var buffer = unsafe [epoll_event](repeating: epoll_event(), count: maxEvents)
        let n = unsafe epoll_wait(fd.rawValue, &buffer, Int32(maxEvents), timeoutMilliseconds)
        if n < 0 {
            if errno == EINTR { return [] }
            throw .current("epoll_wait")
        }
        return (0..<Int(n)).map { unsafe (buffer[$0].data.u64, buffer[$0].events) }
    }
}
