import Glibc

/// A qcow2 (v2 or v3) image as a block device: reads fall through to the backing chain, writes
/// copy-on-write, metadata is cached and written back at flush in crash-safe order
/// (data, refcount blocks, L2 tables, L1 table, each stage made durable before the next).
@safe public final class QCOW2Image: BlockDevice, @unchecked Sendable {
    // @unchecked: the metadata and caches are touched only with `lock` held (held across file I/O).
    public let file: ImageFile
    /// The backing image, opened read-only, or nil.
    public let backing: (any BlockDevice)?
    public let isReadOnly: Bool
    let geometry: QCOW2Geometry
    let lock = PosixLock()

    // State below is guarded by `lock`.
    var header: QCOW2Header
    var l1: [UInt64]
    var l1DirtyLow = Int.max
    var l1DirtyHigh = -1
    var l2Cache: [L2Table?]
    var l2CachedCount = 0
    var refcountTable: [UInt64]
    var refcountCache: [Int: RefcountBlock] = [:]
    /// Clusters holding metadata (header, tables, refcount blocks, L2 tables): never handed out as data.
    var metadataClusters: Set<UInt64> = []
    /// Clusters whose references were dropped; their refcounts fall only after the dropping L2 is durable.
    var pendingFrees: [(offset: UInt64, length: UInt64)] = []
    var freeHint: UInt64 = 1
    var allocatedEnd: UInt64 = 0
    var fileEnd: UInt64
    var dataWrittenSinceFlush = false
    var markedDirtyForLazyRefcounts = false
    var preparedForWrites = false
    var closed = false
    let scratch: UnsafeMutableRawBufferPointer
    var decompressedKey: UInt64 = 0
    let decompressed: UnsafeMutableRawBufferPointer
    let cacheLimitBytes: Int

    public var size: UInt64 { lock.withLock { header.size } }
    /// A copy of the current header.
    public var currentHeader: QCOW2Header { lock.withLock { header } }

    /// Opens an image whose header has been parsed; `backing` is the already opened backing device.
    init(file: ImageFile, header: QCOW2Header, backing: (any BlockDevice)?, readOnly: Bool, cacheLimitBytes: Int) throws {
        self.file = file
        self.header = header
        self.backing = backing
        self.isReadOnly = readOnly
        self.cacheLimitBytes = max(cacheLimitBytes, 1 << 20)
        geometry = QCOW2Geometry(clusterBits: header.clusterBits, refcountOrder: header.refcountOrder)
        fileEnd = try file.length()
        let cs = Int(geometry.clusterSize)
        unsafe scratch = .allocate(byteCount: cs, alignment: 4096)
        unsafe decompressed = .allocate(byteCount: cs, alignment: 4096)
        l1 = []
        l2Cache = []
        refcountTable = []
        let path = file.path
        func bad(_ reason: String) -> StorageError { .invalidImage(path: path, reason: reason) }

        // L1 table.
        let l1Bytes = UInt64(header.l1Size) * 8
        if l1Bytes > 0 {
            guard let end = Checked.add(header.l1TableOffset, l1Bytes), end <= fileEnd else {
                throw bad("L1 table (offset \(header.l1TableOffset), \(header.l1Size) entries) lies past the end of the file")
            }
        }
        l1 = try QCOW2Image.readTable(file: file, offset: header.l1TableOffset, count: Int(header.l1Size), what: "L1 table")
        for (i, entry) in l1.enumerated() {
            if entry & QCOW2Entry.l1Reserved != 0 { throw bad("L1 entry \(i) has reserved bits set") }
            let offset = entry & QCOW2Entry.offsetMask
            if offset % geometry.clusterSize != 0 { throw bad("L2 table offset \(offset) is not cluster aligned") }
            if offset != 0 && offset >= fileEnd { throw bad("L2 table offset \(offset) lies past the end of the file") }
        }
        l2Cache = Array(repeating: nil, count: l1.count)

        // Refcount table.
        let rtCount = Int(UInt64(header.refcountTableClusters) * geometry.clusterSize / 8)
        guard let rtEnd = Checked.add(header.refcountTableOffset, UInt64(rtCount) * 8), rtEnd <= fileEnd else {
            throw bad("refcount table lies past the end of the file")
        }
        refcountTable = try QCOW2Image.readTable(
            file: file, offset: header.refcountTableOffset, count: rtCount, what: "refcount table")
        for entry in refcountTable where entry != 0 {
            if entry & 0x1ff != 0 || entry % geometry.clusterSize != 0 {
                throw bad("refcount block offset \(entry) is not cluster aligned")
            }
            if entry >= fileEnd { throw bad("refcount block offset \(entry) lies past the end of the file") }
        }
        try buildMetadataSet()
        allocatedEnd = Checked.divRoundUp(fileEnd, geometry.clusterSize)
        if header.snapshotCount > 0, !readOnly {
            throw StorageError.unsupported(path: path, reason: "writing images that contain internal snapshots (open read-only)")
        }
        if header.isCorrupt, !readOnly {
            throw StorageError.corrupt(path: path, reason: "the corrupt bit is set; open it read-only or repair with `check -r all`")
        }
        if header.isDirty, !readOnly {
            try rebuildRefcounts()
            try writeIncompatibleFeatures(header.incompatibleFeatures & ~QCOW2Header.Incompatible.dirty)
        }
    }

