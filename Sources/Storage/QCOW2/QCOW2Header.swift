/// The qcow2 header (cluster 0): fixed fields, header extensions and backing file name.
///
/// Parsed field by field from big-endian bytes; every value is validated as hostile input.
public struct QCOW2Header: Sendable, Equatable {
    public static let magic: UInt32 = 0x5146_49fb
    static let v2HeaderLength: UInt32 = 72
    static let v3MinimumHeaderLength: UInt32 = 104
    static let v3HeaderLength: UInt32 = 112
    static let maxL1Bytes: UInt64 = 32 << 20
    static let maxRefcountTableBytes: UInt64 = 8 << 20
    static let maxBackingNameLength: UInt32 = 1023

    /// Incompatible feature bits.
    public enum Incompatible {
        public static let dirty: UInt64 = 1 << 0
        public static let corrupt: UInt64 = 1 << 1
        public static let externalDataFile: UInt64 = 1 << 2
        public static let compressionType: UInt64 = 1 << 3
        public static let extendedL2: UInt64 = 1 << 4
        static let known: UInt64 = 0x1f
    }

    /// Compatible feature bits.
    public enum Compatible {
        public static let lazyRefcounts: UInt64 = 1 << 0
    }

    /// Header extension types.
    enum ExtensionType {
        static let end: UInt32 = 0
        static let backingFormat: UInt32 = 0xe279_2aca
        static let featureNames: UInt32 = 0x6803_f857
        static let bitmaps: UInt32 = 0x2385_2875
        static let encryption: UInt32 = 0x0537_be77
        static let externalDataFile: UInt32 = 0x4441_5441
    }

    /// A header extension kept verbatim so a rewrite preserves it.
    public struct Extension: Sendable, Equatable {
        public var type: UInt32
        public var data: [UInt8]
    }

    public var version: UInt32
    public var backingFileOffset: UInt64
    public var backingFileSize: UInt32
    public var clusterBits: UInt32
    public var size: UInt64
    public var cryptMethod: UInt32
    public var l1Size: UInt32
    public var l1TableOffset: UInt64
    public var refcountTableOffset: UInt64
    public var refcountTableClusters: UInt32
    public var snapshotCount: UInt32
    public var snapshotsOffset: UInt64
    public var incompatibleFeatures: UInt64
    public var compatibleFeatures: UInt64
    public var autoclearFeatures: UInt64
    public var refcountOrder: UInt32
    public var headerLength: UInt32
    public var compressionType: UInt8
    /// Header bytes past the fields this implementation knows, kept for rewrites.
    var unknownHeaderTail: [UInt8]
    /// Extensions other than backing format and the end marker, in file order.
    public var extensions: [Extension]
    public var backingFile: String?
    public var backingFormat: String?

    public var clusterSize: UInt64 { 1 << UInt64(clusterBits) }
    public var refcountBits: UInt64 { 1 << UInt64(refcountOrder) }
    public var isDirty: Bool { incompatibleFeatures & Incompatible.dirty != 0 }
    public var isCorrupt: Bool { incompatibleFeatures & Incompatible.corrupt != 0 }
    public var hasLazyRefcounts: Bool { compatibleFeatures & Compatible.lazyRefcounts != 0 }

    /// Feature names advertised by the image's feature-name table: (type, bit) -> name.
    public var featureNames: [String: String] {
        var names: [String: String] = [:]
        for ext in extensions where ext.type == ExtensionType.featureNames {
            var i = 0
            while i + 48 <= ext.data.count {
                let type = ext.data[i]
                let bit = ext.data[i + 1]
                let nameBytes = ext.data[(i + 2)..<(i + 48)].prefix { $0 != 0 }
                names["\(type):\(bit)"] = String(decoding: nameBytes, as: UTF8.self)
                i += 48
            }
        }
        return names
    }

