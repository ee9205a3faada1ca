/// The entries of one keyed container in the input, indexed once so that lookups by key need
/// no scan of the input: a linear search of the entry list for small containers (structs), a
/// hash table for larger ones (dictionaries). Keys are compared as UTF-8 bytes, in place.
struct KeyedIndex {
    struct Entry {
        /// The key's UTF-8 in the input.
        let key: Range<Int>
        /// Offset of the entry's value.
        let value: Int
    }

    /// Containers with at most this many entries are searched linearly.
    static let linearSearchLimit = 16

    /// The entries in input order.
    private(set) var entries: [Entry] = []
    /// Open-addressing hash table of entry positions plus one (0 = empty slot), a power of two
    /// at least twice the entry count; empty for containers searched linearly.
    private var slots: [Int] = []
    /// Nesting depth of the container.
    let depth: Int
    /// Offset just past the container's last entry.
    var end = 0

    /// An empty index for a container at `depth` announcing `count` entries (checked against
    /// the input by the caller, so the reservations are bounded by the input size).
    init(count: Int, depth: Int) {
        self.depth = depth
        entries.reserveCapacity(count)
        if count > Self.linearSearchLimit {
            slots = Array(repeating: 0, count: 1 << (Int.bitWidth - (2 * count - 1).leadingZeroBitCount))
        }
    }

    /// Adds `entry` unless its key is already present; returns whether it was added.
    mutating func insert(_ entry: Entry, in input: UnsafeRawBufferPointer) -> Bool {
        let key = UnsafeRawBufferPointer(rebasing: input[entry.key])
        if slots.isEmpty {
            guard linearSearch(key, in: input) == nil else { return false }
        } else {
            let mask = slots.count - 1
            var slot = Self.hash(key) & mask
            while slots[slot] != 0 {
                if Self.key(of: entries[slots[slot] - 1], in: input, equals: key) { return false }
                slot = (slot + 1) & mask
            }
            slots[slot] = entries.count + 1
        }
        entries.append(entry)
        return true
    }

    /// Offset of the value whose key is `key` (UTF-8).
    func valueOffset(forKey key: UnsafeRawBufferPointer, in input: UnsafeRawBufferPointer) -> Int? {
        if slots.isEmpty { return linearSearch(key, in: input) }
        let mask = slots.count - 1
        var slot = Self.hash(key) & mask
        while slots[slot] != 0 {
            let entry = entries[slots[slot] - 1]
            if Self.key(of: entry, in: input, equals: key) { return entry.value }
            slot = (slot + 1) & mask
        }
        return nil
    }

    private func linearSearch(_ key: UnsafeRawBufferPointer, in input: UnsafeRawBufferPointer) -> Int? {
        for entry in entries where Self.key(of: entry, in: input, equals: key) {
            return entry.value
        }
        return nil
    }

    private static func key(of entry: Entry, in input: UnsafeRawBufferPointer, equals key: UnsafeRawBufferPointer) -> Bool {
        entry.key.count == key.count && entry.key.upperBound <= input.count
            && UnsafeRawBufferPointer(rebasing: input[entry.key]).elementsEqual(key)
    }

    /// Swift's per-process randomly seeded hash, so input cannot be built to collide.
    private static func hash(_ key: UnsafeRawBufferPointer) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: key)
        return hasher.finalize()
    }
}
