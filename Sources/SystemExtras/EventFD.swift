#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSkiffSystem

/// A Linux eventfd: a counter that other threads, or KVM, signal and that epoll watches.
public final class EventFD: Sendable {
    public let fd: OwnedFileDescriptor

    /// Creates a non-blocking, close-on-exec eventfd.
    public init(initialValue: UInt32 = 0, semaphore: Bool = false) throws(SystemError) {
        var flags = Int32(EFD_CLOEXEC | EFD_NONBLOCK)
        if semaphore { flags |= Int32(EFD_SEMAPHORE) }
        let raw = eventfd(initialValue, flags)
        guard raw >= 0 else { throw .current("eventfd") }
        fd = OwnedFileDescriptor(taking: raw)
    }

    public var rawValue: Int32 { fd.rawValue }

    /// Adds `value` to the counter, waking waiters.
    public func signal(_ value: UInt64 = 1) {
        var v = value
        _ = unsafe withUnsafeBytes(of: &v) { unsafe Glibc.write(fd.rawValue, $0.baseAddress, 8) }
    }

    /// Reads and resets the counter; returns 0 when it was not signalled.
    @discardableResult
    public func consume() -> UInt64 {
        var v: UInt64 = 0
        let n = unsafe withUnsafeMutableBytes(of: &v) { unsafe Glibc.read(fd.rawValue, $0.baseAddress, 8) }
        return n == 8 ? v : 0
    }
}