    /// Reads only the first bytes needed to learn the cluster size.
    static func clusterBits(fromPrefix bytes: [UInt8], path: String) throws -> UInt32 {
        guard bytes.count >= 72, let magic = bytes.be32(at: 0) else {
            throw StorageError.invalidImage(path: path, reason: "file is too short for a qcow2 header")
        }
        guard magic == QCOW2Header.magic else {
            throw StorageError.invalidImage(path: path, reason: "not a qcow2 image (bad magic)")
        }
        guard let bits = bytes.be32(at: 20), (9...21).contains(bits) else {
            throw StorageError.invalidImage(path: path, reason: "cluster_bits must be 9...21 (512 B to 2 MiB)")
        }
        return bits
    }

    /// Parses cluster 0. `cluster` holds the first cluster (shorter if the file is shorter).
    public static func parse(_ cluster: [UInt8], path: String) throws -> QCOW2Header {
        func bad(_ reason: String) -> StorageError { .invalidImage(path: path, reason: reason) }
        let clusterBits = try clusterBits(fromPrefix: cluster, path: path)
        let clusterSize = UInt64(1) << UInt64(clusterBits)
        guard let version = cluster.be32(at: 4), version == 2 || version == 3 else {
            throw StorageError.unsupported(path: path, reason: "qcow2 version \(cluster.be32(at: 4) ?? 0) (only 2 and 3)")
        }
        var header = QCOW2Header(
            version: version,
            backingFileOffset: cluster.be64(at: 8) ?? 0,
            backingFileSize: cluster.be32(at: 16) ?? 0,
            clusterBits: clusterBits,
            size: cluster.be64(at: 24) ?? 0,
            cryptMethod: cluster.be32(at: 32) ?? 0,
            l1Size: cluster.be32(at: 36) ?? 0,
            l1TableOffset: cluster.be64(at: 40) ?? 0,
            refcountTableOffset: cluster.be64(at: 48) ?? 0,
            refcountTableClusters: cluster.be32(at: 56) ?? 0,
            snapshotCount: cluster.be32(at: 60) ?? 0,
            snapshotsOffset: cluster.be64(at: 64) ?? 0,
            incompatibleFeatures: 0, compatibleFeatures: 0, autoclearFeatures: 0,
            refcountOrder: 4, headerLength: v2HeaderLength, compressionType: 0,
            unknownHeaderTail: [], extensions: [], backingFile: nil, backingFormat: nil)
        if version == 3 {
            guard cluster.count >= 104, let length = cluster.be32(at: 100) else {
                throw bad("truncated version 3 header")
            }
            guard length >= v3MinimumHeaderLength, length % 8 == 0, UInt64(length) <= clusterSize,
                Int(length) <= cluster.count
            else {
                throw bad("header_length \(length) is invalid")
            }
            header.headerLength = length
            header.incompatibleFeatures = cluster.be64(at: 72) ?? 0
            header.compatibleFeatures = cluster.be64(at: 80) ?? 0
            header.autoclearFeatures = cluster.be64(at: 88) ?? 0
            header.refcountOrder = cluster.be32(at: 96) ?? 0
            if length > 104 { header.compressionType = cluster[104] }
            if length > v3HeaderLength {
                header.unknownHeaderTail = Array(cluster[Int(v3HeaderLength)..<Int(length)])
            }
        }
        try header.validateFields(path: path, fileCluster: cluster)
        try header.parseExtensions(cluster, path: path)
        return header
    }

