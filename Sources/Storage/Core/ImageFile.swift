import CStorage
import Glibc
import Synchronization

/// An open image file: positional I/O with EINTR retry, sticky flush errors, OFD locks.
///
/// The descriptor is closed in `deinit`. All methods are safe to call from several threads.
public final class ImageFile: Sendable {
    /// How the file is locked while open.
    public enum LockMode: Sendable {
        /// No lock (inspection of an image that may be in use).
        case none
        /// Shared lock: other readers allowed, writers refused.
        case shared
        /// Exclusive lock: a second writer or reader that locks is refused.
        case exclusive
    }

    public let path: String
    public let isReadOnly: Bool
    let fd: Int32
    private let flushError = Atomic<Int32>(0)
    /// Test hook: the next fdatasync fails with this errno (0 = off).
    let injectedSyncError = Atomic<Int32>(0)
    /// Where changes and syncs are recorded, when a power-loss test records this path.
    private let writeLog: WriteLog?

    // Linux fcntl commands for open-file-description locks (<fcntl.h>, _GNU_SOURCE).
    private static let ofdSetLock: Int32 = 37  // F_OFD_SETLK

    private init(fd: Int32, path: String, readOnly: Bool) {
        self.fd = fd
        self.path = path
        self.isReadOnly = readOnly
        writeLog = readOnly ? nil : WriteLog.attached(to: path)
    }

    /// Drops the locks before closing: the descriptor's open file description may outlive it (a
    /// child forked by another thread shares it until its exec), and with it the locks.
    deinit {
        unlock()
        Glibc.close(fd)
    }

    /// Opens an existing file.
    public static func open(path: String, readOnly: Bool, lock: LockMode) throws -> ImageFile {
        let flags: Int32 = (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC
        let fd = unsafe Glibc.open(path, flags)
        if fd < 0 { throw StorageError.fromErrno("open", path: path) }
        let file = ImageFile(fd: fd, path: path, readOnly: readOnly)
        try file.applyLock(lock)
        var info = stat()
        if unsafe fstat(fd, &info) != 0 { throw StorageError.fromErrno("stat", path: path) }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            throw StorageError.invalidArgument("\(path) is a directory")
        }
        return file
    }

    /// Creates a new file (fails if it exists unless `overwrite`), locked exclusively.
    public static func create(path: String, overwrite: Bool = false) throws -> ImageFile {
        var flags: Int32 = O_RDWR | O_CREAT | O_CLOEXEC
        flags |= overwrite ? O_TRUNC : O_EXCL
        let fd = unsafe Glibc.open(path, flags, 0o644)
        if fd < 0 { throw StorageError.fromErrno("create", path: path) }
        let file = ImageFile(fd: fd, path: path, readOnly: false)
        try file.applyLock(.exclusive)
        return file
    }

    // QEMU's lock-byte scheme (block/file-posix.c): a shared lock on byte 100+p says "I use permission p",
    // on byte 200+p "I do not let others use p". Speaking it lets Skiff and QEMU exclude each other.
    private static let ofdGetLock: Int32 = 36  // F_OFD_GETLK
    private static let permissionBase: Int64 = 100
    private static let sharedBase: Int64 = 200
    private static let consistentRead = 0, write = 1, writeUnchanged = 2, resize = 3

    /// Takes the locks for `mode` (QEMU-compatible lock bytes); throws `.locked` on conflict.
    public func applyLock(_ mode: LockMode) throws {
        if mode == .none { return }
        let used = mode == .exclusive
            ? [ImageFile.consistentRead, ImageFile.write, ImageFile.writeUnchanged, ImageFile.resize]
            : [ImageFile.consistentRead]
        let unshared = [ImageFile.write, ImageFile.resize]
        for p in used { try lockByte(ImageFile.permissionBase + Int64(p)) }
        for p in unshared { try lockByte(ImageFile.sharedBase + Int64(p)) }
        // Refuse if someone else refuses to share what we use, or uses what we refuse to share.
        for p in used where try lockedByOthers(ImageFile.sharedBase + Int64(p)) { throw StorageError.locked(path: path) }
        for p in unshared where try lockedByOthers(ImageFile.permissionBase + Int64(p)) { throw StorageError.locked(path: path) }
    }

