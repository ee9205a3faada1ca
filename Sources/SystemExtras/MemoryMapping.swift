#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A region of host memory from mmap, unmapped when its owner goes away.
@safe public final class MemoryMapping: @unchecked Sendable {
    // @unchecked: a raw pointer is never Sendable; it is immutable and the mapping lives as long as this object.
    /// Start of the mapping.
    public let base: UnsafeMutableRawPointer
    /// Length in bytes.
    public let size: Int

    private init(base: UnsafeMutableRawPointer, size: Int) {
        unsafe self.base = unsafe base
        self.size = size
    }

    deinit { unsafe munmap(base, size) }

    /// Maps `size` bytes of zeroed anonymous memory that is only backed when touched.
    public static func anonymous(size: Int) throws(SystemError) -> MemoryMapping {
        let p = unsafe mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p = unsafe p, unsafe p != MAP_FAILED else { throw .current("mmap \(size) bytes") }
        return unsafe MemoryMapping(base: p, size: size)
    }

    /// Maps `size` bytes of `fd` from `offset` (shared, read-write unless `readOnly`).
    public static func file(_ fd: Int32, size: Int, offset: Int64 = 0, shared: Bool = true, readOnly: Bool = false) throws(SystemError) -> MemoryMapping {
        let prot = readOnly ? PROT_READ : PROT_READ | PROT_WRITE
        let p = unsafe mmap(nil, size, prot, shared ? MAP_SHARED : MAP_PRIVATE, fd, off_t(offset))
        guard let p = unsafe p, unsafe p != MAP_FAILED else { throw .current("mmap fd \(fd) \(size) bytes") }
        return unsafe MemoryMapping(base: p, size: size)
    }

    /// Tells the kernel the range is no longer needed: anonymous pages read back as zero and
    /// their memory returns to the host.
    public func discard(offset: Int, length: Int) throws(SystemError) {
        guard offset >= 0, length >= 0, offset <= size, length <= size - offset else {
            throw SystemError("madvise: range outside mapping", code: EINVAL)
        }
        guard unsafe madvise(base + offset, length, MADV_DONTNEED) == 0 else { throw .current("madvise MADV_DONTNEED") }
    }
}
