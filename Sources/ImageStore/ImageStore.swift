import Storage
import Crypto
import Glibc
import Synchronization

/// A content-addressed, de-duplicating image store in a directory:
///
///     store.conf              chunking parameters, hash, compression
///     lock                    flock: shared for import/export/verify, exclusive for remove/gc
///     chunks/xx/<sha256>      each distinct chunk once (ChunkFile format)
///     images/<name>.manifest  the chunk list of one image (Manifest format)
///     tmp/                    files being written
///
/// Crash safety: chunk files are written to tmp/ and renamed into place; before a manifest is
/// published, syncfs makes every chunk durable; the manifest itself is written to tmp/, fsynced and
/// renamed, and the directory fsynced. A crash leaves either the old state or the new one, plus at
/// worst unreferenced chunks that `gc` removes.
public final class ImageStore: Sendable {
    public let root: String
    public let chunker: FastCDC
    public let compress: Bool
    private let lockFD: Int32
    private let tmpCounter = Atomic<Int>(0)

    /// Totals reported by `stats`.
    public struct Stats: Sendable, Codable, Equatable {
        public var images: Int
        public var chunks: Int
        /// Sum of the virtual sizes of all images.
        public var logicalBytes: UInt64
        /// Bytes of distinct non-zero chunks before compression.
        public var uniqueBytes: UInt64
        /// Bytes the chunk files occupy (after compression, with headers).
        public var storedBytes: UInt64
        /// Bytes of all-zero ranges (never stored).
        public var zeroBytes: UInt64
        /// logicalBytes / storedBytes.
        public var ratio: Double

        enum CodingKeys: String, CodingKey {
            case images, chunks, ratio
            case logicalBytes = "logical-bytes", uniqueBytes = "unique-bytes"
            case storedBytes = "stored-bytes", zeroBytes = "zero-bytes"
        }
    }

    /// What one import did.
    public struct ImportResult: Sendable, Codable, Equatable {
        public var name: String
        public var logicalBytes: UInt64
        public var chunks: Int
        public var newChunks: Int
        public var newBytes: UInt64

        enum CodingKeys: String, CodingKey {
            case name, chunks
            case logicalBytes = "logical-bytes", newChunks = "new-chunks", newBytes = "new-bytes"
        }
    }

    /// What `gc` removed.
    public struct GCResult: Sendable, Codable, Equatable {
        public var removedChunks: Int
        public var freedBytes: UInt64
        public var keptChunks: Int

        enum CodingKeys: String, CodingKey {
            case removedChunks = "removed-chunks", freedBytes = "freed-bytes", keptChunks = "kept-chunks"
        }
    }

    /// What `verify` found.
    public struct VerifyResult: Sendable, Codable, Equatable {
        public var checkedChunks: Int
        public var badChunks: [String]
        public var missingChunks: [String]
        public var affectedImages: [String]

        public var isClean: Bool { badChunks.isEmpty && missingChunks.isEmpty }

        enum CodingKeys: String, CodingKey {
            case checkedChunks = "checked-chunks", badChunks = "bad-chunks"
            case missingChunks = "missing-chunks", affectedImages = "affected-images"
        }
    }

    private init(root: String, chunker: FastCDC, compress: Bool, lockFD: Int32) {
        self.root = root
        self.chunker = chunker
        self.compress = compress
        self.lockFD = lockFD
    }

    deinit { close(lockFD) }