    private func validateFields(path: String, fileCluster: [UInt8]) throws {
        func bad(_ reason: String) -> StorageError { .invalidImage(path: path, reason: reason) }
        guard refcountOrder <= 6 else { throw bad("refcount_order \(refcountOrder) is above 6") }
        if cryptMethod != 0 { throw StorageError.unsupported(path: path, reason: "encrypted images (crypt_method \(cryptMethod))") }
        let unknown = incompatibleFeatures & ~Incompatible.known
        if unknown != 0 {
            var names: [String] = []
            let table = QCOW2Header.featureNamesFromRaw(fileCluster, headerLength: Int(headerLength))
            for bit in 0..<64 where unknown & (1 << UInt64(bit)) != 0 {
                names.append(table["0:\(bit)"].map { "'\($0)' (bit \(bit))" } ?? "bit \(bit)")
            }
            throw StorageError.unsupported(path: path, reason: "unknown incompatible features: \(names.joined(separator: ", "))")
        }
        if incompatibleFeatures & Incompatible.externalDataFile != 0 {
            throw StorageError.unsupported(path: path, reason: "external data files")
        }
        if incompatibleFeatures & Incompatible.extendedL2 != 0 {
            throw StorageError.unsupported(path: path, reason: "extended L2 entries (subclusters)")
        }
        if incompatibleFeatures & Incompatible.compressionType != 0 {
            guard headerLength > 104 else { throw bad("compression type bit set but header has no compression_type field") }
            guard compressionType <= 1 else { throw StorageError.unsupported(path: path, reason: "compression type \(compressionType)") }
        } else if compressionType != 0 {
            throw bad("compression_type \(compressionType) without the compression type feature bit")
        }
        guard size <= (UInt64(1) << 62) else { throw bad("virtual size \(size) is absurd") }
        let cs = clusterSize
        guard l1TableOffset % cs == 0 else { throw bad("L1 table offset \(l1TableOffset) is not cluster aligned") }
        guard UInt64(l1Size) * 8 <= QCOW2Header.maxL1Bytes else { throw bad("L1 table of \(l1Size) entries is too large") }
        let l2Coverage = cs * (cs / 8)
        let needed = Checked.divRoundUp(size, l2Coverage)
        guard UInt64(l1Size) >= needed else { throw bad("L1 table (\(l1Size) entries) too small for virtual size \(size)") }
        if l1Size > 0, l1TableOffset == 0 { throw bad("L1 table at offset 0 overlaps the header") }
        guard refcountTableOffset % cs == 0, refcountTableOffset != 0 else {
            throw bad("refcount table offset \(refcountTableOffset) is invalid")
        }
        guard refcountTableClusters > 0, UInt64(refcountTableClusters) * cs <= QCOW2Header.maxRefcountTableBytes else {
            throw bad("refcount table of \(refcountTableClusters) clusters is invalid")
        }
        guard snapshotCount <= 65536 else { throw bad("\(snapshotCount) snapshots is absurd") }
        if snapshotCount > 0, snapshotsOffset % cs != 0 || snapshotsOffset == 0 {
            throw bad("snapshot table offset is invalid")
        }
        if backingFileOffset != 0 {
            guard backingFileSize > 0, backingFileSize <= QCOW2Header.maxBackingNameLength else {
                throw bad("backing file name length \(backingFileSize) is invalid")
            }
            guard backingFileOffset >= UInt64(headerLength),
                let end = Checked.add(backingFileOffset, UInt64(backingFileSize)), end <= cs,
                end <= UInt64(fileCluster.count)
            else {
                throw bad("backing file name lies outside the header cluster")
            }
        }
    }

    private static func featureNamesFromRaw(_ cluster: [UInt8], headerLength: Int) -> [String: String] {
        var probe = QCOW2Header.empty
        probe.headerLength = UInt32(headerLength)
        probe.clusterBits = 21
        try? probe.parseExtensions(cluster, path: "")
        return probe.featureNames
    }

    private mutating func parseExtensions(_ cluster: [UInt8], path: String) throws {
        func bad(_ reason: String) -> StorageError { .invalidImage(path: path, reason: reason) }
        var end = min(UInt64(cluster.count), clusterSize)
        if backingFileOffset != 0 { end = min(end, backingFileOffset) }
        var offset = UInt64(headerLength)
        extensions = []
        while offset + 8 <= end {
            guard let type = cluster.be32(at: Int(offset)), let length = cluster.be32(at: Int(offset) + 4) else { break }
            if type == ExtensionType.end { break }
            let dataStart = offset + 8
            guard UInt64(length) <= end - dataStart else {
                throw bad("header extension 0x\(String(type, radix: 16)) overruns the header cluster")
            }
            let data = Array(cluster[Int(dataStart)..<Int(dataStart + UInt64(length))])
            if type == ExtensionType.backingFormat {
                backingFormat = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
            } else {
                extensions.append(Extension(type: type, data: data))
            }
            offset = dataStart + (UInt64(length) + 7) / 8 * 8
        }
        if backingFileOffset != 0 {
            let start = Int(backingFileOffset)
            let nameBytes = cluster[start..<(start + Int(backingFileSize))]
            if nameBytes.contains(0) { throw bad("backing file name contains a NUL byte") }
            backingFile = String(decoding: nameBytes, as: UTF8.self)
        }
    }