    /// Drops every lock this file holds (called when an image is closed; the descriptor stays valid).
    public func unlock() {
        var lock = flock()
        lock.l_type = Int16(F_UNLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = 0
        lock.l_len = 0
        _ = unsafe withUnsafeMutablePointer(to: &lock) { unsafe fcntl(fd, ImageFile.ofdSetLock, $0) }
    }

    private func lockByte(_ offset: Int64) throws {
        var lock = flock()
        lock.l_type = Int16(F_RDLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = off_t(offset)
        lock.l_len = 1
        let result = unsafe withUnsafeMutablePointer(to: &lock) { unsafe fcntl(fd, ImageFile.ofdSetLock, $0) }
        if result != 0 {
            let code = Glibc.errno
            if code == EAGAIN || code == EACCES { throw StorageError.locked(path: path) }
            throw StorageError.fromErrno("lock", path: path, code: code)
        }
    }

    private func lockedByOthers(_ offset: Int64) throws -> Bool {
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = off_t(offset)
        lock.l_len = 1
        let result = unsafe withUnsafeMutablePointer(to: &lock) { unsafe fcntl(fd, ImageFile.ofdGetLock, $0) }
        if result != 0 { throw StorageError.fromErrno("lock test", path: path) }
        return lock.l_type != Int16(F_UNLCK)
    }

    /// Current length of the file in bytes.
    public func length() throws -> UInt64 {
        var info = stat()
        if unsafe fstat(fd, &info) != 0 { throw StorageError.fromErrno("stat", path: path) }
        return UInt64(max(0, info.st_size))
    }

    /// Bytes the file occupies on the host (allocated blocks).
    public func allocatedBytes() throws -> UInt64 {
        var info = stat()
        if unsafe fstat(fd, &info) != 0 { throw StorageError.fromErrno("stat", path: path) }
        return UInt64(max(0, info.st_blocks)) &* 512
    }

    /// Reads up to `buffer.count` bytes; returns the count read (short only at end of file).
    @discardableResult
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        var done = 0
        while done < buffer.count {
            guard let base = buffer.baseAddress else { return 0 }
            let (position, overflow) = offset.addingReportingOverflow(UInt64(done))
            if overflow || position > UInt64(Int64.max) {
                throw StorageError.invalidImage(path: path, reason: "offset \(offset) is past any possible file end")
            }
            let n = unsafe pread(fd, base + done, buffer.count - done, off_t(position))
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw StorageError.fromErrno("read", path: path)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads exactly `buffer.count` bytes, filling whatever lies past the end of file with zeros.
    public func readZeroFilled(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
        let n = unsafe try read(into: buffer, at: offset)
        if n < buffer.count, let base = buffer.baseAddress {
            unsafe memset(base + n, 0, buffer.count - n)
        }
    }

    /// Reads exactly `buffer.count` bytes or throws `.invalidImage` (for metadata that must exist).
    public func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, what: String) throws {
        let n = unsafe try read(into: buffer, at: offset)
        if n != buffer.count {
            throw StorageError.invalidImage(path: path, reason: "\(what) at offset \(offset) lies past the end of the file")
        }
    }

    /// Writes all of `buffer` at `offset`.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws {
        if isReadOnly { throw StorageError.readOnly(path: path) }
        var done = 0
        while done < buffer.count {
            guard let base = buffer.baseAddress else { return }
            let (position, overflow) = offset.addingReportingOverflow(UInt64(done))
            if overflow || position > UInt64(Int64.max) {
                throw StorageError.invalidArgument("\(path): write offset \(offset) too large")
            }
            let n = unsafe pwrite(fd, base + done, buffer.count - done, off_t(position))
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw StorageError.fromErrno("write", path: path)
            }
            if n == 0 { throw StorageError.noSpace(path: path) }
            done += n
        }
        unsafe writeLog?.append(.write(offset: offset, bytes: [UInt8](buffer)))
    }

