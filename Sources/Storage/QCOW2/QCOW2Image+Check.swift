/// Result of a consistency check, shaped like `qemu-img check --output=json`.
public struct QCOW2CheckResult: Sendable, Codable, Equatable {
    public var checkErrors = 0
    public var corruptions = 0
    public var leaks = 0
    public var corruptionsFixed = 0
    public var leaksFixed = 0
    public var totalClusters: UInt64 = 0
    public var allocatedClusters: UInt64 = 0
    public var compressedClusters: UInt64 = 0
    public var imageEndOffset: UInt64 = 0
    public var messages: [String] = []

    enum CodingKeys: String, CodingKey {
        case checkErrors = "check-errors", corruptions, leaks
        case corruptionsFixed = "corruptions-fixed", leaksFixed = "leaks-fixed"
        case totalClusters = "total-clusters", allocatedClusters = "allocated-clusters"
        case compressedClusters = "compressed-clusters", imageEndOffset = "image-end-offset"
        case messages
    }

    /// qemu-img's exit status: 0 clean, 2 corruptions, 3 leaks only.
    public var exitCode: Int32 {
        if corruptions > 0 || checkErrors > 0 { return 2 }
        if leaks > 0 { return 3 }
        return 0
    }
}

/// Reference counting by walking the metadata: check, repair and refcount rebuild. Lock held.
extension QCOW2Image {
    static let maxCheckedClusters: UInt64 = 1 << 30

    /// Counts references to every host cluster below the end of the file.
    func collectReferences(_ result: inout QCOW2CheckResult) throws -> [UInt32] {
        let cs = geometry.clusterSize
        let clusters = Checked.divRoundUp(fileEnd, cs)
        guard clusters <= QCOW2Image.maxCheckedClusters else {
            throw StorageError.unsupported(path: file.path, reason: "image file too large to check")
        }
        var refs = [UInt32](repeating: 0, count: Int(clusters))
        func reference(_ offset: UInt64, _ length: UInt64, _ what: String) {
            guard length > 0 else { return }
            let first = offset / cs
            let last = (offset + length - 1) / cs
            for c in first...last {
                if c >= clusters {
                    result.corruptions += 1
                    result.messages.append("ERROR \(what) at offset \(offset) lies past the end of the file")
                    return
                }
                refs[Int(c)] &+= 1
            }
        }
        reference(0, cs, "header")
        reference(header.l1TableOffset, UInt64(l1.count) * 8, "L1 table")
        reference(header.refcountTableOffset, UInt64(header.refcountTableClusters) * cs, "refcount table")
        for entry in refcountTable where entry != 0 { reference(entry, cs, "refcount block") }
        for l1Index in l1.indices {
            let l2Offset = l1[l1Index] & QCOW2Entry.offsetMask
            if l2Offset == 0 { continue }
            reference(l2Offset, cs, "L2 table")
            guard let table = try l2Table(l1Index) else { continue }
            for (i, entry) in table.entries.enumerated() {
                let mapping: ClusterMapping
                do { mapping = try decode(entry) } catch {
                    result.corruptions += 1
                    result.messages.append("ERROR L2 table at \(l2Offset) entry \(i): \(error)")
                    continue
                }
                switch mapping {
                case .data(let host, _):
                    reference(host, cs, "data cluster")
                    result.allocatedClusters += 1
                case .zero(let host) where host != 0:
                    reference(host, cs, "preallocated zero cluster")
                    result.allocatedClusters += 1
                case .compressed(let host, let length):
                    reference(host, length, "compressed cluster")
                    result.allocatedClusters += 1
                    result.compressedClusters += 1
                default:
                    break
                }
            }
        }
        return refs
    }

    /// Checks refcounts and COPIED flags against the metadata; optionally repairs by rebuilding refcounts.
    func check(repair: Bool) throws -> QCOW2CheckResult {
        var result = QCOW2CheckResult()
        if header.snapshotCount > 0 {
            throw StorageError.unsupported(path: file.path, reason: "checking images with internal snapshots")
        }
        result.totalClusters = Checked.divRoundUp(header.size, geometry.clusterSize)
        let refs = try collectReferences(&result)
        let entries = geometry.refcountBlockEntries
        let coveredClusters = UInt64(refcountTable.count) * entries
        let limit = max(UInt64(refs.count), min(coveredClusters, UInt64(refs.count) + entries))
        for cluster in 0..<limit {
            let expected = cluster < UInt64(refs.count) ? UInt64(refs[Int(cluster)]) : 0
            let actual = try refcount(ofCluster: cluster)
            if actual > expected {
                result.leaks += 1
                if result.messages.count < 1000 {
                    result.messages.append("Leaked cluster \(cluster) refcount=\(actual) reference=\(expected)")
                }
            } else if actual < expected {
                result.corruptions += 1
                if result.messages.count < 1000 {
                    result.messages.append("ERROR cluster \(cluster) refcount=\(actual) reference=\(expected)")
                }
            }
        }
        // COPIED must be set exactly when the refcount is one.
        for l1Index in l1.indices {
            let l2Offset = l1[l1Index] & QCOW2Entry.offsetMask
            if l2Offset == 0 { continue }
            let count = try refcount(ofCluster: l2Offset / geometry.clusterSize)
            if (count == 1) != (l1[l1Index] & QCOW2Entry.copied != 0) {
                result.corruptions += 1
                result.messages.append("ERROR OFLAG_COPIED L2 cluster: l1_index=\(l1Index) refcount=\(count)")
            }
            guard let table = try l2Table(l1Index) else { continue }
            for (i, entry) in table.entries.enumerated() {
                guard let mapping = try? decode(entry) else { continue }
                var host: UInt64 = 0
                if case .data(let h, _) = mapping { host = h }
                if case .zero(let h) = mapping { host = h }
                if host == 0 { continue }
                let count = try refcount(ofCluster: host / geometry.clusterSize)
                if (count == 1) != (entry & QCOW2Entry.copied != 0) {
                    result.corruptions += 1
                    result.messages.append("ERROR OFLAG_COPIED data cluster: l2_entry=\(String(entry, radix: 16)) refcount=\(count) index=\(i)")
                }
            }
        }
        result.imageEndOffset = fileEnd
        if repair && (result.leaks > 0 || result.corruptions > 0) && !isReadOnly {
            let before = result
            try rebuildRefcounts()
            var after = try check(repair: false)
            after.leaksFixed = max(0, before.leaks - after.leaks)
            after.corruptionsFixed = max(0, before.corruptions - after.corruptions)
            after.messages = before.messages + after.messages
            return after
        }
        return result
    }