    static var empty: QCOW2Header {
        QCOW2Header(
            version: 3, backingFileOffset: 0, backingFileSize: 0, clusterBits: 16, size: 0, cryptMethod: 0,
            l1Size: 0, l1TableOffset: 0, refcountTableOffset: 0, refcountTableClusters: 0, snapshotCount: 0,
            snapshotsOffset: 0, incompatibleFeatures: 0, compatibleFeatures: 0, autoclearFeatures: 0,
            refcountOrder: 4, headerLength: v3HeaderLength, compressionType: 0, unknownHeaderTail: [],
            extensions: [], backingFile: nil, backingFormat: nil)
    }

    /// Serializes the header, extensions and backing name into the bytes of cluster 0.
    public func serialize() throws -> [UInt8] {
        let fixed = Int(version == 2 ? QCOW2Header.v2HeaderLength : max(headerLength, QCOW2Header.v3HeaderLength))
        var bytes = [UInt8](repeating: 0, count: fixed)
        bytes.putBE32(QCOW2Header.magic, at: 0)
        bytes.putBE32(version, at: 4)
        bytes.putBE32(clusterBits, at: 20)
        bytes.putBE64(size, at: 24)
        bytes.putBE32(cryptMethod, at: 32)
        bytes.putBE32(l1Size, at: 36)
        bytes.putBE64(l1TableOffset, at: 40)
        bytes.putBE64(refcountTableOffset, at: 48)
        bytes.putBE32(refcountTableClusters, at: 56)
        bytes.putBE32(snapshotCount, at: 60)
        bytes.putBE64(snapshotsOffset, at: 64)
        if version == 3 {
            bytes.putBE64(incompatibleFeatures, at: 72)
            bytes.putBE64(compatibleFeatures, at: 80)
            bytes.putBE64(autoclearFeatures, at: 88)
            bytes.putBE32(refcountOrder, at: 96)
            bytes.putBE32(UInt32(fixed), at: 100)
            bytes[104] = compressionType
            for (i, byte) in unknownHeaderTail.enumerated() where 112 + i < fixed { bytes[112 + i] = byte }
        }
        func appendExtension(_ type: UInt32, _ data: [UInt8]) {
            bytes += [UInt8].be32Bytes(type) + [UInt8].be32Bytes(UInt32(data.count)) + data
            bytes += [UInt8](repeating: 0, count: (8 - data.count % 8) % 8)
        }
        if version == 3 || backingFormat != nil {
            if let format = backingFormat { appendExtension(ExtensionType.backingFormat, Array(format.utf8)) }
            for ext in extensions { appendExtension(ext.type, ext.data) }
            appendExtension(ExtensionType.end, [])
        }
        if let name = backingFile {
            let nameBytes = Array(name.utf8)
            guard !nameBytes.isEmpty, nameBytes.count <= Int(QCOW2Header.maxBackingNameLength) else {
                throw StorageError.invalidArgument("backing file name must be 1...1023 bytes")
            }
            bytes.putBE64(UInt64(bytes.count), at: 8)
            bytes.putBE32(UInt32(nameBytes.count), at: 16)
            bytes += nameBytes
        }
        guard UInt64(bytes.count) <= clusterSize else {
            throw StorageError.invalidArgument("header, extensions and backing name do not fit in one \(clusterSize)-byte cluster")
        }
        return bytes
    }
}
