/// Allocation status of a guest cluster, for tools that copy only what an image holds.
public enum ClusterStatus: Sendable, Equatable {
    /// Not allocated here: the backing chain (or zeros) shows through.
    case unallocated
    /// Reads as zeros in this image.
    case zero
    /// Holds data in this image (plain or compressed).
    case data
}

/// Whole-image operations on an open qcow2 image: status, header rewrites, resize, emptying.
extension QCOW2Image {
    public var clusterSize: UInt64 { geometry.clusterSize }

    /// The allocation status of the cluster holding guest `offset`.
    public func status(at offset: UInt64) throws -> ClusterStatus {
        try lock.withLock {
            switch try mapping(at: offset) {
            case .unallocated: return .unallocated
            case .zero: return .zero
            case .data, .compressed: return .data
            }
        }
    }

    /// Drops this image's own data for every whole cluster in the range, so the backing file shows through.
    public func makeUnallocated(at offset: UInt64, length: UInt64) throws {
        if isReadOnly { throw StorageError.readOnly(path: file.path) }
        try checkRange(offset, length)
        try lock.withLock {
            try prepareForWrites()
            let cs = geometry.clusterSize
            var position = offset - geometry.offsetInCluster(offset)
            while position < offset + length {
                let l1Index = geometry.l1Index(position)
                if try l2Table(l1Index) != nil {
                    let table = try l2TableForWrite(l1Index)
                    let index = geometry.l2Index(position)
                    let old = try decode(table.entries[index])
                    if old != .unallocated {
                        dropReference(old)
                        table.set(index, 0)
                    }
                }
                position += cs
            }
            try flushMetadata()
        }
    }

    /// Records a new backing file name and format in the header (no data is copied).
    public func setBacking(file name: String?, format: DiskFormat?) throws {
        if isReadOnly { throw StorageError.readOnly(path: self.file.path) }
        try lock.withLock {
            try flushMetadata()
            var updated = header
            updated.backingFile = name
            updated.backingFormat = name == nil ? nil : format?.rawValue
            updated.backingFileOffset = 0
            updated.backingFileSize = 0
            var bytes = try updated.serialize()
            bytes += [UInt8](repeating: 0, count: Int(geometry.clusterSize) - bytes.count)
            try self.file.write(bytes: bytes, at: 0)
            try self.file.sync()
            header = try QCOW2Header.parse(bytes, path: self.file.path)
        }
    }

    /// Grows the virtual size; the L1 table moves if it must grow (new table durable before the header points at it).
    public func grow(to newSize: UInt64) throws {
        if isReadOnly { throw StorageError.readOnly(path: file.path) }
        try lock.withLock {
            guard newSize >= header.size else {
                throw StorageError.unsupported(path: file.path, reason: "shrinking qcow2 images")
            }
            guard newSize <= (UInt64(1) << 61) else { throw StorageError.invalidArgument("size \(newSize) is too large") }
            try prepareForWrites()
            try flushMetadata()
            let cs = geometry.clusterSize
            let needed = Checked.divRoundUp(newSize, cs * geometry.l2Entries)
            guard needed * 8 <= QCOW2Header.maxL1Bytes else { throw StorageError.invalidArgument("size is too large for this cluster size") }
            var l1Offset = header.l1TableOffset
            var l1Count = UInt64(l1.count)
            let oldOffset = header.l1TableOffset
            let oldClusters = Checked.divRoundUp(UInt64(l1.count) * 8, cs)
            if needed > l1Count {
                let clusters = Checked.divRoundUp(needed * 8, cs)
                let first = try allocateClusters(clusters)
                for c in first..<(first + clusters) { metadataClusters.insert(c) }
                var bytes = [UInt8](repeating: 0, count: Int(clusters * cs))
                for (i, entry) in l1.enumerated() { bytes.putBE64(entry, at: i * 8) }
                try flushMetadata()
                try file.write(bytes: bytes, at: first * cs)
                fileEnd = max(fileEnd, (first + clusters) * cs)
                try file.sync()
                l1Offset = first * cs
                l1Count = needed
            }
            var fields = [UInt8](repeating: 0, count: 24)
            fields.putBE64(newSize, at: 0)
            fields.putBE32(header.cryptMethod, at: 8)
            fields.putBE32(UInt32(l1Count), at: 12)
            fields.putBE64(l1Offset, at: 16)
            try file.write(bytes: fields, at: 24)
            try file.sync()
            header.size = newSize
            if l1Offset != oldOffset {
                header.l1TableOffset = l1Offset
                header.l1Size = UInt32(l1Count)
                l1 += [UInt64](repeating: 0, count: Int(l1Count) - l1.count)
                l2Cache += [L2Table?](repeating: nil, count: Int(l1Count) - l2Cache.count)
                if oldClusters > 0 {
                    for c in (oldOffset / cs)..<(oldOffset / cs + oldClusters) {
                        metadataClusters.remove(c)
                        pendingFrees.append((c * cs, cs))
                    }
                }
                try flushMetadata()
            }
        }
    }
}
