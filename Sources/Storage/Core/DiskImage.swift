import Glibc

/// Opens disk images by explicit format and resolves qcow2 backing chains.
public enum DiskImage {
    /// Longest backing chain accepted.
    public static let maxChainDepth = 32
    /// Default metadata cache budget per qcow2 image.
    public static let defaultCacheBytes = 32 << 20

    /// Opens `path` as `format`. Backing files are opened read-only with the format their overlay records;
    /// a chain that loops, is deeper than `maxChainDepth`, or has no recorded backing format is refused.
    public static func open(path: String, format: DiskFormat, readOnly: Bool,
                            lock: Bool = true, cacheBytes: Int = defaultCacheBytes) throws -> any BlockDevice {
        var seen: Set<FileIdentity> = []
        return try open(path: path, format: format, readOnly: readOnly, lock: lock, cacheBytes: cacheBytes,
                        depth: 0, seen: &seen)
    }

    /// Opens a qcow2 image and returns the concrete type.
    public static func openQCOW2(path: String, readOnly: Bool, lock: Bool = true,
                                 cacheBytes: Int = defaultCacheBytes) throws -> QCOW2Image {
        var seen: Set<FileIdentity> = []
        let file = try ImageFile.open(path: path, readOnly: readOnly, lock: .none)
        try noteIdentity(file, path: path, seen: &seen)
        try file.applyLock(lockMode(readOnly: readOnly, lock: lock))
        return try openQCOW2(file: file, readOnly: readOnly, lock: lock, cacheBytes: cacheBytes, depth: 0, seen: &seen)
    }

    struct FileIdentity: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    private static func lockMode(readOnly: Bool, lock: Bool) -> ImageFile.LockMode {
        lock ? (readOnly ? .shared : .exclusive) : .none
    }

    private static func noteIdentity(_ file: ImageFile, path: String, seen: inout Set<FileIdentity>) throws {
        var info = stat()
        if unsafe fstat(file.fd, &info) != 0 { throw StorageError.fromErrno("stat", path: path) }
        let identity = FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        if !seen.insert(identity).inserted {
            throw StorageError.invalidImage(path: path, reason: "backing chain loops back to this file")
        }
    }

    private static func open(path: String, format: DiskFormat, readOnly: Bool, lock: Bool, cacheBytes: Int,
                             depth: Int, seen: inout Set<FileIdentity>) throws -> any BlockDevice {
        guard depth <= maxChainDepth else {
            throw StorageError.invalidImage(path: path, reason: "backing chain deeper than \(maxChainDepth)")
        }
        let file = try ImageFile.open(path: path, readOnly: readOnly, lock: .none)
        try noteIdentity(file, path: path, seen: &seen)
        try file.applyLock(lockMode(readOnly: readOnly, lock: lock))
        switch format {
        case .raw:
            return try RawImage(file: file)
        case .qcow2:
            return try openQCOW2(file: file, readOnly: readOnly, lock: lock, cacheBytes: cacheBytes, depth: depth, seen: &seen)
        }
    }

    private static func openQCOW2(file: ImageFile, readOnly: Bool, lock: Bool, cacheBytes: Int, depth: Int,
                                  seen: inout Set<FileIdentity>) throws -> QCOW2Image {
        let header = try readHeader(file)
        var backing: (any BlockDevice)?
        if let name = header.backingFile {
            guard let formatName = header.backingFormat else {
                throw StorageError.invalidImage(
                    path: file.path,
                    reason: "backing file '\(name)' has no recorded format; set one with `rebase -u -b \(name) -F FMT`")
            }
            let format = try DiskFormat(name: formatName)
            let backingPath = resolveBackingPath(name, relativeTo: file.path)
            backing = try open(path: backingPath, format: format, readOnly: true, lock: lock, cacheBytes: cacheBytes,
                               depth: depth + 1, seen: &seen)
        }
        return try QCOW2Image(file: file, header: header, backing: backing, readOnly: readOnly, cacheLimitBytes: cacheBytes)
    }

    /// Reads and parses cluster 0 of a qcow2 file.
    public static func readHeader(_ file: ImageFile) throws -> QCOW2Header {
        var prefix = [UInt8](repeating: 0, count: 512)
        let n = unsafe try prefix.withUnsafeMutableBytes { unsafe try file.read(into: $0, at: 0) }
        prefix.removeSubrange(n...)
        let bits = try QCOW2Header.clusterBits(fromPrefix: prefix, path: file.path)
        var cluster = [UInt8](repeating: 0, count: 1 << Int(bits))
        let m = unsafe try cluster.withUnsafeMutableBytes { unsafe try file.read(into: $0, at: 0) }
        cluster.removeSubrange(m...)
        return try QCOW2Header.parse(cluster, path: file.path)
    }

    /// A backing name is relative to the directory of the image that names it.
    public static func resolveBackingPath(_ name: String, relativeTo imagePath: String) -> String {
        if name.hasPrefix("/") { return name }
        guard let slash = imagePath.lastIndex(of: "/") else { return name }
        return String(imagePath[...slash]) + name
    }

    /// True if the file starts with the qcow2 magic (used only when a user creates a clone without -F).
    public static func looksLikeQCOW2(path: String) -> Bool {
        guard let file = try? ImageFile.open(path: path, readOnly: true, lock: .none) else { return false }
        var magic = [UInt8](repeating: 0, count: 4)
        let n = unsafe (try? magic.withUnsafeMutableBytes { unsafe try file.read(into: $0, at: 0) }) ?? 0
        return n == 4 && magic.be32(at: 0) == QCOW2Header.magic
    }
}
