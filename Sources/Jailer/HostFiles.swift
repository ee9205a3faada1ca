#if canImport(Glibc)
import Glibc
#endif

/// File operations on the host side of the jail, without Foundation.
enum HostFiles {
    /// The path resolved (symbolic links, `.`, `..`, relative to the working directory) and its kind.
    static func lookup(_ path: String) -> HostLookup {
        guard let resolved = unsafe realpath(path, nil) else { return .failed(errno: errno) }
        defer { unsafe free(resolved) }
        let p = unsafe String(cString: resolved)
        var st = stat()
        guard unsafe stat(p, &st) == 0 else { return .failed(errno: errno) }
        let kind: HostFileKind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFBLK: kind = .blockDevice
        default: kind = .other
        }
        return .found(path: p, kind: kind)
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return unsafe lstat(path, &st) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return unsafe lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Reads a file of at most `limit` bytes (nil when it cannot be read).
    static func readSmallFile(_ path: String, limit: Int = 1 << 20) -> String? {
        let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < limit {
            let n = unsafe chunk.withUnsafeMutableBytes { unsafe read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            bytes += chunk.prefix(n)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `text` to an existing file (cgroup files) or creates it with `mode`.
    static func write(_ text: String, to path: String, create mode: mode_t? = nil) throws(JailError) {
        let flags = O_WRONLY | O_CLOEXEC | (mode != nil ? O_CREAT | O_EXCL : 0)
        let fd = unsafe open(path, flags, mode ?? 0)
        guard fd >= 0 else { throw .current("open \(path)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = unsafe bytes.withUnsafeBytes { unsafe Glibc.write(fd, $0.baseAddress.map { unsafe $0 + done }, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .current("write \(path)")
            }
            done += n
        }
    }

    /// The backing file name a qcow2 image records (nil when it has none or is not qcow2).
    static func qcow2BackingName(_ path: String) throws(JailError) -> String? {
        let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid("cannot read disk \(path): \(JailError.text(errno: errno))") }
        defer { close(fd) }
        let header = try ELFFile.readBytes(fd, offset: 0, count: 20, path: path)
        guard header.count == 20, header[0] == 0x51, header[1] == 0x46, header[2] == 0x49, header[3] == 0xfb else { return nil }
        let offset = header[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let size = header[16..<20].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard offset != 0, size != 0 else { return nil }
        guard size <= 1023 else { throw .invalid("disk \(path): backing file name longer than 1023 bytes") }
        let name = try ELFFile.readBytes(fd, offset: offset, count: Int(size), path: path)
        guard name.count == Int(size) else { throw .invalid("disk \(path): truncated backing file name") }
        return String(decoding: name, as: UTF8.self)
    }

    /// Matches a glob pattern (sorted paths; none when nothing matches).
    static func glob(_ pattern: String) -> [String] {
        var g = unsafe glob_t()
        defer { unsafe globfree(&g) }
        guard unsafe Glibc.glob(pattern, 0, nil, &g) == 0 else { return [] }
        var result: [String] = []
        for i in unsafe 0..<Int(g.gl_pathc) {
            if let p = unsafe g.gl_pathv[i] { unsafe result.append(String(cString: p)) }
        }
        return result
    }

    /// Creates `path` and any missing parents (mode 0755, root's).
    static func makeDirectories(_ path: String) throws(JailError) {
        var st = stat()
        if unsafe stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .invalid("\(path) exists and is not a directory") }
            return
        }
        let parent = ELFDependencies.directory(of: path)
        if parent != path && parent != "." { try makeDirectories(parent) }
        if unsafe mkdir(path, 0o755) != 0 && errno != EEXIST { throw .current("create directory \(path)") }
    }

    /// Creates a directory that must not exist yet.
    static func makeDirectory(_ path: String, mode: mode_t) throws(JailError) {
        guard unsafe mkdir(path, mode) == 0 else { throw .current("create directory \(path)") }
        // mkdir applies the umask: set the mode exactly.
        guard unsafe chmod(path, mode) == 0 else { throw .current("chmod \(path)") }
    }

    /// Hard-links `source` at `destination`, or copies it (with its mode) when they are on
    /// different filesystems or the link is refused. Returns true when it linked.
    @discardableResult
    static func linkOrCopy(_ source: String, _ destination: String) throws(JailError) -> Bool {
        if unsafe link(source, destination) == 0 { return true }
        let linkError = errno
        guard linkError == EXDEV || linkError == EPERM || linkError == EMLINK else {
            throw .system(step: "link \(source) into the jail at \(destination)", errno: linkError)
        }
        try copy(source, destination)
        return false
    }

    static func copy(_ source: String, _ destination: String) throws(JailError) {
        let input = unsafe open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .current("open \(source)") }
        defer { close(input) }
        var st = stat()
        guard unsafe fstat(input, &st) == 0 else { throw .current("stat \(source)") }
        let output = unsafe open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0o777)
        guard output >= 0 else { throw .current("create \(destination)") }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = unsafe buffer.withUnsafeMutableBytes { unsafe read(input, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .current("read \(source)")
            }
            if n == 0 { break }
            var done = 0
            while done < n {
                let w = unsafe buffer.withUnsafeBytes { unsafe Glibc.write(output, $0.baseAddress.map { unsafe $0 + done }, n - done) }
                if w < 0 {
                    if errno == EINTR { continue }
                    throw .current("write \(destination)")
                }
                done += w
            }
        }
        guard fchmod(output, st.st_mode & 0o777) == 0 else { throw .current("chmod \(destination)") }
    }

    /// Removes a directory tree without following symbolic links or crossing into other
    /// filesystems (the monitor may have left anything in /run). Best effort: returns the
    /// first failure's description, or nil.
    @discardableResult
    static func removeTree(_ path: String) -> String? {
        var st = stat()
        guard unsafe lstat(path, &st) == 0 else { return errno == ENOENT ? nil : "stat \(path): \(JailError.text(errno: errno))" }
        return removeTree(path, device: st.st_dev)
    }

    private static func removeTree(_ path: String, device: dev_t) -> String? {
        var st = stat()
        guard unsafe lstat(path, &st) == 0 else { return errno == ENOENT ? nil : "stat \(path): \(JailError.text(errno: errno))" }
        if (st.st_mode & S_IFMT) != S_IFDIR {
            return unsafe unlink(path) == 0 || errno == ENOENT ? nil : "remove \(path): \(JailError.text(errno: errno))"
        }
        guard st.st_dev == device else { return "\(path) is another filesystem (a mount?): left in place" }
        var failure: String?
        if let dir = unsafe opendir(path) {
            var names: [String] = []
            while let entry = unsafe readdir(dir) {
                let name = unsafe withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    unsafe String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            unsafe closedir(dir)
            for name in names {
                if let f = removeTree(path + "/" + name, device: device), failure == nil { failure = f }
            }
        }
        if unsafe rmdir(path) != 0 && errno != ENOENT && failure == nil { failure = "remove \(path): \(JailError.text(errno: errno))" }
        return failure
    }
}
