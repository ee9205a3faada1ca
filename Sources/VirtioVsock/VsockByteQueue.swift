/// A FIFO of bytes with a hard capacity: what a connection has taken from the guest but
/// the host socket has not accepted yet. Storage grows on demand up to the capacity.
struct VsockByteQueue {
    let capacity: Int
    private var storage: [UInt8] = []
    private var head = 0

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { storage.count - head }
    var isEmpty: Bool { count == 0 }
    var freeSpace: Int { capacity - count }

    /// Appends all of `bytes`; returns false (appending nothing) if they do not fit.
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count <= freeSpace else { return false }
        if head > 0 && head >= storage.count / 2 {
            storage.removeFirst(head)
            head = 0
        }
        unsafe storage.append(contentsOf: bytes)
        return true
    }

    /// Calls `body` with the queued bytes; it returns how many it consumed.
    mutating func drain(_ body: (UnsafeRawBufferPointer) -> Int) {
        guard !isEmpty else { return }
        let used = unsafe storage.withUnsafeBytes { unsafe body(UnsafeRawBufferPointer(rebasing: $0[head...])) }
        head += max(0, min(used, count))
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.capacity <= 16 * 1024)
            head = 0
        }
    }
}
