/// Refcount lookups, cluster allocation and refcount-table growth. All called with the lock held.
extension QCOW2Image {
    func refcountBlock(_ tableIndex: Int) throws -> RefcountBlock? {
        guard tableIndex < refcountTable.count else { return nil }
        let offset = refcountTable[tableIndex]
        if offset == 0 { return nil }
        if let block = refcountCache[tableIndex] { return block }
        var bytes = [UInt8](repeating: 0, count: Int(geometry.clusterSize))
        unsafe try bytes.withUnsafeMutableBytes { unsafe try file.readExactly(into: $0, at: offset, what: "refcount block") }
        let block = RefcountBlock(diskOffset: offset, order: geometry.refcountOrder, bytes: bytes)
        refcountCache[tableIndex] = block
        return block
    }

    /// The refcount of a host cluster (0 when no refcount block covers it).
    func refcount(ofCluster cluster: UInt64) throws -> UInt64 {
        let tableIndex = cluster / geometry.refcountBlockEntries
        guard tableIndex < UInt64(refcountTable.count), let block = try refcountBlock(Int(tableIndex)) else { return 0 }
        return block.get(Int(cluster % geometry.refcountBlockEntries))
    }

    /// Sets a refcount; the covering block must exist.
    func setRefcount(ofCluster cluster: UInt64, to value: UInt64) throws {
        guard value <= geometry.maxRefcount else {
            throw StorageError.corrupt(path: file.path, reason: "refcount overflow at cluster \(cluster)")
        }
        let tableIndex = cluster / geometry.refcountBlockEntries
        guard tableIndex < UInt64(refcountTable.count), let block = try refcountBlock(Int(tableIndex)) else {
            throw StorageError.corrupt(path: file.path, reason: "no refcount block covers cluster \(cluster)")
        }
        block.set(Int(cluster % geometry.refcountBlockEntries), value)
    }

    var maxClusterIndex: UInt64 { (UInt64(1) << 56) / geometry.clusterSize }

    /// Allocates `count` contiguous free clusters with refcount 1; returns the first cluster index.
    func allocateClusters(_ count: UInt64) throws -> UInt64 {
        precondition(count > 0)
        while true {
            var start = freeHint
            var run: UInt64 = 0
            var cluster = freeHint
            while run < count {
                guard cluster < maxClusterIndex else {
                    throw StorageError.unsupported(path: file.path, reason: "image would grow past 2^56 bytes")
                }
                if cluster != 0, !metadataClusters.contains(cluster), try refcount(ofCluster: cluster) == 0 {
                    if run == 0 { start = cluster }
                    run += 1
                } else {
                    run = 0
                }
                cluster += 1
            }
            var changed = false
            let entries = geometry.refcountBlockEntries
            for tableIndex in (start / entries)...((start + count - 1) / entries) {
                if try ensureRefcountBlock(tableIndex: tableIndex) { changed = true }
            }
            if changed { continue }
            for c in start..<(start + count) { try setRefcount(ofCluster: c, to: 1) }
            freeHint = start + count
            allocatedEnd = max(allocatedEnd, start + count)
            return start
        }
    }

    /// Makes sure a refcount block exists for `tableIndex`; true if anything was created.
    func ensureRefcountBlock(tableIndex: UInt64) throws -> Bool {
        if tableIndex < UInt64(refcountTable.count), refcountTable[Int(tableIndex)] != 0 { return false }
        if tableIndex >= UInt64(refcountTable.count) {
            try growRefcountTable(toCover: tableIndex)
            return true
        }
        // No block covers this range, so none of its clusters is counted: place the block inside it.
        let entries = geometry.refcountBlockEntries
        var cluster = tableIndex * entries
        while cluster == 0 || metadataClusters.contains(cluster) {
            cluster += 1
            if cluster >= (tableIndex + 1) * entries {
                throw StorageError.corrupt(path: file.path, reason: "no room for a refcount block")
            }
        }
        let cs = geometry.clusterSize
        let block = RefcountBlock(
            diskOffset: cluster * cs, order: geometry.refcountOrder, bytes: [UInt8](repeating: 0, count: Int(cs)))
        block.set(Int(cluster - tableIndex * entries), 1)
        try file.write(bytes: block.bytes, at: cluster * cs)
        block.dirty = false
        fileEnd = max(fileEnd, (cluster + 1) * cs)
        try file.sync()
        try file.write(bytes: [UInt8].be64Bytes(cluster * cs), at: header.refcountTableOffset + tableIndex * 8)
        refcountTable[Int(tableIndex)] = cluster * cs
        refcountCache[Int(tableIndex)] = block
        metadataClusters.insert(cluster)
        allocatedEnd = max(allocatedEnd, cluster + 1)
        return true
    }

