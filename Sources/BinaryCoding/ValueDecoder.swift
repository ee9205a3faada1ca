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

    /// Decodes this decoder's own value as a `T`; returns it with its end offset if known.
    func decodeValue<T: Decodable>(_ type: T.Type) throws(BinaryCodingError) -> (value: T, end: Int?) {
        try checkActive()
        let primitive: (value: T, end: Int)?
        do { primitive = try state.readPrimitive(T.self, at: offset) } catch { throw error.located(at: path()) }
        if let primitive { return (primitive.value, primitive.end) }
        return (try decodeSelf(T.self), knownEnd)
    }

    /// Decodes the value of `component` at `offset` in one of this decoder's containers, which
    /// sits at nesting `depth`; returns it with its end offset if known.
    func decodeChild<T: Decodable>(_ type: T.Type, at offset: Int, component: PathComponent, depth: Int) throws(BinaryCodingError) -> (value: T, end: Int?) {
        let primitive: (value: T, end: Int)?
        do { primitive = try state.readPrimitive(T.self, at: offset) } catch { throw error.located(at: path(appending: component)) }
        if let primitive { return (primitive.value, primitive.end) }
        let child = childDecoder(at: offset, component: component, depth: depth)
        return (try child.decodeSelf(T.self), child.knownEnd)
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
        var index = KeyedIndex(count: count, depth: depth)
        for _ in 0..<count {
            let keyOffset = next
            let key: Range<Int>
            do { key = try state.readKey(at: keyOffset) } catch { throw error.located(at: path()) }
            guard index.insert(KeyedIndex.Entry(key: key, value: key.upperBound), in: state.input) else {
                throw .duplicateKey(path: path(appending: component(forKey: key)), offset: keyOffset)
            }
            do {
                next = try state.skipValue(at: key.upperBound, enclosingDepth: depth)
            } catch {
                throw error.located(at: path(appending: component(forKey: key)))
            }
        }
        index.end = next
        return index
    }

    /// The path component of the key whose UTF-8 (already validated) is at `range`.
    func component(forKey range: Range<Int>) -> PathComponent {
        .key(NamedKey(String(decoding: state.bytes(in: range), as: UTF8.self)))
    }
}