    /// Public entry point for `check`.
    public func check(repairing repair: Bool = false) throws -> QCOW2CheckResult {
        try lock.withLock { try check(repair: repair) }
    }

    /// Recomputes every refcount from the metadata and writes a fresh refcount table and blocks at the end
    /// of the file; the header switches to them in one write. Also repairs COPIED flags.
    func rebuildRefcounts() throws {
        var scratchResult = QCOW2CheckResult()
        // Unwritten cached metadata would be missed: write it first (without pending frees changing counts).
        try flushMetadata()
        let cs = geometry.clusterSize
        var refs = try collectReferences(&scratchResult)
        guard scratchResult.corruptions == 0 else {
            throw StorageError.corrupt(path: file.path, reason: "metadata points outside the file; cannot rebuild refcounts")
        }
        // The old refcount structures are dropped.
        let oldTableFirst = header.refcountTableOffset / cs
        for c in oldTableFirst..<(oldTableFirst + UInt64(header.refcountTableClusters)) where c < UInt64(refs.count) {
            refs[Int(c)] = 0
        }
        for entry in refcountTable where entry != 0 && entry / cs < UInt64(refs.count) { refs[Int(entry / cs)] = 0 }
        let entries = geometry.refcountBlockEntries
        let start = UInt64(refs.count)
        var tableClusters: UInt64 = 1
        var blocks: UInt64 = 0
        while true {
            let total = start + tableClusters + blocks
            let newBlocks = Checked.divRoundUp(total, entries)
            let newTableClusters = max(1, Checked.divRoundUp(newBlocks * 8, cs))
            if newBlocks == blocks && newTableClusters == tableClusters { break }
            blocks = newBlocks
            tableClusters = newTableClusters
        }
        guard tableClusters * cs <= QCOW2Header.maxRefcountTableBytes else {
            throw StorageError.unsupported(path: file.path, reason: "refcount table would exceed 8 MiB")
        }
        let total = start + tableClusters + blocks
        func count(_ c: UInt64) -> UInt64 { c < start ? UInt64(refs[Int(c)]) : 1 }
        var table = [UInt8](repeating: 0, count: Int(tableClusters * cs))
        var newTable = [UInt64](repeating: 0, count: Int(tableClusters * cs / 8))
        for b in 0..<blocks {
            let block = RefcountBlock(diskOffset: (start + tableClusters + b) * cs, order: geometry.refcountOrder,
                                      bytes: [UInt8](repeating: 0, count: Int(cs)))
            let first = b * entries
            for c in first..<min(first + entries, total) {
                let value = count(c)
                if value > geometry.maxRefcount {
                    throw StorageError.corrupt(path: file.path, reason: "refcount overflow: cluster \(c) has \(value) references")
                }
                if value != 0 { block.set(Int(c - first), value) }
            }
            try file.write(bytes: block.bytes, at: block.diskOffset)
            table.putBE64(block.diskOffset, at: Int(b) * 8)
            newTable[Int(b)] = block.diskOffset
        }
        try file.write(bytes: table, at: start * cs)
        fileEnd = max(fileEnd, total * cs)
        try file.sync()
        var fields = [UInt8](repeating: 0, count: 12)
        fields.putBE64(start * cs, at: 0)
        fields.putBE32(UInt32(tableClusters), at: 8)
        try file.write(bytes: fields, at: 48)
        try file.sync()
        header.refcountTableOffset = start * cs
        header.refcountTableClusters = UInt32(tableClusters)
        refcountTable = newTable
        refcountCache = [:]
        pendingFrees = []
        allocatedEnd = max(allocatedEnd, total)
        freeHint = 1
        try buildMetadataSet()
        // COPIED flags follow the new refcounts.
        for l1Index in l1.indices {
            let l2Offset = l1[l1Index] & QCOW2Entry.offsetMask
            if l2Offset == 0 { continue }
            let shouldCopy = count(l2Offset / cs) == 1
            if shouldCopy != (l1[l1Index] & QCOW2Entry.copied != 0) {
                l1[l1Index] = shouldCopy ? l1[l1Index] | QCOW2Entry.copied : l1[l1Index] & ~QCOW2Entry.copied
                markL1Dirty(l1Index)
            }
            guard let l2 = try l2Table(l1Index) else { continue }
            for i in l2.entries.indices {
                let entry = l2.entries[i]
                guard entry & QCOW2Entry.compressed == 0 else { continue }
                let host = entry & QCOW2Entry.offsetMask
                if host == 0 { continue }
                let shouldCopyData = count(host / cs) == 1
                if shouldCopyData != (entry & QCOW2Entry.copied != 0) {
                    l2.set(i, shouldCopyData ? entry | QCOW2Entry.copied : entry & ~QCOW2Entry.copied)
                }
            }
        }
        try flushMetadata()
    }
}
