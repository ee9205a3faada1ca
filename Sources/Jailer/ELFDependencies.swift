#if canImport(Glibc)
import Glibc
#endif

/// The dynamic loader and shared libraries an ELF executable needs, found the way glibc's
/// loader finds them (DT_RPATH, DT_RUNPATH with `$ORIGIN`, the ld.so.conf directories, the
/// system directories), so the jail can hold each at a path where the loader inside looks.
public struct ELFDependencies: Equatable, Sendable {
    /// A file the jail must hold.
    public struct File: Equatable, Sendable {
        /// Where the host has it (the path the loader would open).
        public var hostPath: String
        /// Where the jail holds it.
        public var jailPath: String
    }

    /// PT_INTERP, placed at the same path (nil for a static executable).
    public var interpreter: File?
    /// Every library, needed or loaded later by dlopen (see `lateLibraries`), once each.
    public var libraries: [File] = []
    /// Jail directories holding libraries the loader would not search by itself (found through
    /// ld.so.conf, which the jail has no cache of): the monitor gets them as LD_LIBRARY_PATH.
    public var extraSearchPath: [String] = []

    /// Libraries loaded with dlopen after start-up that the monitor can need: glibc loads
    /// libgcc_s for thread cancellation and unwinding; Storage loads libzstd for compressed
    /// qcow2 clusters. Each is included when the host has it.
    public static let lateLibraries = ["libgcc_s.so.1", "libzstd.so.1"]

