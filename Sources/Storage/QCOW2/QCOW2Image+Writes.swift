import Glibc

/// Allocating writes, discards, zeroing and the write-back of cached metadata. Lock held throughout.
extension QCOW2Image {
    func markL1Dirty(_ index: Int) {
        l1DirtyLow = min(l1DirtyLow, index)
        l1DirtyHigh = max(l1DirtyHigh, index)
    }

    /// The L2 table for a write: allocated if missing, and checked to be this image's own (refcount 1).
    func l2TableForWrite(_ l1Index: Int) throws -> L2Table {
        let cs = geometry.clusterSize
        if let table = try l2Table(l1Index) {
            if l1[l1Index] & QCOW2Entry.copied == 0 {
                let count = try refcount(ofCluster: table.diskOffset / cs)
                guard count == 1 else {
                    throw StorageError.unsupported(path: file.path, reason: "shared L2 table (refcount \(count))")
                }
                l1[l1Index] |= QCOW2Entry.copied
                markL1Dirty(l1Index)
            }
            return table
        }
        let cluster = try allocateClusters(1)
        let table = L2Table(diskOffset: cluster * cs, entries: [UInt64](repeating: 0, count: Int(geometry.l2Entries)))
        table.markAllDirty()
        metadataClusters.insert(cluster)
        l2Cache[l1Index] = table
        l2CachedCount += 1
        l1[l1Index] = cluster * cs | QCOW2Entry.copied
        markL1Dirty(l1Index)
        return table
    }

    /// Queues the reference that `mapping` held for release after the next durable L2 write.
    func dropReference(_ mapping: ClusterMapping) {
        switch mapping {
        case .data(let host, _): pendingFrees.append((host, geometry.clusterSize))
        case .zero(let host) where host != 0: pendingFrees.append((host, geometry.clusterSize))
        case .compressed(let host, let length): pendingFrees.append((host, length))
        default: break
        }
    }

    /// Writes through a cluster that is not plainly ours: allocates (copying backing or old data as
    /// needed) and returns the number of bytes of `buffer` consumed starting at `done`.
    func allocatingWrite(at position: UInt64, from buffer: UnsafeRawBufferPointer, done: Int) throws -> Int {
        let cs = geometry.clusterSize
        let inCluster = geometry.offsetInCluster(position)
        let remaining = UInt64(buffer.count - done)
        let length = Int(min(cs - inCluster, remaining))
        let source = unsafe UnsafeRawBufferPointer(rebasing: buffer[done..<(done + length)])
        let l1Index = geometry.l1Index(position)
        let l2Index = geometry.l2Index(position)
        let table = try l2TableForWrite(l1Index)
        let old = try decode(table.entries[l2Index])
        dataWrittenSinceFlush = true

        switch old {
        case .data(let host, true):
            unsafe try file.write(source, at: host + inCluster)
            return length
        case .data(let host, false):
            if try refcount(ofCluster: host / cs) == 1 {
                table.set(l2Index, host | QCOW2Entry.copied)
                unsafe try file.write(source, at: host + inCluster)
                return length
            }
        case .zero(let host) where host != 0 && table.entries[l2Index] & QCOW2Entry.copied != 0:
            // Preallocated zero cluster: fill it in place.
            unsafe scratch.initializeMemory(as: UInt8.self, repeating: 0)
            unsafe UnsafeMutableRawBufferPointer(rebasing: scratch[Int(inCluster)..<(Int(inCluster) + length)]).copyMemory(from: source)
            unsafe try file.write(UnsafeRawBufferPointer(scratch), at: host)
            table.set(l2Index, host | QCOW2Entry.copied)
            return length
        default:
            break
        }

        // Count whole clusters that can be allocated as one run within this L2 table.
        var count: UInt64 = 1
        let whole = inCluster == 0 && remaining >= cs
        if whole {
            while count < remaining / cs, UInt64(l2Index) + count < geometry.l2Entries {
                let next = try decode(table.entries[l2Index + Int(count)])
                if case .data = next { break }
                if case .zero(let h) = next, h != 0 { break }
                count += 1
            }
        }
        let first = try allocateClusters(count)
        let host = first * cs
        do {
            if whole {
                let bytes = Int(count * cs)
                unsafe try file.write(UnsafeRawBufferPointer(rebasing: buffer[done..<(done + bytes)]), at: host)
            } else {
                unsafe try writePartialCluster(old: old, clusterStart: position - inCluster, host: host,
                                        inCluster: inCluster, source: source)
            }
        } catch {
            for c in first..<(first + count) { try? setRefcount(ofCluster: c, to: 0) }
            freeHint = min(freeHint, first)
            throw error
        }
        fileEnd = max(fileEnd, host + count * cs)
        for i in 0..<Int(count) {
            dropReference(try decode(table.entries[l2Index + i]))
            table.set(l2Index + i, (host + UInt64(i) * cs) | QCOW2Entry.copied)
        }
        return whole ? Int(count * cs) : length
    }

