#if canImport(Glibc)
import Glibc
#endif

/// A snapshot on disk: a directory holding `state` and `memory`.
///
/// Writing is atomic: the files go into a hidden sibling directory, are fsynced, the
/// directory is fsynced and renamed to its final name, and the parent is fsynced. A crash
/// or error leaves either the complete snapshot or nothing under the final name.
public final class SnapshotDirectoryWriter {
    public static let stateFileName = "state"
    public static let memoryFileName = "memory"

    /// The final directory.
    public let path: String
    /// Where the files are written until `commit()`.
    public let temporaryPath: String
    private var committed = false

    /// Prepares to write the snapshot at `path`, which must not exist (its parent must).
    public init(path: String) throws(SnapshotError) {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard !trimmed.isEmpty, trimmed.utf8.count < 4000 else { throw .io(path: path, reason: "invalid snapshot directory path") }
        self.path = trimmed
        var st = stat()
        if unsafe lstat(trimmed, &st) == 0 { throw .io(path: trimmed, reason: "already exists (choose a new directory)") }
        let parent = Self.parent(of: trimmed)
        let base = String(trimmed.split(separator: "/").last ?? "snapshot")
        temporaryPath = parent + "/.\(base).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard unsafe mkdir(temporaryPath, 0o700) == 0 else {
            throw .io(path: temporaryPath, reason: unsafe "cannot create: \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        if !committed { Self.removeTree(temporaryPath) }
    }

    /// Creates a file in the temporary directory and returns its descriptor (caller closes).
    public func create(_ name: String) throws(SnapshotError) -> Int32 {
        let file = temporaryPath + "/" + name
        let fd = unsafe open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: file, reason: unsafe "cannot create: \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Writes a whole small file (the state file).
    public func write(_ name: String, _ bytes: [UInt8]) throws(SnapshotError) {
        let fd = try create(name)
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = unsafe bytes.withUnsafeBytes { unsafe Glibc.write(fd, $0.baseAddress.map { unsafe $0 + done }, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: temporaryPath + "/" + name, reason: unsafe "write: \(String(cString: strerror(errno)))")
            }
            done += n
        }
        try Self.sync(fd, temporaryPath + "/" + name)
    }

    /// fsyncs a file written through `create`.
    public func sync(_ fd: Int32, name: String) throws(SnapshotError) {
        try Self.sync(fd, temporaryPath + "/" + name)
    }

    /// Makes the snapshot visible under its final name, durably.
    public func commit() throws(SnapshotError) {
        let dir = unsafe open(temporaryPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else { throw unsafe .io(path: temporaryPath, reason: String(cString: strerror(errno))) }
        defer { close(dir) }
        try Self.sync(dir, temporaryPath)
        guard unsafe rename(temporaryPath, path) == 0 else { throw .io(path: path, reason: unsafe "cannot rename into place: \(String(cString: strerror(errno)))") }
        committed = true
        let parent = unsafe open(Self.parent(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if parent >= 0 {
            defer { close(parent) }
            try Self.sync(parent, Self.parent(of: path))
        }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let p = String(path[..<slash])
        return p.isEmpty ? "/" : p
    }

    private static func sync(_ fd: Int32, _ path: String) throws(SnapshotError) {
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw .io(path: path, reason: unsafe "fsync: \(String(cString: strerror(errno)))")
        }
    }

    /// Removes the (flat) temporary directory and its files.
    static func removeTree(_ path: String) {
        for name in [stateFileName, memoryFileName] { unsafe unlink(path + "/" + name) }
        unsafe rmdir(path)
    }
}

/// Reads a snapshot directory's files.
public enum SnapshotDirectoryReader {
    /// Reads the state file of the snapshot at `directory`, refusing files over the format's size limit.
    public static func readState(_ directory: String) throws(SnapshotError) -> [UInt8] {
        let path = directory + "/" + SnapshotDirectoryWriter.stateFileName
        let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, reason: unsafe "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard unsafe fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw .io(path: path, reason: "not a regular file") }
        guard UInt64(st.st_size) <= StateFile.maxFileSize else {
            throw .tooLarge(what: path, size: UInt64(st.st_size), limit: StateFile.maxFileSize)
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = unsafe bytes.withUnsafeMutableBytes { unsafe pread(fd, $0.baseAddress.map { unsafe $0 + done }, $0.count - done, off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, reason: unsafe "read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            done += n
        }
        guard done == bytes.count else { throw .truncated(path: path, what: "the file shrank while being read") }
        return bytes
    }

    /// Opens the memory file read-only and checks it is at least `size` bytes.
    public static func openMemory(_ directory: String, size: UInt64) throws(SnapshotError) -> Int32 {
        let path = directory + "/" + SnapshotDirectoryWriter.memoryFileName
        let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, reason: unsafe "cannot open: \(String(cString: strerror(errno)))") }
        var st = stat()
        guard unsafe fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .io(path: path, reason: "not a regular file")
        }
        guard UInt64(st.st_size) >= size else {
            close(fd)
            throw .truncated(path: path, what: "\(st.st_size) bytes, the snapshot needs \(size)")
        }
        return fd
    }
}