    /// Moves the refcount table to a larger place at the end of the image, with blocks for its own clusters.
    func growRefcountTable(toCover tableIndex: UInt64) throws {
        let cs = geometry.clusterSize
        let perCluster = cs / 8
        let entries = geometry.refcountBlockEntries
        let old = refcountTable
        var newCount = max(UInt64(old.count) * 2, tableIndex + 1)
        newCount = Checked.divRoundUp(newCount, perCluster) * perCluster
        let metadataEnd = (metadataClusters.max() ?? 0) + 1
        let start = max(Checked.divRoundUp(fileEnd, cs), allocatedEnd, metadataEnd)
        var tableClusters: UInt64 = 0
        var missing: [UInt64] = []
        while true {
            tableClusters = newCount / perCluster
            guard tableClusters * cs <= QCOW2Header.maxRefcountTableBytes else {
                throw StorageError.unsupported(path: file.path, reason: "refcount table would exceed 8 MiB")
            }
            missing = []
            var blocks = 0
            while true {
                let last = start + tableClusters + UInt64(blocks) - 1
                missing = ((start / entries)...(last / entries)).filter { $0 >= UInt64(old.count) || old[Int($0)] == 0 }
                if missing.count == blocks { break }
                blocks = missing.count
            }
            let last = start + tableClusters + UInt64(missing.count) - 1
            if last / entries < newCount { break }
            newCount = Checked.divRoundUp(last / entries + 1, perCluster) * perCluster
        }
        let regionEnd = start + tableClusters + UInt64(missing.count)
        var newTable = old + [UInt64](repeating: 0, count: Int(newCount) - old.count)
        var newBlocks: [Int: RefcountBlock] = [:]
        for (k, index) in missing.enumerated() {
            let offset = (start + tableClusters + UInt64(k)) * cs
            newTable[Int(index)] = offset
            newBlocks[Int(index)] = RefcountBlock(
                diskOffset: offset, order: geometry.refcountOrder, bytes: [UInt8](repeating: 0, count: Int(cs)))
        }
        // Count the new table and blocks: in the new blocks directly, in existing blocks through the cache.
        refcountTable = newTable
        for (index, block) in newBlocks { refcountCache[index] = block }
        for cluster in start..<regionEnd { try setRefcount(ofCluster: cluster, to: 1) }
        for block in newBlocks.values {
            try file.write(bytes: block.bytes, at: block.diskOffset)
            block.dirty = false
        }
        for block in refcountCache.values where block.dirty {
            try file.write(bytes: block.bytes, at: block.diskOffset)
            block.dirty = false
        }
        var tableBytes = [UInt8](repeating: 0, count: Int(tableClusters * cs))
        for (i, entry) in newTable.enumerated() { tableBytes.putBE64(entry, at: i * 8) }
        try file.write(bytes: tableBytes, at: start * cs)
        fileEnd = max(fileEnd, regionEnd * cs)
        try file.sync()
        var fields = [UInt8](repeating: 0, count: 12)
        fields.putBE64(start * cs, at: 0)
        fields.putBE32(UInt32(tableClusters), at: 8)
        try file.write(bytes: fields, at: 48)
        try file.sync()
        let oldOffset = header.refcountTableOffset
        let oldClusters = UInt64(header.refcountTableClusters)
        header.refcountTableOffset = start * cs
        header.refcountTableClusters = UInt32(tableClusters)
        for c in start..<regionEnd { metadataClusters.insert(c) }
        allocatedEnd = max(allocatedEnd, regionEnd)
        // The old table is unreferenced now that the header points at the new one.
        for c in (oldOffset / cs)..<(oldOffset / cs + oldClusters) {
            metadataClusters.remove(c)
            try setRefcount(ofCluster: c, to: 0)
        }
        freeHint = min(freeHint, oldOffset / cs)
    }
}