    /// glibc's built-in directories on x86-64 (Debian's multiarch ones first).
    public static let systemDirectories = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]

    /// Resolves the dependencies of `executable` (a host path), which the jail holds at
    /// `jailPath`. `configDirectories` are the ld.so.conf directories (see `configuredDirectories`).
    public static func resolve(executable: String, jailPath: String,
                               configDirectories: [String] = configuredDirectories()) throws(JailError) -> ELFDependencies {
        let main = try ELFFile.read(executable)
        var result = ELFDependencies()
        guard main.interpreter != nil || !main.needed.isEmpty else { return result }  // static
        if let interp = main.interpreter {
            result.interpreter = File(hostPath: interp, jailPath: interp)
        }
        struct Pending {
            var host: String
            var hostOrigin: String
            var jailOrigin: String
            var info: ELFFile
            var rpathChain: [(String, String)]
        }
        var loaded: Set<String> = []
        var queue = [Pending(host: executable, hostOrigin: directory(of: executable), jailOrigin: directory(of: jailPath),
                             info: main, rpathChain: [])]
        var extra: [String] = []
        let system = Set(systemDirectories)

        func search(_ name: String, runpath: [(String, String)], rpath: [(String, String)], for object: String,
                    machine: UInt16) -> (host: String, jail: String, configured: Bool)? {
            if name.contains("/") {
                return ELFFile.matches(name, machine: machine) ? (name, name, false) : nil
            }
            let config = configDirectories.filter { !system.contains($0) }.map { ($0, $0, true) }
            let candidates = (runpath.isEmpty ? rpath.map { ($0.0, $0.1, false) } : [])
                + runpath.map { ($0.0, $0.1, false) }
                + config
                + systemDirectories.map { ($0, $0, false) }
            for (hostDir, jailDir, configured) in candidates {
                let path = hostDir + "/" + name
                if ELFFile.matches(path, machine: machine) { return (path, jailDir + "/" + name, configured) }
            }
            return nil
        }

        while !queue.isEmpty {
            let object = queue.removeFirst()
            let runpath = object.info.runpath.map { expand($0, host: object.hostOrigin, jail: object.jailOrigin) }
            let ownRpath = object.info.runpath.isEmpty ? object.info.rpath.map { expand($0, host: object.hostOrigin, jail: object.jailOrigin) } : []
            let rpathChain = ownRpath + object.rpathChain
            var names = object.info.needed
            if object.host == executable { names += lateLibraries }
            for name in names where !loaded.contains(name) {
                guard let found = search(name, runpath: runpath, rpath: rpathChain, for: object.host, machine: main.machine) else {
                    if lateLibraries.contains(name) && object.host == executable { continue }
                    throw .invalid("cannot find the library \(name) that \(object.host) needs")
                }
                loaded.insert(name)
                let info = try ELFFile.read(found.host)
                if found.jail != result.interpreter?.jailPath {
                    result.libraries.append(File(hostPath: found.host, jailPath: found.jail))
                }
                if found.configured {
                    let dir = directory(of: found.jail)
                    if !extra.contains(dir) { extra.append(dir) }
                }
                queue.append(Pending(host: found.host, hostOrigin: directory(of: found.host), jailOrigin: directory(of: found.jail),
                                     info: info, rpathChain: rpathChain))
            }
        }
        result.extraSearchPath = extra
        return result
    }

    /// `$ORIGIN` (and `${ORIGIN}`) expanded on each side; colon lists are split by the reader.
    static func expand(_ entry: String, host: String, jail: String) -> (String, String) {
        func sub(_ origin: String) -> String {
            var s = entry
            for token in ["${ORIGIN}", "$ORIGIN"] {
                while let r = s.firstRange(of: token) { s.replaceSubrange(r, with: origin) }
            }
            return normalize(s)
        }
        return (sub(host), sub(jail))
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[..<slash])
        return d.isEmpty ? "/" : d
    }

    /// Removes `.` components, empty components and a trailing slash (keeps `..`: the host resolves it).
    static func normalize(_ path: String) -> String {
        let parts = path.split(separator: "/").filter { $0 != "." }
        let joined = parts.joined(separator: "/")
        return path.hasPrefix("/") ? "/" + joined : joined
    }

    /// The directories /etc/ld.so.conf lists, following `include` lines (glob patterns).
    public static func configuredDirectories(_ file: String = "/etc/ld.so.conf") -> [String] {
        var seen: Set<String> = []
        var result: [String] = []
        func read(_ path: String, depth: Int) {
            guard depth < 8, !seen.contains(path), let text = HostFiles.readSmallFile(path) else { return }
            seen.insert(path)
            for raw in text.split(separator: "\n") {
                var line = Substring(raw)
                if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
                let trimmed = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard let first = trimmed.first else { continue }
                if first == "include" {
                    for pattern in trimmed.dropFirst() {
                        let absolute = pattern.hasPrefix("/") ? String(pattern) : directory(of: path) + "/" + pattern
                        for match in HostFiles.glob(absolute) { read(match, depth: depth + 1) }
                    }
                } else if first.hasPrefix("/") {
                    let dir = normalize(String(first))
                    if !result.contains(dir) { result.append(dir) }
                }
            }
        }
        read(file, depth: 0)
        return result
    }
}

/// The parts of an ELF file the loader reads to find libraries.
struct ELFFile: Equatable, Sendable {
    var machine: UInt16
    var interpreter: String?
    var needed: [String] = []
    var rpath: [String] = []
    var runpath: [String] = []

    /// Whether `path` is an ELF64 little-endian shared object or executable for `machine`.
    static func matches(_ path: String, machine: UInt16) -> Bool {
        guard let header = try? readHeader(path) else { return false }
        return header.machine == machine
    }

    struct Header {
        var machine: UInt16
        var phoff: UInt64
        var phentsize: UInt16
        var phnum: UInt16
    }

