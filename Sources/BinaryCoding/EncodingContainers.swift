/// A keyed container being written: entries in the order the type encodes them.
struct BinaryKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: ValueEncoder
    let handle: ContainerHandle

    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil(forKey key: Key) throws { try beginEntry(key); encoder.state.writeNil() }
    mutating func encode(_ value: Bool, forKey key: Key) throws { try beginEntry(key); encoder.state.writeBool(value) }
    mutating func encode(_ value: String, forKey key: Key) throws { try beginEntry(key); encoder.state.writeString(value) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try beginEntry(key); encoder.state.writeDouble(value) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try beginEntry(key); encoder.state.writeFloat(value) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try beginEntry(key); encoder.state.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try beginEntry(key); encoder.state.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try beginEntry(key); encoder.state.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try beginEntry(key); encoder.state.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try beginEntry(key); encoder.state.writeSigned(value) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try beginEntry(key); encoder.state.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try beginEntry(key); encoder.state.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try beginEntry(key); encoder.state.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try beginEntry(key); encoder.state.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try beginEntry(key); encoder.state.writeUnsigned(value) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        let handle = try beginEntry(key)
        try encoder.state.encodeValue(value, parent: encoder, component: .key(key), enclosingDepth: handle.level + 1)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        childEncoder(for: key, deferred: false).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        childEncoder(for: key, deferred: false).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { childEncoder(for: NamedKey.superKey, deferred: true) }

    mutating func superEncoder(forKey key: Key) -> any Encoder { childEncoder(for: key, deferred: true) }

    @discardableResult
    private func beginEntry(_ key: some CodingKey) throws(BinaryCodingError) -> ContainerHandle {
        try encoder.state.beginEntry(of: handle, key: key, owner: encoder)
        return handle
    }

    private func childEncoder(for key: some CodingKey, deferred: Bool) -> ValueEncoder {
        encoder.childEncoder(component: .key(key), deferred: deferred) { () throws(BinaryCodingError) in try beginEntry(key) }
    }
}

/// An array being written.
struct BinaryUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let encoder: ValueEncoder
    let handle: ContainerHandle
    private(set) var count = 0

    init(encoder: ValueEncoder, handle: ContainerHandle) {
        self.encoder = encoder
        self.handle = handle
    }

    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws { try beginElement(); encoder.state.writeNil() }
    mutating func encode(_ value: Bool) throws { try beginElement(); encoder.state.writeBool(value) }
    mutating func encode(_ value: String) throws { try beginElement(); encoder.state.writeString(value) }
    mutating func encode(_ value: Double) throws { try beginElement(); encoder.state.writeDouble(value) }
    mutating func encode(_ value: Float) throws { try beginElement(); encoder.state.writeFloat(value) }
    mutating func encode(_ value: Int) throws { try beginElement(); encoder.state.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int8) throws { try beginElement(); encoder.state.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int16) throws { try beginElement(); encoder.state.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int32) throws { try beginElement(); encoder.state.writeSigned(Int64(value)) }
    mutating func encode(_ value: Int64) throws { try beginElement(); encoder.state.writeSigned(value) }
    mutating func encode(_ value: UInt) throws { try beginElement(); encoder.state.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { try beginElement(); encoder.state.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt16) throws { try beginElement(); encoder.state.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt32) throws { try beginElement(); encoder.state.writeUnsigned(UInt64(value)) }
    mutating func encode(_ value: UInt64) throws { try beginElement(); encoder.state.writeUnsigned(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let index = count
        let handle = try beginElement()
        try encoder.state.encodeValue(value, parent: encoder, component: .index(index), enclosingDepth: handle.level + 1)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        childEncoder(deferred: false).container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        childEncoder(deferred: false).unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { childEncoder(deferred: true) }

    @discardableResult
    private mutating func beginElement() throws(BinaryCodingError) -> ContainerHandle {
        try encoder.state.beginElement(of: handle, owner: encoder)
        count += 1
        return handle
    }

    private mutating func childEncoder(deferred: Bool) -> ValueEncoder {
        let index = count
        return encoder.childEncoder(component: .index(index), deferred: deferred) { () throws(BinaryCodingError) in try beginElement() }
    }
}

/// A value written as one scalar, or as whatever the generic value it is given writes.
struct BinarySingleValueEncodingContainer: SingleValueEncodingContainer {
    let encoder: ValueEncoder

    var codingPath: [any CodingKey] { encoder.codingPath }

    mutating func encodeNil() throws { try encoder.writeScalar { $0.writeNil() } }
    mutating func encode(_ value: Bool) throws { try encoder.writeScalar { $0.writeBool(value) } }
    mutating func encode(_ value: String) throws { try encoder.writeScalar { $0.writeString(value) } }
    mutating func encode(_ value: Double) throws { try encoder.writeScalar { $0.writeDouble(value) } }
    mutating func encode(_ value: Float) throws { try encoder.writeScalar { $0.writeFloat(value) } }
    mutating func encode(_ value: Int) throws { try encoder.writeScalar { $0.writeSigned(Int64(value)) } }
    mutating func encode(_ value: Int8) throws { try encoder.writeScalar { $0.writeSigned(Int64(value)) } }
    mutating func encode(_ value: Int16) throws { try encoder.writeScalar { $0.writeSigned(Int64(value)) } }
    mutating func encode(_ value: Int32) throws { try encoder.writeScalar { $0.writeSigned(Int64(value)) } }
    mutating func encode(_ value: Int64) throws { try encoder.writeScalar { $0.writeSigned(value) } }
    mutating func encode(_ value: UInt) throws { try encoder.writeScalar { $0.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt8) throws { try encoder.writeScalar { $0.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt16) throws { try encoder.writeScalar { $0.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt32) throws { try encoder.writeScalar { $0.writeUnsigned(UInt64(value)) } }
    mutating func encode(_ value: UInt64) throws { try encoder.writeScalar { $0.writeUnsigned(value) } }

    mutating func encode<T: Encodable>(_ value: T) throws { try encoder.encodeSingle(value) }
}
