/// A FIFO of bytes with a hard capacity: what a connection has taken from the guest but
/// the host socket has not accepted yet. Storage is a list of 4 KiB chunks, allocated as bytes
/// arrive and freed as they leave, so the memory held follows what is queued (at most one
/// chunk more) instead of the largest the queue ever was.
struct VsockByteQueue {
    static let chunkSize = 4096
    let capacity: Int
    private var chunks: [[UInt8]] = []
    /// Bytes of `chunks[0]` already consumed.
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) { self.capacity = capacity }

    var isEmpty: Bool { count == 0 }
    var freeSpace: Int { capacity - count }

    /// Appends all of `bytes`; returns false (appending nothing) if they do not fit.
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= freeSpace else { return false }
        var offset = 0
        while offset < bytes.count {
            if chunks.last.map({ $0.count == Self.chunkSize }) ?? true {
                var chunk: [UInt8] = []
                chunk.reserveCapacity(Self.chunkSize)
                chunks.append(chunk)
            }
            let last = chunks.count - 1
            let n = min(Self.chunkSize - chunks[last].count, bytes.count - offset)
            unsafe chunks[last].append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))
            offset += n
        }
        count += bytes.count
        return true
    }

    /// Calls `body` with the queued bytes, one chunk at a time, while it consumes each whole;
    /// it returns how many it consumed (fewer: the reader is full, stop).
    mutating func drain(_ body: (UnsafeRawBufferPointer) -> Int) {
        while let first = chunks.first {
            let available = first.count - head
            let used = unsafe first.withUnsafeBytes { unsafe body(UnsafeRawBufferPointer(rebasing: $0[head...])) }
            let taken = max(0, min(used, available))
            head += taken
            count -= taken
            if head == first.count {
                chunks.removeFirst()
                head = 0
            }
            if taken < available { return }
        }
    }
}
