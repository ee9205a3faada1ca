#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSkiffSystem

/// An open file descriptor that is closed when its owner goes away.
public final class OwnedFileDescriptor: Sendable {
    /// The raw descriptor; valid for the owner's lifetime.
    public let rawValue: Int32

    /// Takes ownership of `rawValue`.
    public init(taking rawValue: Int32) {
        self.rawValue = rawValue
    }

    deinit { close(rawValue) }

    /// Opens `path` with `flags` (O_CLOEXEC is added).
    public static func open(_ path: String, flags: Int32, mode: UInt32 = 0o644) throws(SystemError) -> OwnedFileDescriptor {
        let fd = try retryingOnInterrupt("open \(path)") { unsafe csystem_open(path, flags | O_CLOEXEC, mode) }
        return OwnedFileDescriptor(taking: fd)
    }

    /// Reads the whole file at `path`, refusing files larger than `limit` bytes.
    public static func readAll(path: String, limit: Int) throws(SystemError) -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY)
        var st = stat()
        guard unsafe fstat(fd.rawValue, &st) == 0 else { throw .current("stat \(path)") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw SystemError("read \(path): not a regular file", code: EINVAL) }
        guard st.st_size <= limit else { throw SystemError("read \(path): larger than \(limit) bytes", code: EFBIG) }
        let size = Int(st.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        var failure: Int32 = 0
        unsafe bytes.withUnsafeMutableBytes { buf in
            guard let base = buf.baseAddress else { return }
            while done < size {
                let n = unsafe pread(fd.rawValue, base + done, size - done, off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                if n == 0 { return }
                done += n
            }
        }
        if failure != 0 { throw SystemError("read \(path)", code: failure) }
        guard done == size else { throw SystemError("read \(path): file shrank while reading", code: EIO) }
        return bytes
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            guard let base = bytes.baseAddress else { return }
            let n = try retryingOnInterrupt("write") { unsafe Glibc.write(rawValue, base + done, bytes.count - done) }
            done += n
        }
    }

    /// Sets or clears O_NONBLOCK.
    public func setNonBlocking(_ on: Bool) throws(SystemError) {
        let flags = csystem_fcntl_getfl(rawValue)
        guard flags >= 0 else { throw .current("fcntl F_GETFL") }
        let updated = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        guard csystem_fcntl_setfl(rawValue, updated) >= 0 else { throw .current("fcntl F_SETFL") }
    }
}