    /// Opens a store, creating it (with the given parameters) if `create` and it does not exist yet.
    public static func open(root: String, create: Bool = false, averageChunkSize: Int = 64 << 10,
                            compress: Bool = false) throws -> ImageStore {
        let conf = root + "/store.conf"
        if !FileSystem.exists(conf) {
            guard create else { throw StorageError.store("\(root) is not an image store (no store.conf)") }
            _ = try FastCDC(averageSize: averageChunkSize)
            try FileSystem.makeDirectory(root)
            for sub in ["chunks", "images", "tmp"] { try FileSystem.makeDirectory(root + "/" + sub) }
            for i in 0..<256 { try FileSystem.makeDirectory(root + "/chunks/" + hexByte(UInt8(i))) }
            let text = "skiff-store 1\nhash sha256\nchunk-average \(averageChunkSize)\ncompression \(compress ? "deflate" : "none")\n"
            try FileSystem.writeFile(root + "/tmp/store.conf", Array(text.utf8), durable: true)
            try FileSystem.rename(root + "/tmp/store.conf", conf)
            try FileSystem.syncDirectory(root)
        }
        let text = String(decoding: try FileSystem.readAll(conf), as: UTF8.self)
        var average = 0
        var useCompression = false
        let lines = text.split(separator: "\n")
        guard lines.first == "skiff-store 1", lines.contains("hash sha256") else {
            throw StorageError.store("\(conf): unknown store format")
        }
        for line in lines {
            if line.hasPrefix("chunk-average "), let value = Int(line.dropFirst(14)) { average = value }
            if line == "compression deflate" { useCompression = true }
        }
        let chunker = try FastCDC(averageSize: average)
        let fd = unsafe Glibc.open(root + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw StorageError.fromErrno("open", path: root + "/lock") }
        return ImageStore(root: root, chunker: chunker, compress: useCompression, lockFD: fd)
    }

    private func withLock<T>(exclusive: Bool, _ body: () throws -> T) throws -> T {
        while flock(lockFD, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            if Glibc.errno == EINTR { continue }
            throw StorageError.fromErrno("flock", path: root + "/lock")
        }
        defer { flock(lockFD, LOCK_UN) }
        return try body()
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func hexByte(_ b: UInt8) -> String {
        String(decoding: [hexDigits[Int(b >> 4)], hexDigits[Int(b & 15)]], as: UTF8.self)
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in digest {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    func chunkPath(_ hash: String) -> String { root + "/chunks/" + hash.prefix(2) + "/" + hash }
    func manifestPath(_ name: String) -> String { root + "/images/" + name + ".manifest" }

    private func tmpPath(_ tag: String) -> String {
        let n = tmpCounter.add(1, ordering: .relaxed).newValue
        return root + "/tmp/\(tag).\(getpid()).\(n).\(UInt32.random(in: 0...UInt32.max))"
    }

    // MARK: - Import

    /// Splits `device` into chunks, stores the new ones and publishes a manifest named `name`.
    public func importImage(from device: any BlockDevice, name: String, replace: Bool = false,
                            progress: ProgressHandler? = nil) throws -> ImportResult {
        try Manifest.validateName(name)
        return try withLock(exclusive: false) {
            if !replace && FileSystem.exists(manifestPath(name)) {
                throw StorageError.store("an image named '\(name)' already exists")
            }
            let size = device.size
            let maxChunk = chunker.maxSize
            let capacity = 16 << 20
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity + maxChunk, alignment: 4096)
            defer { unsafe buffer.deallocate() }
            var entries: [Manifest.Entry] = []
            var result = ImportResult(name: name, logicalBytes: size, chunks: 0, newChunks: 0, newBytes: 0)
            var seen: Set<String> = []
            var fill = 0
            var offset: UInt64 = 0
            while true {
                if offset < size && fill < capacity {
                    let n = Int(min(UInt64(capacity - fill), size - offset))
                    unsafe try device.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[fill..<(fill + n)]))
                    fill += n
                    offset += UInt64(n)
                }
                let atEnd = offset >= size
                if fill == 0 { break }
                var position = 0
                while position < fill {
                    if !atEnd && fill - position < maxChunk { break }
                    let available = unsafe UnsafeRawBufferPointer(rebasing: buffer[position..<fill])
                    let length = unsafe chunker.cut(available)
                    let chunk = unsafe UnsafeRawBufferPointer(rebasing: buffer[position..<(position + length)])
                    if unsafe ImageOperations.isZero(chunk) {
                        if case .zero(let previous) = entries.last {
                            entries[entries.count - 1] = .zero(length: previous + UInt64(length))
                        } else {
                            entries.append(.zero(length: UInt64(length)))
                        }
                    } else {
                        let hash = unsafe ImageStore.hex(SHA256.hash(data: chunk))
                        if !seen.contains(hash) {
                            seen.insert(hash)
                            if unsafe try storeChunk(chunk, hash: hash) {
                                result.newChunks += 1
                                result.newBytes += UInt64(length)
                            }
                        }
                        entries.append(.chunk(hash: hash, length: UInt64(length)))
                        result.chunks += 1
                    }
                    position += length
                }
                if position > 0 && position < fill {
                    let rest = fill - position
                    unsafe buffer.baseAddress.map { unsafe $0.copyMemory(from: $0 + position, byteCount: rest) }
                    fill = rest
                } else if position >= fill {
                    fill = 0
                }
                progress?(offset - UInt64(fill), size)
                if atEnd && fill == 0 { break }
            }
            // Every chunk durable before the manifest that names them.
            try FileSystem.syncFileSystem(root)
            let manifest = Manifest(name: name, size: size, entries: entries)
            let tmp = tmpPath("manifest")
            try FileSystem.writeFile(tmp, Array(manifest.serialize().utf8), durable: true)
            try FileSystem.rename(tmp, manifestPath(name))
            try FileSystem.syncDirectory(root + "/images")
            return result
        }
    }

