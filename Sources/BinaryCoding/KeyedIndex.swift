/// The entries of one keyed container in the input, indexed once so that lookups by key need
/// no scan of the input: a linear search of the entry list for small containers (structs), a
/// hash table for larger ones (dictionaries). Keys are compared as UTF-8 bytes, in place.
///
/// A class, because `KeyedDecodingContainer` copies its container on every call.
final class KeyedIndex {
    struct Entry {
        /// The key's UTF-8 in the input.
        let key: Range<Int>
        let fingerprint: KeyFingerprint
        /// Offset of the entry's value.
        let value: Int
    }

    /// Containers with at most this many entries are searched linearly.
    static let linearSearchLimit = 16

    /// The entries in input order.
    let entries: [Entry]
    /// Open-addressing hash table of entry positions plus one (0 = empty slot), a power of two
    /// at least twice the entry count; empty for containers searched linearly.
    private let slots: [Int]
    /// Nesting depth of the container.
    let depth: Int
    /// Offset just past the container's last entry.
    let end: Int
    /// Where the next linear search starts: at the entry found last, as types mostly read their
    /// keys in the order they wrote them (and `decodeIfPresent` looks a key up more than once).
    private var searchStart = 0

    private init(entries: [Entry], slots: [Int], depth: Int, end: Int) {
        self.entries = entries
        self.slots = slots
        self.depth = depth
        self.end = end
    }

    /// Offset of the value whose key is `key` (UTF-8).
    func valueOffset(forKey key: UnsafeRawBufferPointer, in input: UnsafeRawBufferPointer) -> Int? {
        let fingerprint = unsafe KeyFingerprint(key)
        if slots.isEmpty {
            for index in searchStart..<entries.count where unsafe Self.key(of: entries[index], in: input, equals: key, fingerprint) {
                searchStart = index
                return entries[index].value
            }
            for index in 0..<searchStart where unsafe Self.key(of: entries[index], in: input, equals: key, fingerprint) {
                searchStart = index
                return entries[index].value
            }
            return nil
        }
        let mask = slots.count - 1
        var slot = unsafe Self.hash(key) & mask
        while slots[slot] != 0 {
            let entry = entries[slots[slot] - 1]
            if unsafe Self.key(of: entry, in: input, equals: key, fingerprint) { return entry.value }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// Collects a container's entries as its keys are read, refusing duplicate keys.
    struct Builder {
        private var entries: [Entry] = []
        private var slots: [Int] = []

        /// A builder for a container announcing `count` entries (checked against the input by
        /// the caller, so the reservations are bounded by the input size).
        init(count: Int) {
            entries.reserveCapacity(count)
            if count > KeyedIndex.linearSearchLimit {
                slots = Array(repeating: 0, count: 1 << (Int.bitWidth - (2 * count - 1).leadingZeroBitCount))
            }
        }

        /// Adds the entry whose key's UTF-8 is at `key` and whose value is at `value`, unless
        /// the key is already present; returns whether it was added.
        mutating func insert(key: Range<Int>, value: Int, in input: UnsafeRawBufferPointer) -> Bool {
            let keyBytes = unsafe UnsafeRawBufferPointer(rebasing: input[key])
            let fingerprint = unsafe KeyFingerprint(keyBytes)
            if slots.isEmpty {
                for existing in entries where unsafe KeyedIndex.key(of: existing, in: input, equals: keyBytes, fingerprint) { return false }
            } else {
                let mask = slots.count - 1
                var slot = unsafe KeyedIndex.hash(keyBytes) & mask
                while slots[slot] != 0 {
                    if unsafe KeyedIndex.key(of: entries[slots[slot] - 1], in: input, equals: keyBytes, fingerprint) { return false }
                    slot = (slot + 1) & mask
                }
                slots[slot] = entries.count + 1
            }
            entries.append(Entry(key: key, fingerprint: fingerprint, value: value))
            return true
        }

        func index(depth: Int, end: Int) -> KeyedIndex {
            KeyedIndex(entries: entries, slots: slots, depth: depth, end: end)
        }
    }

    /// Whether `entry`'s key is `key`, whose fingerprint is `fingerprint`.
    @inline(__always)
    private static func key(of entry: Entry, in input: UnsafeRawBufferPointer, equals key: UnsafeRawBufferPointer, _ fingerprint: KeyFingerprint) -> Bool {
        guard entry.fingerprint == fingerprint else { return false }
        return unsafe fingerprint.isWholeKey
            || (entry.key.upperBound <= input.count && UnsafeRawBufferPointer(rebasing: input[entry.key]).elementsEqual(key))
    }

    /// Swift's per-process randomly seeded hash, so input cannot be built to collide.
    private static func hash(_ key: UnsafeRawBufferPointer) -> Int {
        var hasher = Hasher()
        unsafe hasher.combine(bytes: key)
        return hasher.finalize()
    }
}
