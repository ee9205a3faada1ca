/// The `Decoder` for one value of the input: the value at `offset`, inside `enclosingDepth`
/// containers, reached from `parent` by `component`.
final class ValueDecoder: Decoder, CodingPathNode {
    let state: DecodingState
    let offset: Int
    let parent: ValueDecoder?
    let component: PathComponent?
    let enclosingDepth: Int
    /// The value's entries, once it has been read as a keyed container.
    private var keyedIndex: KeyedIndex?

    init(state: DecodingState, offset: Int, parent: ValueDecoder?, component: PathComponent?, enclosingDepth: Int) {
        self.state = state
        self.offset = offset
        self.parent = parent
        self.component = component
        self.enclosingDepth = enclosingDepth
    }

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// Where the value ends, if reading it has shown that already.
    var knownEnd: Int? { keyedIndex?.end }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        try checkActive()
        let index = try keyedIndex ?? indexEntries()
        keyedIndex = index
        return KeyedDecodingContainer(BinaryKeyedDecodingContainer<Key>(decoder: self, index: index))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try checkActive()
        let depth = enclosingDepth + 1
        do {
            let (count, first) = try state.readContainerHeader(.array, at: offset, depth: depth)
            return BinaryUnkeyedDecodingContainer(decoder: self, depth: depth, count: count, firstElement: first)
        } catch {
            throw error.located(at: path())
        }
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        try checkActive()
        return BinarySingleValueDecodingContainer(decoder: self)
    }

    /// Fails if the `decode` call that created this decoder has returned (the input is gone).
    func checkActive() throws(BinaryCodingError) {
        guard !state.isFinished else {
            throw .invalidValue(path: path(), reason: "decoder used after BinaryDecoder.decode returned")
        }
    }

    /// Decodes this decoder's own value as a `T`; sets `end` to the offset after it if known.
    func decodeValue<T: Decodable>(_ type: T.Type, end: inout Int?) throws(BinaryCodingError) -> T {
        try checkActive()
        return try decode(type, at: offset, component: nil, depth: enclosingDepth, end: &end)
    }

    /// Decodes the value of `component` at `offset` in one of this decoder's containers, which
    /// sits at nesting `depth`; sets `end` to the offset after it if known.
    func decodeChild<T: Decodable>(_ type: T.Type, at offset: Int, component: PathComponent, depth: Int, end: inout Int?) throws(BinaryCodingError) -> T {
        try decode(type, at: offset, component: component, depth: depth, end: &end)
    }

    /// Decodes the value at `offset`: this decoder's own value if `component` is nil, else the
    /// value of `component` in one of its containers.
    private func decode<T: Decodable>(_ type: T.Type, at offset: Int, component: PathComponent?, depth: Int, end: inout Int?) throws(BinaryCodingError) -> T {
        if let primitive = Primitive(type) {
            return try decodePrimitive(primitive, as: type, at: offset, component: component, depth: depth, end: &end)
        }
        return try decodeComposite(type, at: offset, component: component, depth: depth, end: &end)
    }

    /// Reads a primitive directly. Out of line, because its `T?` needs type metadata that
    /// composite values, the common case, should not pay for.
    @inline(never)
    private func decodePrimitive<T: Decodable>(_ primitive: Primitive, as type: T.Type, at offset: Int, component: PathComponent?, depth: Int, end: inout Int?) throws(BinaryCodingError) -> T {
        var primitiveEnd = 0
        let value: T?
        do {
            value = try state.readPrimitive(primitive, as: type, at: offset, end: &primitiveEnd)
        } catch {
            throw error.located(at: path(appending: component))
        }
        guard let value else { return try decodeComposite(type, at: offset, component: component, depth: depth, end: &end) }
        end = primitiveEnd
        return value
    }

    /// Runs `T`'s own `init(from:)` on the value's decoder.
    private func decodeComposite<T: Decodable>(_ type: T.Type, at offset: Int, component: PathComponent?, depth: Int, end: inout Int?) throws(BinaryCodingError) -> T {
        let decoder = component.map { childDecoder(at: offset, component: $0, depth: depth) } ?? self
        let value = try decoder.decodeSelf(type)
        end = decoder.knownEnd
        return value
    }

    func childDecoder(at offset: Int, component: PathComponent, depth: Int) -> ValueDecoder {
        ValueDecoder(state: state, offset: offset, parent: self, component: component, enclosingDepth: depth)
    }

    /// Runs `T`'s own `init(from:)` on this decoder, mapping whatever it throws.
    private func decodeSelf<T: Decodable>(_ type: T.Type) throws(BinaryCodingError) -> T {
        do {
            return try T(from: self)
        } catch {
            throw .wrapping(error, at: self)
        }
    }

    /// Reads the keyed container at `offset`: checks every key (UTF-8, no duplicates) and finds
    /// where every value starts.
    private func indexEntries() throws(BinaryCodingError) -> KeyedIndex {
        let depth = enclosingDepth + 1
        let count: Int
        var next: Int
        do { (count, next) = try state.readContainerHeader(.keyed, at: offset, depth: depth) } catch { throw error.located(at: path()) }
        var builder = KeyedIndex.Builder(count: count)
        for _ in 0..<count {
            let keyOffset = next
            let key: Range<Int>
            do { key = try state.readKey(at: keyOffset) } catch { throw error.located(at: path()) }
            guard unsafe builder.insert(key: key, value: key.upperBound, in: state.input) else {
                throw .duplicateKey(path: path(appending: keyComponent(at: key)), offset: keyOffset)
            }
            do {
                next = try state.skipValue(at: key.upperBound, enclosingDepth: depth)
            } catch {
                throw error.located(at: path(appending: keyComponent(at: key)))
            }
        }
        return builder.index(depth: depth, end: next)
    }

    /// The path component of the key whose UTF-8 (already validated) is at `range`.
    private func keyComponent(at range: Range<Int>) -> PathComponent {
        unsafe .key(NamedKey(String(decoding: state.bytes(in: range), as: UTF8.self)))
    }
}
