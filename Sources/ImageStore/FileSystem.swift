import Storage
import CStorage
import Glibc

/// Small directory and file helpers for the store (POSIX calls, errors as `StorageError`).
enum FileSystem {
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return unsafe stat(path, &info) == 0
    }

    static func fileSize(_ path: String) -> UInt64? {
        var info = stat()
        guard unsafe stat(path, &info) == 0 else { return nil }
        return UInt64(max(0, info.st_size))
    }

    static func makeDirectory(_ path: String) throws {
        if unsafe mkdir(path, 0o755) != 0 && Glibc.errno != EEXIST { throw StorageError.fromErrno("mkdir", path: path) }
    }

    static func list(_ path: String) throws -> [String] {
        guard let dir = unsafe opendir(path) else { throw StorageError.fromErrno("opendir", path: path) }
        defer { unsafe closedir(dir) }
        var names: [String] = []
        while let entry = unsafe readdir(dir) {
            let name = unsafe withUnsafePointer(to: entry.pointee.d_name) {
                unsafe $0.withMemoryRebound(to: CChar.self, capacity: 256) { unsafe String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        let file = try ImageFile.open(path: path, readOnly: true, lock: .none)
        let length = try file.length()
        guard length <= 1 << 31 else { throw StorageError.store("\(path) is too large") }
        var bytes = [UInt8](repeating: 0, count: Int(length))
        let n = unsafe try bytes.withUnsafeMutableBytes { unsafe try file.read(into: $0, at: 0) }
        bytes.removeSubrange(n...)
        return bytes
    }

    /// Writes a new file; with `durable` it is fsynced before returning.
    static func writeFile(_ path: String, _ bytes: [UInt8], durable: Bool) throws {
        let fd = unsafe open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw StorageError.fromErrno("create", path: path) }
        defer { close(fd) }
        var done = 0
        unsafe try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            while done < raw.count {
                let n = unsafe write(fd, base + done, raw.count - done)
                if n < 0 {
                    if Glibc.errno == EINTR { continue }
                    throw StorageError.fromErrno("write", path: path)
                }
                done += n
            }
        }
        if durable && fsync(fd) != 0 { throw StorageError.fromErrno("fsync", path: path) }
    }

    static func rename(_ from: String, _ to: String) throws {
        if unsafe Glibc.rename(from, to) != 0 { throw StorageError.fromErrno("rename", path: to) }
    }

    static func remove(_ path: String) throws {
        if unsafe unlink(path) != 0 && Glibc.errno != ENOENT { throw StorageError.fromErrno("unlink", path: path) }
    }

    /// fsync of a directory makes renames and unlinks in it durable.
    static func syncDirectory(_ path: String) throws {
        let fd = unsafe open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw StorageError.fromErrno("open", path: path) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw StorageError.fromErrno("fsync", path: path) }
    }

    /// syncfs: every file written on the store's file system is durable.
    static func syncFileSystem(_ path: String) throws {
        let fd = unsafe open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw StorageError.fromErrno("open", path: path) }
        defer { close(fd) }
        if cstorage_syncfs(fd) != 0 { throw StorageError.fromErrno("syncfs", path: path) }
    }
}
