import Storage
/// An image in the store as a read-only block device (chunks fetched, checked and cached on demand).
public final class StoreImage: BlockDevice, @unchecked Sendable {
    // @unchecked: the chunk cache is touched only with `lock` held (held across the chunk read).
    public let manifest: Manifest
    public var size: UInt64 { manifest.size }
    public var isReadOnly: Bool { true }
    private let store: ImageStore
    private let starts: [UInt64]
    private let lock = PosixLock()
    private var cache: [Int: [UInt8]] = [:]
    private var cacheOrder: [Int] = []
    private static let cacheChunks = 64

    init(store: ImageStore, manifest: Manifest) throws {
        self.store = store
        self.manifest = manifest
        var starts: [UInt64] = []
        starts.reserveCapacity(manifest.entries.count)
        var offset: UInt64 = 0
        for entry in manifest.entries {
            starts.append(offset)
            offset += entry.length
        }
        self.starts = starts
    }

    /// Index of the entry that holds `offset` (binary search).
    private func entryIndex(_ offset: UInt64) -> Int {
        var low = 0
        var high = starts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if starts[mid] <= offset { low = mid } else { high = mid - 1 }
        }
        return low
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(offset, UInt64(buffer.count))
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let index = entryIndex(position)
            let entry = manifest.entries[index]
            let offsetInEntry = position - starts[index]
            let within = Int(offsetInEntry)
            let n = Int(min(entry.length - offsetInEntry, UInt64(buffer.count - done)))
            let target = unsafe UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + n)])
            switch entry {
            case .zero:
                unsafe target.initializeMemory(as: UInt8.self, repeating: 0)
            case .chunk(let hash, let length):
                try lock.withLock {
                    let data: [UInt8]
                    if let cached = cache[index] {
                        data = cached
                    } else {
                        data = try store.loadChunk(hash, length: length)
                        cache[index] = data
                        cacheOrder.append(index)
                        if cacheOrder.count > StoreImage.cacheChunks { cache[cacheOrder.removeFirst()] = nil }
                    }
                    unsafe data.withUnsafeBytes { unsafe target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[within..<(within + n)])) }
                }
            }
            done += n
        }
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        throw StorageError.readOnly(path: "store image \(manifest.name)")
    }

    public func flush() throws {}

    public func discard(at offset: UInt64, length: UInt64) throws {
        throw StorageError.readOnly(path: "store image \(manifest.name)")
    }

    public func writeZeroes(at offset: UInt64, length: UInt64, unmap: Bool) throws {
        throw StorageError.readOnly(path: "store image \(manifest.name)")
    }

    public func close() throws {}
}