    deinit {
        unsafe scratch.deallocate()
        unsafe decompressed.deallocate()
    }

    static func readTable(file: ImageFile, offset: UInt64, count: Int, what: String) throws -> [UInt64] {
        if count == 0 { return [] }
        var table = [UInt64](repeating: 0, count: count)
        unsafe try table.withUnsafeMutableBytes { unsafe try file.readExactly(into: $0, at: offset, what: what) }
        for i in 0..<count { table[i] = UInt64(bigEndian: table[i]) }
        return table
    }

    /// Records every metadata cluster and refuses tables that overlap each other.
    func buildMetadataSet() throws {
        let cs = geometry.clusterSize
        let path = file.path
        metadataClusters = [0]
        func claim(_ offset: UInt64, clusters: UInt64, what: String) throws {
            let first = offset / cs
            for c in first..<(first + clusters) {
                if !metadataClusters.insert(c).inserted {
                    throw StorageError.invalidImage(path: path, reason: "\(what) at offset \(offset) overlaps other metadata")
                }
            }
        }
        try claim(header.l1TableOffset, clusters: Checked.divRoundUp(UInt64(l1.count) * 8, cs), what: "L1 table")
        try claim(header.refcountTableOffset, clusters: UInt64(header.refcountTableClusters), what: "refcount table")
        for entry in refcountTable where entry != 0 { try claim(entry, clusters: 1, what: "refcount block") }
        for entry in l1 where entry & QCOW2Entry.offsetMask != 0 {
            try claim(entry & QCOW2Entry.offsetMask, clusters: 1, what: "L2 table")
        }
    }

    // MARK: - Lookup

    /// Returns the L2 table for an L1 index, loading it into the cache; nil when the L1 entry is empty.
    func l2Table(_ l1Index: Int) throws -> L2Table? {
        if let table = l2Cache[l1Index] { return table }
        let offset = l1[l1Index] & QCOW2Entry.offsetMask
        if offset == 0 { return nil }
        let entries = try QCOW2Image.readTable(
            file: file, offset: offset, count: Int(geometry.l2Entries), what: "L2 table")
        let table = L2Table(diskOffset: offset, entries: entries)
        l2Cache[l1Index] = table
        l2CachedCount += 1
        return table
    }