    /// Writes an array of bytes at `offset`.
    public func write(bytes: [UInt8], at offset: UInt64) throws {
        unsafe try bytes.withUnsafeBytes { unsafe try write($0, at: offset) }
    }

    /// fdatasync. After one failure every later call fails (the kernel may have dropped the dirty pages).
    public func sync() throws {
        let earlier = flushError.load(ordering: .acquiring)
        if earlier != 0 { throw StorageError.flushFailed(path: path, errno: earlier) }
        if isReadOnly { return }
        while true {
            let injected = injectedSyncError.exchange(0, ordering: .acquiringAndReleasing)
            if injected == 0 && fdatasync(fd) == 0 {
                writeLog?.append(.flush)
                break
            }
            let code = injected != 0 ? injected : Glibc.errno
            if code == EINTR { continue }
            flushError.store(code, ordering: .releasing)
            if code == ENOSPC || code == EDQUOT { throw StorageError.noSpace(path: path) }
            throw StorageError.system(operation: "fdatasync", path: path, errno: code)
        }
    }

    /// Sets the file length (sparse growth or truncation).
    public func truncate(to length: UInt64) throws {
        if isReadOnly { throw StorageError.readOnly(path: path) }
        guard length <= UInt64(Int64.max) else { throw StorageError.invalidArgument("\(path): length \(length) too large") }
        while ftruncate(fd, off_t(length)) != 0 {
            if Glibc.errno == EINTR { continue }
            throw StorageError.fromErrno("truncate", path: path)
        }
        writeLog?.append(.truncate(length: length))
    }

    /// Releases the blocks of a range (reads return zeros); false if the file system cannot.
    public func punchHole(at offset: UInt64, length: UInt64) throws -> Bool {
        try fallocateRange(mode: 0x02 | 0x01, offset: offset, length: length)  // PUNCH_HOLE | KEEP_SIZE
    }

    /// Zeroes a range without writing data; false if the file system cannot.
    public func zeroRange(at offset: UInt64, length: UInt64) throws -> Bool {
        try fallocateRange(mode: 0x10, offset: offset, length: length)  // FALLOC_FL_ZERO_RANGE
    }

    private func fallocateRange(mode: Int32, offset: UInt64, length: UInt64) throws -> Bool {
        if isReadOnly { throw StorageError.readOnly(path: path) }
        if length == 0 { return true }
        guard offset <= UInt64(Int64.max), length <= UInt64(Int64.max) else { return false }
        while cstorage_fallocate(fd, mode, Int64(offset), Int64(length)) != 0 {
            let code = Glibc.errno
            if code == EINTR { continue }
            if code == EOPNOTSUPP || code == ENOSYS || code == EINVAL { return false }
            throw StorageError.fromErrno("fallocate", path: path, code: code)
        }
        writeLog?.append(.zero(offset: offset, length: length, extendsFile: mode & 0x01 == 0))
        return true
    }

    /// Writes zeros over a range in bounded chunks.
    public func writeZeros(at offset: UInt64, length: UInt64) throws {
        let chunk = Int(min(length, 1 << 20))
        let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: max(chunk, 1), alignment: 4096)
        defer { unsafe zeros.deallocate() }
        unsafe zeros.initializeMemory(as: UInt8.self, repeating: 0)
        var done: UInt64 = 0
        while done < length {
            let n = Int(min(UInt64(chunk), length - done))
            unsafe try write(UnsafeRawBufferPointer(rebasing: zeros[0..<n]), at: offset + done)
            done += UInt64(n)
        }
    }
}