    /// Stores a chunk unless an intact copy exists; true if it was written.
    private func storeChunk(_ chunk: UnsafeRawBufferPointer, hash: String) throws -> Bool {
        let path = chunkPath(hash)
        if let existing = FileSystem.fileSize(path), existing >= UInt64(ChunkFile.headerSize) {
            return false
        }
        let tmp = tmpPath("chunk")
        unsafe try FileSystem.writeFile(tmp, ChunkFile.encode(chunk, compress: compress), durable: false)
        try FileSystem.rename(tmp, path)
        return true
    }

    /// Reads and checks one chunk (its SHA-256 must match its name).
    func loadChunk(_ hash: String, length: UInt64) throws -> [UInt8] {
        let path = chunkPath(hash)
        guard FileSystem.exists(path) else { throw StorageError.store("chunk \(hash) is missing") }
        guard let data = ChunkFile.decode(try FileSystem.readAll(path), maxLength: chunker.maxSize),
            UInt64(data.count) == length,
            unsafe data.withUnsafeBytes({ unsafe ImageStore.hex(SHA256.hash(data: $0)) }) == hash
        else {
            throw StorageError.store("chunk \(hash) is damaged")
        }
        return data
    }

    // MARK: - Images

    public func manifest(named name: String) throws -> Manifest {
        try Manifest.validateName(name)
        let path = manifestPath(name)
        guard FileSystem.exists(path) else { throw StorageError.store("no image named '\(name)'") }
        return try Manifest.parse(String(decoding: try FileSystem.readAll(path), as: UTF8.self), path: path)
    }

    /// Names of all images.
    public func imageNames() throws -> [String] {
        try FileSystem.list(root + "/images").filter { $0.hasSuffix(".manifest") }.map { String($0.dropLast(9)) }
    }

    /// Opens an image in the store as a read-only block device.
    public func openImage(named name: String) throws -> StoreImage {
        try StoreImage(store: self, manifest: try manifest(named: name))
    }

    /// Writes an image out of the store as raw or qcow2.
    public func export(name: String, to path: String, format: DiskFormat, options: QCOW2CreateOptions? = nil,
                       progress: ProgressHandler? = nil) throws {
        try withLock(exclusive: false) {
            let image = try openImage(named: name)
            try ImageOperations.convert(source: image, to: path, format: format, options: options, progress: progress)
        }
    }

    /// Deletes an image's manifest; its chunks go at the next `gc`.
    public func remove(name: String) throws {
        try Manifest.validateName(name)
        try withLock(exclusive: true) {
            guard FileSystem.exists(manifestPath(name)) else { throw StorageError.store("no image named '\(name)'") }
            try FileSystem.remove(manifestPath(name))
            try FileSystem.syncDirectory(root + "/images")
        }
    }