    /// Decodes an L2 entry, validating it as hostile input.
    func decode(_ entry: UInt64) throws -> ClusterMapping {
        if entry & QCOW2Entry.compressed != 0 {
            let x = 62 - (geometry.clusterBits - 8)
            let offset = entry & ((UInt64(1) << x) - 1)
            let sectors = ((entry & ~QCOW2Entry.copied & ~QCOW2Entry.compressed) >> x) + 1
            let length = sectors * 512 - (offset & 511)
            if offset == 0 || offset >= fileEnd {
                throw StorageError.corrupt(path: file.path, reason: "compressed cluster offset \(offset) lies outside the file")
            }
            return .compressed(hostOffset: offset, length: length)
        }
        let offset = entry & QCOW2Entry.offsetMask
        if entry & QCOW2Entry.l2Reserved != 0 || offset % geometry.clusterSize != 0 {
            throw StorageError.corrupt(path: file.path, reason: "L2 entry 0x\(String(entry, radix: 16)) is malformed")
        }
        if entry & QCOW2Entry.zero != 0 {
            if header.version < 3 {
                throw StorageError.corrupt(path: file.path, reason: "zero flag in a version 2 image")
            }
            return .zero(hostOffset: offset)
        }
        if offset == 0 { return .unallocated }
        if offset >= fileEnd {
            throw StorageError.corrupt(path: file.path, reason: "data cluster offset \(offset) lies past the end of the file")
        }
        if metadataClusters.contains(offset / geometry.clusterSize) {
            throw StorageError.corrupt(path: file.path, reason: "data cluster at \(offset) overlaps metadata")
        }
        return .data(hostOffset: offset, copied: entry & QCOW2Entry.copied != 0)
    }

    /// The mapping of the cluster that holds guest `offset`.
    func mapping(at offset: UInt64) throws -> ClusterMapping {
        let l1Index = geometry.l1Index(offset)
        guard l1Index < l1.count else { return .unallocated }
        guard let table = try l2Table(l1Index) else { return .unallocated }
        return try decode(table.entries[geometry.l2Index(offset)])
    }

