/// A first-in first-out queue of bytes with a fixed capacity, stored in a ring.
///
/// It never grows: `push` refuses a byte when the queue is full, so a guest or host that
/// does not drain it cannot make the VMM allocate.
struct ByteQueue: Sendable {
    private var storage: [UInt8]
    private var head = 0
    private(set) var count = 0

    /// Creates an empty queue holding at most `capacity` bytes (at least one).
    init(capacity: Int) {
        storage = [UInt8](repeating: 0, count: max(1, capacity))
    }

    /// Creates a queue holding at most `capacity` bytes that contains `contents`, oldest first;
    /// bytes past the capacity are dropped (callers check the length first).
    init(capacity: Int, contents: some Sequence<UInt8>) {
        self.init(capacity: capacity)
        for byte in contents {
            guard push(byte) else { break }
        }
    }

    var capacity: Int { storage.count }
    var isEmpty: Bool { count == 0 }
    var isFull: Bool { count == storage.count }
    var freeSpace: Int { storage.count - count }

    /// The bytes in the queue, oldest first.
    var contents: [UInt8] {
        (0..<count).map { i in
            var index = head + i
            if index >= storage.count { index -= storage.count }
            return storage[index]
        }
    }

    /// The oldest byte, if any.
    var first: UInt8? { isEmpty ? nil : storage[head] }

    /// Appends `byte`; returns false (and drops it) when the queue is full.
    @discardableResult
    mutating func push(_ byte: UInt8) -> Bool {
        guard !isFull else { return false }
        var tail = head + count
        if tail >= storage.count { tail -= storage.count }
        storage[tail] = byte
        count += 1
        return true
    }

    /// Removes and returns the oldest byte, or nil when empty.
    mutating func pop() -> UInt8? {
        guard !isEmpty else { return nil }
        let byte = storage[head]
        head += 1
        if head == storage.count { head = 0 }
        count -= 1
        return byte
    }

    /// Drops every byte.
    mutating func removeAll() {
        head = 0
        count = 0
    }
}
