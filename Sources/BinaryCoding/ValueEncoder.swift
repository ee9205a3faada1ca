/// The `Encoder` for one value: the value that starts at output offset `valueOffset`, inside
/// `enclosingDepth` containers, reached from `parent` by `component`.
final class ValueEncoder: Encoder, CodingPathNode {
    /// What has been written as this encoder's value.
    enum Content {
        case nothing
        case scalar
        /// A container: asking for the same kind of container again continues it (the
        /// `super.encode(to: encoder)` pattern).
        case container(ContainerHandle, Tag)
        /// The encoder was handed out after a failure (recorded in the state, as what this
        /// failed handle refers to); every use throws it.
        case failed(ContainerHandle)
    }

    let state: EncodingState
    let parent: ValueEncoder?
    let component: PathComponent?
    let enclosingDepth: Int
    let valueOffset: Int
    private var content: Content

    init(state: EncodingState, parent: ValueEncoder?, component: PathComponent?, enclosingDepth: Int, valueOffset: Int, content: Content = .nothing) {
        self.state = state
        self.parent = parent
        self.component = component
        self.enclosingDepth = enclosingDepth
        self.valueOffset = valueOffset
        self.content = content
    }

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        KeyedEncodingContainer(BinaryKeyedEncodingContainer<Key>(encoder: self, handle: containerHandle(.keyed)))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        BinaryUnkeyedEncodingContainer(encoder: self, handle: containerHandle(.array))
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        BinarySingleValueEncodingContainer(encoder: self)
    }

    /// The container holding this value: opened on the first request, the same on later ones.
    /// (The requests cannot throw, so a failure is recorded and thrown on the container's use.)
    private func containerHandle(_ tag: Tag) -> ContainerHandle {
        switch content {
        case .container(let handle, let existing) where existing == tag:
            return handle
        case .nothing:
            do {
                let handle = try state.openContainer(tag, for: self)
                content = .container(handle, tag)
                return handle
            } catch {
                return state.record(error)
            }
        case .failed(let handle):
            return handle
        case .scalar, .container:
            return state.record(.invalidValue(path: path(), reason: "\(tag.name) requested for a value already encoded as another kind"))
        }
    }

    /// Writes this value as a scalar, with `write`.
    func writeScalar(_ write: (EncodingState) -> Void) throws(BinaryCodingError) {
        try checkUnwritten()
        write(state)
        content = .scalar
    }

    /// Encodes `value` as this value (a single-value container's generic `encode`).
    func encodeSingle<T: Encodable>(_ value: T) throws(BinaryCodingError) {
        try checkUnwritten()
        if state.writePrimitive(value) {
            content = .scalar
            return
        }
        do {
            try value.encode(to: self)
        } catch {
            throw .wrapping(error, at: self)
        }
    }

    /// Gives a value that wrote nothing (an `encode(to:)` that requests no container) an
    /// encoding: an empty keyed container.
    func writeEmptyContainerIfNothingWritten() throws(BinaryCodingError) {
        guard case .nothing = content else { return }
        try state.checkPosition(of: self)
        state.writeEmptyKeyedContainer(depth: enclosingDepth + 1, path: path())
        content = .scalar
    }

    /// An encoder for the value of `component` in this encoder's container, once `begin` has
    /// started that entry or element; `deferred` if the caller writes the value later.
    func childEncoder(component: PathComponent, deferred: Bool, begin: () throws(BinaryCodingError) -> ContainerHandle) -> ValueEncoder {
        do {
            let handle = try begin()
            let child = unsafe ValueEncoder(state: state, parent: self, component: component, enclosingDepth: handle.level + 1, valueOffset: state.output.count)
            if deferred { state.deferValue(in: handle, to: child) }
            return child
        } catch {
            let handle = state.record(error)
            return unsafe ValueEncoder(state: state, parent: self, component: component, enclosingDepth: enclosingDepth + 1, valueOffset: state.output.count, content: .failed(handle))
        }
    }

    private func checkUnwritten() throws(BinaryCodingError) {
        switch content {
        case .nothing:
            try state.checkPosition(of: self)
        case .failed(let handle):
            throw state.failure(of: handle)
        case .scalar, .container:
            throw .invalidValue(path: path(), reason: "value encoded twice")
        }
    }
}