    /// Reference counts of every chunk named by a manifest.
    private func referenceCounts() throws -> (counts: [String: Int], manifests: [Manifest]) {
        var counts: [String: Int] = [:]
        var manifests: [Manifest] = []
        for name in try imageNames() {
            let manifest = try self.manifest(named: name)
            manifests.append(manifest)
            for case .chunk(let hash, _) in manifest.entries { counts[hash, default: 0] += 1 }
        }
        return (counts, manifests)
    }

    /// Store totals: logical bytes, distinct bytes, bytes on disk and the de-duplication ratio.
    public func stats() throws -> Stats {
        try withLock(exclusive: false) {
            let (counts, manifests) = try referenceCounts()
            var stats = Stats(images: manifests.count, chunks: counts.count, logicalBytes: 0, uniqueBytes: 0,
                              storedBytes: 0, zeroBytes: 0, ratio: 0)
            var lengths: [String: UInt64] = [:]
            for manifest in manifests {
                stats.logicalBytes += manifest.size
                for entry in manifest.entries {
                    switch entry {
                    case .chunk(let hash, let length): lengths[hash] = length
                    case .zero(let length): stats.zeroBytes += length
                    }
                }
            }
            stats.uniqueBytes = lengths.values.reduce(0, +)
            for hash in counts.keys { stats.storedBytes += FileSystem.fileSize(chunkPath(hash)) ?? 0 }
            stats.ratio = stats.storedBytes == 0 ? 0 : Double(stats.logicalBytes) / Double(stats.storedBytes)
            return stats
        }
    }

    /// Deletes every chunk no manifest references (reference count zero) and leftovers in tmp/.
    public func collectGarbage() throws -> GCResult {
        try withLock(exclusive: true) {
            let (counts, _) = try referenceCounts()
            var result = GCResult(removedChunks: 0, freedBytes: 0, keptChunks: 0)
            for dir in try FileSystem.list(root + "/chunks") {
                let path = root + "/chunks/" + dir
                var removed = false
                for name in try FileSystem.list(path) {
                    if counts[name, default: 0] > 0 {
                        result.keptChunks += 1
                        continue
                    }
                    result.freedBytes += FileSystem.fileSize(path + "/" + name) ?? 0
                    try FileSystem.remove(path + "/" + name)
                    result.removedChunks += 1
                    removed = true
                }
                if removed { try FileSystem.syncDirectory(path) }
            }
            for name in try FileSystem.list(root + "/tmp") { try FileSystem.remove(root + "/tmp/" + name) }
            return result
        }
    }

    /// Re-hashes every chunk; names the images that a damaged or missing chunk affects.
    public func verify(progress: ProgressHandler? = nil) throws -> VerifyResult {
        try withLock(exclusive: false) {
            let (counts, manifests) = try referenceCounts()
            var result = VerifyResult(checkedChunks: 0, badChunks: [], missingChunks: [], affectedImages: [])
            var bad: Set<String> = []
            var done: UInt64 = 0
            let total = UInt64(counts.count)
            for hash in counts.keys.sorted() {
                let path = chunkPath(hash)
                if !FileSystem.exists(path) {
                    result.missingChunks.append(hash)
                    bad.insert(hash)
                } else {
                    let data = ChunkFile.decode(try FileSystem.readAll(path), maxLength: chunker.maxSize)
                    let ok = data.map { bytes in
                        unsafe bytes.withUnsafeBytes { unsafe ImageStore.hex(SHA256.hash(data: $0)) } == hash
                    } ?? false
                    if !ok {
                        result.badChunks.append(hash)
                        bad.insert(hash)
                    }
                    result.checkedChunks += 1
                }
                done += 1
                progress?(done, total)
            }
            for manifest in manifests {
                let hit = manifest.entries.contains { entry in
                    if case .chunk(let hash, _) = entry { return bad.contains(hash) }
                    return false
                }
                if hit { result.affectedImages.append(manifest.name) }
            }
            return result
        }
    }
}
