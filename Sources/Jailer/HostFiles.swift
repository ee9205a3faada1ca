#if canImport(Glibc)
import Glibc
#endif

/// File operations on the host side of the jail, without Foundation.
enum HostFiles {
    /// The path resolved (symbolic links, `.`, `..`, relative to the working directory) and its kind.
    static func lookup(_ path: String) -> HostLookup {
        guard let resolved = realpath(path, nil) else { return .failed(errno: errno) }
        defer { free(resolved) }
        let p = String(cString: resolved)
        var st = stat()
        guard stat(p, &st) == 0 else { return .failed(errno: errno) }
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
        return lstat(path, &st) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Reads a file of at most `limit` bytes (nil when it cannot be read).
    static func readSmallFile(_ path: String, limit: Int = 1 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
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
        let fd = open(path, flags, mode ?? 0)
        guard fd >= 0 else { throw .current("open \(path)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress.map { $0 + done }, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .current("write \(path)")
            }
            done += n
        }
    }

    /// The backing file name a qcow2 image records (nil when it has none or is not qcow2).
    static func qcow2BackingName(_ path: String) throws(JailError) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
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
        var g = glob_t()
        defer { globfree(&g) }
        guard Glibc.glob(pattern, 0, nil, &g) == 0 else { return [] }
        var result: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { result.append(String(cString: p)) }
        }
        return result
    }

    /// Creates `path` and any missing parents (mode 0755, root's).
    static func makeDirectories(_ path: String) throws(JailError) {
        var st = stat()
        if stat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .invalid("\(path) exists and is not a directory") }
            return
        }
        let parent = ELFDependencies.directory(of: path)
        if parent != path && parent != "." { try makeDirectories(parent) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw .current("create directory \(path)") }
    }

    /// Creates a directory that must not exist yet.
    static func makeDirectory(_ path: String, mode: mode_t) throws(JailError) {
        guard mkdir(path, mode) == 0 else { throw .current("create directory \(path)") }
        // mkdir applies the umask: set the mode exactly.
        guard chmod(path, mode) == 0 else { throw .current("chmod \(path)") }
    }

    /// Hard-links `source` at `destination`, or copies it (with its mode) when they are on
    /// different filesystems or the link is refused. Returns true when it linked.
    @discardableResult
    static func linkOrCopy(_ source: String, _ destination: String) throws(JailError) -> Bool {
        if link(source, destination) == 0 { return true }
        let linkError = errno
        guard linkError == EXDEV || linkError == EPERM || linkError == EMLINK else {
            throw .system(step: "link \(source) into the jail at \(destination)", errno: linkError)
        }
        try copy(source, destination)
        return false
    }

    static func copy(_ source: String, _ destination: String) throws(JailError) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw .current("open \(source)") }
        defer { close(input) }
        var st = stat()
        guard fstat(input, &st) == 0 else { throw .current("stat \(source)") }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 0o777)
        guard output >= 0 else { throw .current("create \(destination)") }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .current("read \(source)")
            }
            if n == 0 { break }
            var done = 0
            while done < n {
                let w = buffer.withUnsafeBytes { Glibc.write(output, $0.baseAddress.map { $0 + done }, n - done) }
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
        guard lstat(path, &st) == 0 else { return errno == ENOENT ? nil : "stat \(path): \(JailError.text(errno: errno))" }
        return removeTree(path, device: st.st_dev)
    }

    private static func removeTree(_ path: String, device: dev_t) -> String? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return errno == ENOENT ? nil : "stat \(path): \(JailError.text(errno: errno))" }
        if (st.st_mode & S_IFMT) != S_IFDIR {
            return unlink(path) == 0 || errno == ENOENT ? nil : "remove \(path): \(JailError.text(errno: errno))"
        }
        guard st.st_dev == device else { return "\(path) is another filesystem (a mount?): left in place" }
        var failure: String?
        if let dir = opendir(path) {
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(dir)
            for name in names {
                if let f = removeTree(path + "/" + name, device: device), failure == nil { failure = f }
            }
        }
        if rmdir(path) != 0 && errno != ENOENT && failure == nil { failure = "remove \(path): \(JailError.text(errno: errno))" }
        return failure
    }
}
