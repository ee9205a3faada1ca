import CVirtioHost
import SystemExtras
#if canImport(Glibc)
import Glibc
#endif

/// Non-blocking AF_UNIX stream sockets for the vsock host side.
enum UnixSocket {
    /// Longest path that fits `sockaddr_un.sun_path` with its NUL.
    static let maxPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    private static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= maxPathLength, !bytes.contains(0) else { return nil }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        unsafe withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { unsafe p[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return unsafe withUnsafePointer(to: &addr) { p in
            unsafe p.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe body($0, length) }
        }
    }

    private static func makeSocket() throws(SystemError) -> OwnedFileDescriptor {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .current("socket AF_UNIX") }
        return OwnedFileDescriptor(taking: fd)
    }

    /// Binds and listens on `path`, which must not exist yet.
    static func listen(path: String, backlog: Int32 = 128) throws(SystemError) -> OwnedFileDescriptor {
        let fd = try makeSocket()
        var failure: SystemError?
        let r = unsafe withAddress(path) { addr, len -> Int32 in
            if unsafe bind(fd.rawValue, addr, len) != 0 {
                failure = errno == EADDRINUSE ? SystemError("bind \(path): the path already exists", code: EADDRINUSE) : .current("bind \(path)")
                return -1
            }
            if Glibc.listen(fd.rawValue, backlog) != 0 {
                failure = .current("listen \(path)")
                return -1
            }
            return 0
        }
        guard let r else { throw SystemError("socket path '\(path)' must be 1-\(maxPathLength) bytes", code: ENAMETOOLONG) }
        if r != 0, let failure { throw failure }
        return fd
    }

    /// Connects to the listener at `path` without waiting; nil if it is absent, refuses, or its backlog is full.
    static func connect(path: String) -> OwnedFileDescriptor? {
        guard let fd = try? makeSocket() else { return nil }
        let r = unsafe withAddress(path) { addr, len -> Int32 in
            while true {
                let r = unsafe Glibc.connect(fd.rawValue, addr, len)
                if r == 0 || errno != EINTR { return r }
            }
        }
        return r == 0 ? fd : nil
    }

    /// Accepts one connection: the descriptor, or the errno (EAGAIN when none is waiting).
    static func accept(_ listener: Int32) -> Result<OwnedFileDescriptor, SystemError> {
        let fd = cvh_accept(listener)
        return fd >= 0 ? .success(OwnedFileDescriptor(taking: fd)) : .failure(SystemError("accept", code: -fd))
    }

    /// The (device, inode) of `path`, to remove only the socket this process created.
    static func identity(path: String) -> (UInt64, UInt64)? {
        var st = stat()
        guard unsafe lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }
}
