/// Options for a new qcow2 image (the subset of qemu-img's `-o` that matters).
public struct QCOW2CreateOptions: Sendable {
    public var size: UInt64
    public var clusterSize: UInt64 = 65536
    /// 2 (compat=0.10) or 3 (compat=1.1).
    public var version: UInt32 = 3
    public var refcountBits: UInt64 = 16
    public var lazyRefcounts = false
    public var backingFile: String?
    public var backingFormat: DiskFormat?

    public init(size: UInt64) { self.size = size }
}

extension QCOW2Image {
    /// Creates an empty qcow2 image: header, L1 table, refcount table and blocks, all refcounted.
    public static func create(path: String, options: QCOW2CreateOptions, overwrite: Bool = false) throws {
        let cs = options.clusterSize
        guard cs.nonzeroBitCount == 1, (512...(2 << 20)).contains(cs) else {
            throw StorageError.invalidArgument("cluster size must be a power of two from 512 B to 2 MiB")
        }
        guard options.version == 2 || options.version == 3 else {
            throw StorageError.invalidArgument("qcow2 version must be 2 (compat=0.10) or 3 (compat=1.1)")
        }
        guard options.refcountBits.nonzeroBitCount == 1, options.refcountBits <= 64 else {
            throw StorageError.invalidArgument("refcount bits must be a power of two up to 64")
        }
        if options.version == 2 && (options.refcountBits != 16 || options.lazyRefcounts) {
            throw StorageError.invalidArgument("compat=0.10 images need 16-bit refcounts and no lazy refcounts")
        }
        guard options.size <= (UInt64(1) << 61) else { throw StorageError.invalidArgument("size \(options.size) is too large") }
        if options.backingFile != nil && options.backingFormat == nil {
            throw StorageError.invalidArgument("a backing file needs an explicit backing format (-F)")
        }
        let clusterBits = UInt32(cs.trailingZeroBitCount)
        let refcountOrder = UInt32(options.refcountBits.trailingZeroBitCount)
        let geometry = QCOW2Geometry(clusterBits: clusterBits, refcountOrder: refcountOrder)
        let l1Entries = Checked.divRoundUp(options.size, cs * geometry.l2Entries)
        guard l1Entries * 8 <= QCOW2Header.maxL1Bytes else { throw StorageError.invalidArgument("size is too large for this cluster size") }
        let l1Clusters = Checked.divRoundUp(max(l1Entries, 1) * 8, cs)
        // Layout: header | L1 | refcount table | refcount blocks, all counted in the blocks.
        var tableClusters: UInt64 = 1
        var blocks: UInt64 = 1
        while true {
            let total = 1 + l1Clusters + tableClusters + blocks
            let newBlocks = Checked.divRoundUp(total, geometry.refcountBlockEntries)
            let newTable = max(1, Checked.divRoundUp(newBlocks * 8, cs))
            if newBlocks == blocks && newTable == tableClusters { break }
            blocks = newBlocks
            tableClusters = newTable
        }
        let total = 1 + l1Clusters + tableClusters + blocks
        var header = QCOW2Header.empty
        header.version = options.version
        header.clusterBits = clusterBits
        header.size = options.size
        header.l1Size = UInt32(l1Entries)
        header.l1TableOffset = cs
        header.refcountTableOffset = (1 + l1Clusters) * cs
        header.refcountTableClusters = UInt32(tableClusters)
        header.refcountOrder = refcountOrder
        header.headerLength = options.version == 3 ? QCOW2Header.v3HeaderLength : QCOW2Header.v2HeaderLength
        header.compatibleFeatures = options.lazyRefcounts ? QCOW2Header.Compatible.lazyRefcounts : 0
        header.backingFile = options.backingFile
        header.backingFormat = options.backingFormat?.rawValue
        if options.version == 3 { header.extensions = [featureNameTable()] }
        // The feature-name table is optional: dropped when it does not fit beside a long backing name.
        let headerBytes: [UInt8]
        if let bytes = try? header.serialize() {
            headerBytes = bytes
        } else {
            header.extensions = []
            headerBytes = try header.serialize()
        }

        let file = try ImageFile.create(path: path, overwrite: overwrite)
        var image = [UInt8](repeating: 0, count: Int(total * cs))
        image.replaceSubrange(0..<headerBytes.count, with: headerBytes)
        let firstBlock = 1 + l1Clusters + tableClusters
        for b in 0..<blocks {
            image.putBE64((firstBlock + b) * cs, at: Int((1 + l1Clusters) * cs + b * 8))
            let block = RefcountBlock(diskOffset: 0, order: UInt64(refcountOrder), bytes: [UInt8](repeating: 0, count: Int(cs)))
            let first = b * geometry.refcountBlockEntries
            for c in first..<min(first + geometry.refcountBlockEntries, total) { block.set(Int(c - first), 1) }
            let at = Int((firstBlock + b) * cs)
            image.replaceSubrange(at..<(at + Int(cs)), with: block.bytes)
        }
        try file.write(bytes: image, at: 0)
        try file.sync()
    }

    /// The feature-name table QEMU writes, so tools can name the bits.
    static func featureNameTable() -> QCOW2Header.Extension {
        let names: [(UInt8, UInt8, String)] = [
            (0, 0, "dirty bit"), (0, 1, "corrupt bit"), (0, 2, "external data file"),
            (0, 3, "compression type"), (0, 4, "extended L2 entries"), (1, 0, "lazy refcounts"),
            (2, 0, "bitmaps"), (2, 1, "raw external data"),
        ]
        var data: [UInt8] = []
        for (type, bit, name) in names {
            var entry = [UInt8](repeating: 0, count: 48)
            entry[0] = type
            entry[1] = bit
            for (i, byte) in name.utf8.prefix(46).enumerated() { entry[2 + i] = byte }
            data += entry
        }
        return QCOW2Header.Extension(type: QCOW2Header.ExtensionType.featureNames, data: data)
    }
}