    /// Writes one newly allocated cluster: the old content (backing, zeros, shared or compressed data)
    /// merged with `source`.
    private func writePartialCluster(old: ClusterMapping, clusterStart: UInt64, host: UInt64,
                                     inCluster: UInt64, source: UnsafeRawBufferPointer) throws {
        let cs = geometry.clusterSize
        var baseIsZero: Bool
        switch old {
        case .unallocated: baseIsZero = backing.map { clusterStart >= $0.size } ?? true
        case .zero: baseIsZero = true
        default: baseIsZero = false
        }
        if baseIsZero && host >= fileEnd {
            // A fresh cluster past the end of the file already reads as zeros.
            unsafe try file.write(source, at: host + inCluster)
            if host + cs > (try file.length()) { try file.truncate(to: host + cs) }
            return
        }
        switch old {
        case .unallocated:
            if baseIsZero {
                unsafe scratch.initializeMemory(as: UInt8.self, repeating: 0)
            } else {
                let limit = min(cs, header.size - clusterStart)
                unsafe scratch.initializeMemory(as: UInt8.self, repeating: 0)
                unsafe try readBacking(at: clusterStart, into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<Int(limit)]))
            }
        case .zero:
            unsafe scratch.initializeMemory(as: UInt8.self, repeating: 0)
        case .data(let oldHost, _):
            unsafe try file.readZeroFilled(into: scratch, at: oldHost)
        case .compressed(let oldHost, let maxLength):
            try loadCompressed(host: oldHost, maxLength: maxLength)
            unsafe scratch.copyMemory(from: UnsafeRawBufferPointer(decompressed))
        }
        unsafe UnsafeMutableRawBufferPointer(rebasing: scratch[Int(inCluster)..<(Int(inCluster) + source.count)]).copyMemory(from: source)
        unsafe try file.write(UnsafeRawBufferPointer(scratch), at: host)
    }

    /// Writes dirty metadata in crash-safe order and applies deferred refcount decrements.
    func flushMetadata() throws {
        if isReadOnly { return }
        let dirtyBlocks = refcountCache.values.filter { $0.dirty }.sorted { $0.diskOffset < $1.diskOffset }
        for block in dirtyBlocks {
            try file.write(bytes: block.bytes, at: block.diskOffset)
            block.dirty = false
        }
        // Data and refcounts are durable before any L2 entry points at them.
        try file.sync()
        let dirtyTables = l2Cache.lazy.compactMap { $0 }.filter { $0.isDirty }
        let l1IsDirty = l1DirtyHigh >= l1DirtyLow
        if !dirtyTables.isEmpty || l1IsDirty {
            for table in dirtyTables {
                try writeEntries(table.entries, low: table.dirtyLow, high: table.dirtyHigh, base: table.diskOffset)
                table.dirtyLow = Int.max
                table.dirtyHigh = -1
            }
            if l1IsDirty {
                if !dirtyTables.isEmpty { try file.sync() }
                try writeEntries(l1, low: l1DirtyLow, high: l1DirtyHigh, base: header.l1TableOffset)
                l1DirtyLow = Int.max
                l1DirtyHigh = -1
            }
            try file.sync()
        }
        dataWrittenSinceFlush = false
        if !pendingFrees.isEmpty {
            let frees = pendingFrees
            pendingFrees = []
            let cs = geometry.clusterSize
            for free in frees where free.length > 0 {
                let first = free.offset / cs
                let last = (free.offset + free.length - 1) / cs
                for cluster in first...last {
                    let count = try refcount(ofCluster: cluster)
                    if count == 0 { continue }
                    try setRefcount(ofCluster: cluster, to: count - 1)
                    if count == 1 {
                        freeHint = min(freeHint, cluster)
                        metadataClusters.remove(cluster)
                    }
                }
            }
        }
    }

    private func writeEntries(_ entries: [UInt64], low: Int, high: Int, base: UInt64) throws {
        guard low <= high else { return }
        var bytes = [UInt8](repeating: 0, count: (high - low + 1) * 8)
        for i in low...high { bytes.putBE64(entries[i], at: (i - low) * 8) }
        try file.write(bytes: bytes, at: base + UInt64(low) * 8)
    }

    /// Writes back and drops cached tables when the caches outgrow their budget.
    func trimCaches() throws {
        let cs = Int(geometry.clusterSize)
        guard (l2CachedCount + refcountCache.count) * cs > cacheLimitBytes else { return }
        try flushMetadata()
        for i in l2Cache.indices { l2Cache[i] = nil }
        l2CachedCount = 0
        refcountCache = [:]
    }

    // MARK: - Discard and write-zeroes

    /// Applies `newEntry(old)` to every whole cluster in the range; returns the byte ranges of partial clusters.
    private func updateWholeClusters(
        at offset: UInt64, length: UInt64, _ newEntry: (UInt64, ClusterMapping) -> UInt64?
    ) throws -> [(UInt64, UInt64)] {
        let cs = geometry.clusterSize
        let end = offset + length
        var partial: [(UInt64, UInt64)] = []
        var position = offset
        while position < end {
            let clusterStart = position - geometry.offsetInCluster(position)
            let clusterEnd = min(clusterStart + cs, header.size)
            let segmentEnd = min(clusterEnd, end)
            if position != clusterStart || segmentEnd != clusterEnd {
                partial.append((position, segmentEnd - position))
                position = segmentEnd
                continue
            }
            let l1Index = geometry.l1Index(position)
            let l2Index = geometry.l2Index(position)
            let old: ClusterMapping = try l2Table(l1Index).map { try decode($0.entries[l2Index]) } ?? .unallocated
            let oldEntry = try l2Table(l1Index)?.entries[l2Index] ?? 0
            if let replacement = newEntry(oldEntry, old), replacement != oldEntry {
                let table = try l2TableForWrite(l1Index)
                let keepsHost = replacement & QCOW2Entry.offsetMask != 0
                if !keepsHost { dropReference(old) }
                table.set(l2Index, replacement)
            }
            position = segmentEnd
        }
        return partial
    }

    public func discard(at offset: UInt64, length: UInt64) throws {
        if isReadOnly { throw StorageError.readOnly(path: file.path) }
        try checkRange(offset, length)
        if length == 0 { return }
        let hasBacking = backing != nil
        let v3 = header.version == 3
        _ = try lock.withLock {
            try checkOpen()
            try trimCaches()
            try prepareForWrites()
            return try updateWholeClusters(at: offset, length: length) { _, old in
                if old == .unallocated { return nil }
                if !hasBacking { return 0 }
                return v3 ? QCOW2Entry.zero : nil
            }
        }
    }

    public func writeZeroes(at offset: UInt64, length: UInt64, unmap: Bool) throws {
        if isReadOnly { throw StorageError.readOnly(path: file.path) }
        try checkRange(offset, length)
        if length == 0 { return }
        let hasBacking = backing != nil
        let v3 = header.version == 3
        if !v3 && hasBacking {
            // Version 2 has no zero flag and unallocated clusters show the backing file: write zeros.
            try writeZeroData(at: offset, length: length)
            return
        }
        let partial = try lock.withLock {
            try checkOpen()
            try trimCaches()
            try prepareForWrites()
            return try updateWholeClusters(at: offset, length: length) { oldEntry, old -> UInt64? in
                if old == .unallocated && !hasBacking { return nil }
                if v3 {
                    if !unmap, case .data(let host, true) = old { return host | QCOW2Entry.copied | QCOW2Entry.zero }
                    if case .zero = old, oldEntry & QCOW2Entry.offsetMask != 0, !unmap { return nil }
                    return QCOW2Entry.zero
                }
                // Version 2 without a backing file: unallocated clusters read as zeros.
                return 0
            }
        }
        for (start, count) in partial { try writeZeroData(at: start, length: count) }
    }

    private func writeZeroData(at offset: UInt64, length: UInt64) throws {
        let chunk = Int(min(length, 1 << 20))
        let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { unsafe zeros.deallocate() }
        unsafe zeros.initializeMemory(as: UInt8.self, repeating: 0)
        var done: UInt64 = 0
        while done < length {
            let n = Int(min(UInt64(chunk), length - done))
            unsafe try write(at: offset + done, from: UnsafeRawBufferPointer(rebasing: zeros[0..<n]))
            done += UInt64(n)
        }
    }
}