    static func readHeader(_ path: String) throws(JailError) -> Header {
        let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid("cannot read \(path): \(JailError.text(errno: errno))") }
        defer { close(fd) }
        return try readHeader(fd: fd, path: path)
    }

    static func readHeader(fd: Int32, path: String) throws(JailError) -> Header {
        let b = try readBytes(fd, offset: 0, count: 64, path: path)
        guard b.count == 64, b[0] == 0x7f, b[1] == 0x45, b[2] == 0x4c, b[3] == 0x46 else { throw .invalid("\(path) is not an ELF file") }
        guard b[4] == 2, b[5] == 1 else { throw .invalid("\(path) is not a little-endian 64-bit ELF file") }
        return Header(machine: le16(b, 18), phoff: le64(b, 32), phentsize: le16(b, 54), phnum: le16(b, 56))
    }

    static func read(_ path: String) throws(JailError) -> ELFFile {
        let fd = unsafe open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid("cannot read \(path): \(JailError.text(errno: errno))") }
        defer { close(fd) }
        let header = try readHeader(fd: fd, path: path)
        guard header.phentsize >= 56, header.phnum <= 512 else { throw .invalid("\(path): malformed program headers") }
        let table = try readBytes(fd, offset: header.phoff, count: Int(header.phentsize) * Int(header.phnum), path: path)
        guard table.count == Int(header.phentsize) * Int(header.phnum) else { throw .invalid("\(path): truncated program headers") }
        var file = ELFFile(machine: header.machine)
        var loads: [(vaddr: UInt64, offset: UInt64, size: UInt64)] = []
        var dynamic: (offset: UInt64, size: UInt64)?
        for i in 0..<Int(header.phnum) {
            let base = i * Int(header.phentsize)
            let type = le32(table, base)
            let offset = le64(table, base + 8), vaddr = le64(table, base + 16), filesz = le64(table, base + 32)
            switch type {
            case 1: loads.append((vaddr, offset, filesz))
            case 2: dynamic = (offset, filesz)
            case 3:
                guard filesz > 0, filesz < 4096 else { throw .invalid("\(path): malformed PT_INTERP") }
                let bytes = try readBytes(fd, offset: offset, count: Int(filesz), path: path)
                file.interpreter = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            default: break
            }
        }
        guard let dynamic else { return file }
        guard dynamic.size < 1 << 20 else { throw .invalid("\(path): malformed PT_DYNAMIC") }
        let entries = try readBytes(fd, offset: dynamic.offset, count: Int(dynamic.size), path: path)
        var strtab: UInt64?, strsz: UInt64?
        var needed: [UInt64] = [], rpath: [UInt64] = [], runpath: [UInt64] = []
        var at = 0
        while at + 16 <= entries.count {
            let tag = le64(entries, at), value = le64(entries, at + 8)
            at += 16
            switch tag {
            case 0: at = entries.count
            case 1: needed.append(value)
            case 5: strtab = value
            case 10: strsz = value
            case 15: rpath.append(value)
            case 29: runpath.append(value)
            default: break
            }
        }
        guard !(needed.isEmpty && rpath.isEmpty && runpath.isEmpty) else { return file }
        guard let strtab, let strsz, strsz < 16 << 20,
              let load = loads.first(where: { strtab >= $0.vaddr && strtab - $0.vaddr < $0.size }) else {
            throw .invalid("\(path): no readable dynamic string table")
        }
        let strings = try readBytes(fd, offset: strtab - load.vaddr + load.offset, count: Int(strsz), path: path)
        func string(_ offset: UInt64) throws(JailError) -> String {
            guard offset < UInt64(strings.count) else { throw .invalid("\(path): dynamic string offset out of range") }
            return String(decoding: strings[Int(offset)...].prefix { $0 != 0 }, as: UTF8.self)
        }
        for n in needed { file.needed.append(try string(n)) }
        for r in rpath { file.rpath += try string(r).split(separator: ":").map(String.init) }
        for r in runpath { file.runpath += try string(r).split(separator: ":").map(String.init) }
        return file
    }

    static func readBytes(_ fd: Int32, offset: UInt64, count: Int, path: String) throws(JailError) -> [UInt8] {
        guard count >= 0, offset < UInt64(Int64.max) else { throw .invalid("\(path): malformed ELF offsets") }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = unsafe bytes.withUnsafeMutableBytes { unsafe pread(fd, $0.baseAddress.map { unsafe $0 + done }, count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .invalid("cannot read \(path): \(JailError.text(errno: errno))")
            }
            if n == 0 { break }
            done += n
        }
        return Array(bytes.prefix(done))
    }

    static func le16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func le32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) } }
    static func le64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) } }
}
