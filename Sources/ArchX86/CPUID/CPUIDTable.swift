/// CPUID entries keyed by (leaf, subleaf), for editing during construction.
struct CPUIDTable {
    struct Key: Hashable, Comparable {
        let function: UInt32
        let index: UInt32

        static func < (a: Key, b: Key) -> Bool {
            (a.function, a.index) < (b.function, b.index)
        }
    }

    private(set) var entries: [Key: CPUIDEntry] = [:]

    init(_ list: [CPUIDEntry]) throws(CPUIDError) {
        for entry in list {
            let key = Key(function: entry.function, index: entry.index)
            guard entries[key] == nil else { throw .duplicateEntry(function: entry.function, index: entry.index) }
            entries[key] = entry
        }
    }

    subscript(function: UInt32, index: UInt32 = 0) -> CPUIDEntry? {
        get { entries[Key(function: function, index: index)] }
        set { entries[Key(function: function, index: index)] = newValue }
    }

    /// Whether any subleaf of `function` is present.
    func contains(function: UInt32) -> Bool {
        entries.keys.contains { $0.function == function }
    }

    /// Applies `body` to every present subleaf of `function`.
    mutating func updateAll(function: UInt32, _ body: (inout CPUIDEntry) -> Void) {
        for key in entries.keys where key.function == function {
            if var entry = entries[key] {
                body(&entry)
                entries[key] = entry
            }
        }
    }

    /// Applies `body` to the entry (function, index) if present.
    mutating func update(function: UInt32, index: UInt32 = 0, _ body: (inout CPUIDEntry) -> Void) {
        let key = Key(function: function, index: index)
        if var entry = entries[key] {
            body(&entry)
            entries[key] = entry
        }
    }

    /// Clears the result registers of every subleaf of `function`.
    mutating func zero(function: UInt32) {
        updateAll(function: function) { $0 = $0.zeroed }
    }

    mutating func removeAll(where predicate: (CPUIDEntry) -> Bool) {
        entries = entries.filter { !predicate($0.value) }
    }

    /// Replaces every subleaf of `function` with `replacement`.
    mutating func replace(function: UInt32, with replacement: [CPUIDEntry]) {
        removeAll { $0.function == function }
        for entry in replacement {
            entries[Key(function: entry.function, index: entry.index)] = entry
        }
    }

    /// The entries in (leaf, subleaf) order.
    var sorted: [CPUIDEntry] {
        entries.sorted { $0.key < $1.key }.map(\.value)
    }
}