    // MARK: - BlockDevice

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(offset, UInt64(buffer.count))
        let cs = geometry.clusterSize
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let inCluster = geometry.offsetInCluster(position)
            var length = Int(min(cs - inCluster, UInt64(buffer.count - done)))
            let first: ClusterMapping = try lock.withLock {
                try checkOpen()
                try trimCaches()
                let m = try mapping(at: position)
                // Extend the run over following clusters with the same kind and contiguous host data.
                while done + length < buffer.count {
                    let next = position + UInt64(length)
                    let nextMapping = try mapping(at: next)
                    let extendBy = Int(min(cs, UInt64(buffer.count - done - length)))
                    switch (m, nextMapping) {
                    case (.unallocated, .unallocated), (.zero, .zero):
                        length += extendBy
                    case (.data(let a, _), .data(let b, _)) where b == a + (next - (position - inCluster)):
                        length += extendBy
                    default:
                        return m
                    }
                }
                return m
            }
            let target = unsafe UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + length)])
            switch first {
            case .unallocated:
                unsafe try readBacking(at: position, into: target)
            case .zero:
                unsafe target.initializeMemory(as: UInt8.self, repeating: 0)
            case .data(let host, _):
                unsafe try file.readZeroFilled(into: target, at: host + inCluster)
            case .compressed(let host, let maxLength):
                try lock.withLock {
                    try loadCompressed(host: host, maxLength: maxLength)
                    unsafe target.copyMemory(from: UnsafeRawBufferPointer(
                        rebasing: decompressed[Int(inCluster)..<(Int(inCluster) + length)]))
                }
            }
            done += length
        }
    }

    /// Reads from the backing chain; the part past the backing file's end reads as zeros.
    func readBacking(at position: UInt64, into target: UnsafeMutableRawBufferPointer) throws {
        guard let backing else {
            unsafe target.initializeMemory(as: UInt8.self, repeating: 0)
            return
        }
        let backingSize = backing.size
        let available = position >= backingSize ? 0 : Int(min(UInt64(target.count), backingSize - position))
        if available > 0 {
            unsafe try backing.read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: target[0..<available]))
        }
        if available < target.count {
            unsafe UnsafeMutableRawBufferPointer(rebasing: target[available...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }

    /// Decompresses one compressed cluster into `decompressed` (cached by host offset). Lock held.
    func loadCompressed(host: UInt64, maxLength: UInt64) throws {
        if decompressedKey == host { return }
        decompressedKey = 0
        let length = Int(min(maxLength, 2 * geometry.clusterSize + 512))
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 16)
        defer { unsafe input.deallocate() }
        unsafe try file.readZeroFilled(into: input, at: host)
        let ok: Bool
        if header.compressionType == 1 {
            guard Compression.zstdAvailable else {
                throw StorageError.unsupported(path: file.path, reason: "zstd-compressed clusters (libzstd.so.1 not found)")
            }
            ok = unsafe Compression.zstdDecompress(UnsafeRawBufferPointer(input), into: decompressed)
        } else {
            ok = unsafe Compression.inflateRaw(UnsafeRawBufferPointer(input), into: decompressed)
        }
        if !ok { throw StorageError.corrupt(path: file.path, reason: "compressed cluster at \(host) does not decompress") }
        decompressedKey = host
    }

    func checkOpen() throws {
        if closed { throw StorageError.invalidArgument("\(file.path): image is closed") }
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        if isReadOnly { throw StorageError.readOnly(path: file.path) }
        try checkRange(offset, UInt64(buffer.count))
        var done = 0
        let cs = geometry.clusterSize
        while done < buffer.count {
            let position = offset + UInt64(done)
            let inCluster = geometry.offsetInCluster(position)
            let length = Int(min(cs - inCluster, UInt64(buffer.count - done)))
            let source = unsafe UnsafeRawBufferPointer(rebasing: buffer[done..<(done + length)])
            // Fast path: the cluster is allocated and ours alone; write in place outside the lock.
            let inPlace: UInt64? = try lock.withLock {
                try checkOpen()
                try trimCaches()
                try prepareForWrites()
                if case .data(let host, let copied) = try mapping(at: position), copied {
                    dataWrittenSinceFlush = true
                    return host
                }
                return nil
            }
            if let host = inPlace {
                unsafe try file.write(source, at: host + inCluster)
                done += length
                continue
            }
            let written = try lock.withLock { unsafe try allocatingWrite(at: position, from: buffer, done: done) }
            done += written
        }
    }

    public func flush() throws {
        try lock.withLock {
            try checkOpen()
            try flushMetadata()
        }
    }

    public func close() throws {
        try lock.withLock {
            if closed { return }
            if !isReadOnly {
                try flushMetadata()
                if markedDirtyForLazyRefcounts {
                    try writeIncompatibleFeatures(header.incompatibleFeatures & ~QCOW2Header.Incompatible.dirty)
                    markedDirtyForLazyRefcounts = false
                }
            }
            closed = true
            file.unlock()
        }
        try backing?.close()
    }

    /// Before the first change: mark dirty (lazy refcounts) and clear autoclear bits we do not maintain.
    func prepareForWrites() throws {
        if preparedForWrites { return }
        if header.version == 3 && header.autoclearFeatures != 0 {
            var bytes = [UInt8](repeating: 0, count: 8)
            bytes.putBE64(0, at: 0)
            try file.write(bytes: bytes, at: 88)
            try file.sync()
            header.autoclearFeatures = 0
        }
        if header.hasLazyRefcounts && header.version == 3 && !header.isDirty {
            try writeIncompatibleFeatures(header.incompatibleFeatures | QCOW2Header.Incompatible.dirty)
            markedDirtyForLazyRefcounts = true
        }
        preparedForWrites = true
    }

    /// Rewrites the incompatible-features field and makes it durable.
    func writeIncompatibleFeatures(_ value: UInt64) throws {
        guard header.version == 3 else { return }
        try file.write(bytes: [UInt8].be64Bytes(value), at: 72)
        try file.sync()
        header.incompatibleFeatures = value
    }
}
