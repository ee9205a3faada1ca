#if canImport(Glibc)
import Glibc
#endif

/// Minimal non-blocking AF_UNIX stream sockets for harnesses that play the host side.
enum FuzzUnixSocket {
    private static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        unsafe withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { unsafe raw[i] = b }
            unsafe raw[bytes.count] = 0
        }
        return unsafe withUnsafePointer(to: &address) {
            unsafe $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    private static func makeSocket() -> Int32 {
        socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    /// A listening socket at `path` (an old file there is removed first); -1 on failure.
    static func listen(path: String) -> Int32 {
        unsafe unlink(path)
        let fd = makeSocket()
        guard fd >= 0 else { return -1 }
        let ok = unsafe withAddress(path) { unsafe bind(fd, $0, $1) == 0 } ?? false
        guard ok, Glibc.listen(fd, 64) == 0 else {
            close(fd)
            return -1
        }
        return fd
    }

    /// A socket connecting to `path` (the connection may still be in progress); -1 on failure.
    static func connect(path: String) -> Int32 {
        let fd = makeSocket()
        guard fd >= 0 else { return -1 }
        let ok = unsafe withAddress(path) { unsafe Glibc.connect(fd, $0, $1) == 0 || errno == EINPROGRESS || errno == EAGAIN } ?? false
        if !ok {
            close(fd)
            return -1
        }
        return fd
    }

    /// Accepts one pending connection (made non-blocking); -1 if none.
    static func accept(_ listener: Int32) -> Int32 {
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { return -1 }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }
}
