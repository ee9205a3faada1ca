/// A keyed container of the input; unknown keys are ignored.
struct BinaryKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: ValueDecoder
    let index: KeyedIndex

    var codingPath: [any CodingKey] { decoder.codingPath }

    var allKeys: [Key] {
        guard !decoder.state.isFinished else { return [] }
        return index.entries.compactMap { unsafe Key(stringValue: String(decoding: decoder.state.bytes(in: $0.key), as: UTF8.self)) }
    }

    func contains(_ key: Key) -> Bool {
        !decoder.state.isFinished && lookUp(key) != nil
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        decoder.state.isNil(at: try valueOffset(for: key))
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try read(type, forKey: key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try read(type, forKey: key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try read(type, forKey: key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try read(type, forKey: key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try read(type, forKey: key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try read(type, forKey: key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try read(type, forKey: key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try read(type, forKey: key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try read(type, forKey: key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try read(type, forKey: key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try read(type, forKey: key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try read(type, forKey: key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try read(type, forKey: key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try read(type, forKey: key) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        var end: Int?
        return try decoder.decodeChild(type, at: valueOffset(for: key), component: .key(key), depth: index.depth, end: &end)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try childDecoder(for: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try childDecoder(for: key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { try childDecoder(for: NamedKey.superKey) }

    func superDecoder(forKey key: Key) throws -> any Decoder { try childDecoder(for: key) }

    private func lookUp(_ key: some CodingKey) -> Int? {
        var name = key.stringValue
        return name.withUTF8 { unsafe index.valueOffset(forKey: UnsafeRawBufferPointer($0), in: decoder.state.input) }
    }

    private func valueOffset(for key: some CodingKey) throws(BinaryCodingError) -> Int {
        try decoder.checkActive()
        guard let offset = lookUp(key) else { throw .keyNotFound(path: decoder.path(appending: .key(key))) }
        return offset
    }

    private func childDecoder(for key: some CodingKey) throws(BinaryCodingError) -> ValueDecoder {
        decoder.childDecoder(at: try valueOffset(for: key), component: .key(key), depth: index.depth)
    }

    private func read<T: ScalarDecodable>(_ type: T.Type, forKey key: Key) throws(BinaryCodingError) -> T {
        let offset = try valueOffset(for: key)
        do {
            var end = 0
            return try T.read(from: decoder.state, at: offset, end: &end)
        } catch {
            throw error.located(at: decoder.path(appending: .key(key)))
        }
    }
}

/// An array of the input, read front to back.
struct BinaryUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let decoder: ValueDecoder
    /// Nesting depth of the array.
    let depth: Int
    let elementCount: Int
    private(set) var currentIndex = 0
    /// Offset of element `currentIndex`.
    private var offset: Int

    init(decoder: ValueDecoder, depth: Int, count: Int, firstElement: Int) {
        self.decoder = decoder
        self.depth = depth
        self.elementCount = count
        self.offset = firstElement
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { elementCount }
    var isAtEnd: Bool { currentIndex >= elementCount }

    mutating func decodeNil() throws -> Bool {
        try checkNext()
        guard decoder.state.isNil(at: offset) else { return false }
        advance(to: offset + 1)
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try read(type) }
    mutating func decode(_ type: String.Type) throws -> String { try read(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try read(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try read(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try read(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try read(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try read(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try read(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try read(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try read(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try read(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try read(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try read(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try read(type) }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try checkNext()
        var end: Int?
        let value = try decoder.decodeChild(type, at: offset, component: .index(currentIndex), depth: depth, end: &end)
        advance(to: try end ?? endOfCurrentElement())
        return value
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try checkNext()
        let child = decoder.childDecoder(at: offset, component: .index(currentIndex), depth: depth)
        let container = try child.container(keyedBy: type)
        advance(to: try child.knownEnd ?? endOfCurrentElement())
        return container
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try checkNext()
        let container = try decoder.childDecoder(at: offset, component: .index(currentIndex), depth: depth).unkeyedContainer()
        advance(to: try endOfCurrentElement())
        return container
    }

    mutating func superDecoder() throws -> any Decoder {
        try checkNext()
        let child = decoder.childDecoder(at: offset, component: .index(currentIndex), depth: depth)
        advance(to: try endOfCurrentElement())
        return child
    }

    private func checkNext() throws(BinaryCodingError) {
        try decoder.checkActive()
        guard !isAtEnd else {
            throw .endOfArray(path: decoder.path(appending: .index(currentIndex)), count: elementCount)
        }
    }

    private mutating func advance(to end: Int) {
        offset = end
        currentIndex += 1
    }

    private func endOfCurrentElement() throws(BinaryCodingError) -> Int {
        do {
            return try decoder.state.skipValue(at: offset, enclosingDepth: depth)
        } catch {
            throw error.located(at: decoder.path(appending: .index(currentIndex)))
        }
    }

    private mutating func read<T: ScalarDecodable>(_ type: T.Type) throws(BinaryCodingError) -> T {
        try checkNext()
        do {
            var end = 0
            let value = try T.read(from: decoder.state, at: offset, end: &end)
            advance(to: end)
            return value
        } catch {
            throw error.located(at: decoder.path(appending: .index(currentIndex)))
        }
    }
}

/// The decoder's value read as one value.
struct BinarySingleValueDecodingContainer: SingleValueDecodingContainer {
    let decoder: ValueDecoder

    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.state.isNil(at: decoder.offset) }

    func decode(_ type: Bool.Type) throws -> Bool { try read(type) }
    func decode(_ type: String.Type) throws -> String { try read(type) }
    func decode(_ type: Double.Type) throws -> Double { try read(type) }
    func decode(_ type: Float.Type) throws -> Float { try read(type) }
    func decode(_ type: Int.Type) throws -> Int { try read(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try read(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try read(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try read(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try read(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try read(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try read(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try read(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try read(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try read(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        var end: Int?
        return try decoder.decodeValue(type, end: &end)
    }

    private func read<T: ScalarDecodable>(_ type: T.Type) throws(BinaryCodingError) -> T {
        try decoder.checkActive()
        do {
            var end = 0
            return try T.read(from: decoder.state, at: decoder.offset, end: &end)
        } catch {
            throw error.located(at: decoder.path())
        }
    }
}
