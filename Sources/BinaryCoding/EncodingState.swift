/// A container `EncodingState` has open: position `level` on its stack, and a serial number
/// that tells it from later containers at the same level.
struct ContainerHandle {
    let serial: Int
    let level: Int
}

/// The output of one `encode` call and the containers still open in it.
///
/// Values are written straight into one buffer. A container's header holds its element count,
/// which is known only when the container is complete, so a container stays open (on a stack)
/// until something is written to a container outside it, or encoding ends; then its count is
/// patched in. The one byte reserved for the count takes any count below 128; a larger count's
/// varint is spliced in, moving the container's bytes up once.
///
/// This asks types to fill nested containers in order — as synthesized and almost all written
/// `encode(to:)` methods do; writing to a container after a later sibling value was started is
/// reported as an error rather than silently producing a corrupt encoding.
final class EncodingState {
    private struct OpenContainer {
        let serial: Int
        let headerOffset: Int
        var count = 0
        /// Keys written so far (keyed containers).
        var keys = KeyLog()
        /// The entry or element handed out as an encoder (`superEncoder()`), whose value has
        /// to be in place before the container's next entry.
        var pendingValue: PendingValue?
    }

    private struct PendingValue {
        let offset: Int
        let path: [PathComponent]
    }

    private(set) var output: [UInt8] = []
    private var openContainers: [OpenContainer] = []
    private var nextSerial = 0
    /// The first error of a non-throwing container request (`container(keyedBy:)`, …), thrown at
    /// the latest when encoding ends.
    private var recordedError: BinaryCodingError?
    let maxDepth: Int

    init(maxDepth: Int) {
        self.maxDepth = maxDepth
        output.reserveCapacity(256)
    }

    func record(_ error: BinaryCodingError) {
        if recordedError == nil { recordedError = error }
    }

    /// Closes every container and returns the encoding.
    func finish() throws(BinaryCodingError) -> [UInt8] {
        while !openContainers.isEmpty { closeInnermost() }
        if let recordedError { throw recordedError }
        return output
    }

    // MARK: Values

    /// Encodes `value` as the value of a container entry or element (or the top-level value):
    /// primitives directly, other types through their `encode(to:)`.
    func encodeValue<T: Encodable>(_ value: T, parent: ValueEncoder?, component: PathComponent?, enclosingDepth: Int) throws(BinaryCodingError) {
        if writePrimitive(value) { return }
        let encoder = ValueEncoder(state: self, parent: parent, component: component, enclosingDepth: enclosingDepth, valueOffset: output.count)
        do {
            try value.encode(to: encoder)
        } catch {
            throw .wrapping(error, at: encoder)
        }
        try encoder.writeEmptyContainerIfNothingWritten()
    }

    /// Writes `value` if the format has a tag for its type; returns whether it did.
    func writePrimitive<T>(_ value: T) -> Bool {
        if T.self == [UInt8].self, let bytes = value as? [UInt8] { bytes.withUnsafeBytes(writeBytes) }
        else if T.self == Int.self, let value = value as? Int { writeSigned(Int64(value)) }
        else if T.self == UInt64.self, let value = value as? UInt64 { writeUnsigned(value) }
        else if T.self == UInt32.self, let value = value as? UInt32 { writeUnsigned(UInt64(value)) }
        else if T.self == UInt16.self, let value = value as? UInt16 { writeUnsigned(UInt64(value)) }
        else if T.self == UInt8.self, let value = value as? UInt8 { writeUnsigned(UInt64(value)) }
        else if T.self == String.self, let value = value as? String { writeString(value) }
        else if T.self == Bool.self, let value = value as? Bool { writeBool(value) }
        else if T.self == Int64.self, let value = value as? Int64 { writeSigned(value) }
        else if T.self == Int32.self, let value = value as? Int32 { writeSigned(Int64(value)) }
        else if T.self == Int16.self, let value = value as? Int16 { writeSigned(Int64(value)) }
        else if T.self == Int8.self, let value = value as? Int8 { writeSigned(Int64(value)) }
        else if T.self == UInt.self, let value = value as? UInt { writeUnsigned(UInt64(value)) }
        else if T.self == Double.self, let value = value as? Double { writeDouble(value) }
        else if T.self == Float.self, let value = value as? Float { writeFloat(value) }
        else if T.self == ContiguousArray<UInt8>.self, let bytes = value as? ContiguousArray<UInt8> { bytes.withUnsafeBytes(writeBytes) }
        else if T.self == ArraySlice<UInt8>.self, let bytes = value as? ArraySlice<UInt8> { bytes.withUnsafeBytes(writeBytes) }
        else { return false }
        return true
    }

    func writeNil() { output.append(Tag.nilValue.rawValue) }

    func writeBool(_ value: Bool) { output.append((value ? Tag.trueValue : Tag.falseValue).rawValue) }

    func writeUnsigned(_ value: UInt64) {
        output.append(Tag.unsigned.rawValue)
        writeVarint(value)
    }

    func writeSigned(_ value: Int64) {
        output.append(Tag.signed.rawValue)
        writeVarint(ZigZag.encode(value))
    }

    func writeFloat(_ value: Float) {
        output.append(Tag.float32.rawValue)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { output.append(contentsOf: $0) }
    }

    func writeDouble(_ value: Double) {
        output.append(Tag.float64.rawValue)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { output.append(contentsOf: $0) }
    }

    func writeString(_ value: String) {
        output.append(Tag.string.rawValue)
        writeUTF8(value)
    }

    func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        output.append(Tag.bytes.rawValue)
        writeVarint(UInt64(bytes.count))
        output.append(contentsOf: bytes)
    }

    /// Varint length and UTF-8 bytes: a string's payload, or a key.
    private func writeUTF8(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count))
            output.append(contentsOf: utf8)
        }
    }

    private func writeVarint(_ value: UInt64) {
        appendVarint(value, to: &output)
    }

    // MARK: Containers

    /// Checks that `encoder`'s value can be written now: nothing has been written since it was
    /// handed out, and no container opened since is still open.
    func checkPosition(of encoder: ValueEncoder) throws(BinaryCodingError) {
        guard output.count == encoder.valueOffset, openContainers.count == encoder.enclosingDepth else {
            throw .invalidValue(path: encoder.path(), reason: Self.outOfOrder)
        }
    }

    /// Opens a container as `encoder`'s value.
    func openContainer(_ tag: Tag, for encoder: ValueEncoder) throws(BinaryCodingError) -> ContainerHandle {
        try checkPosition(of: encoder)
        let depth = encoder.enclosingDepth + 1
        guard depth <= maxDepth else {
            throw .limitExceeded(path: encoder.path(), limit: .depth, value: UInt64(depth), maximum: maxDepth, offset: output.count)
        }
        let handle = ContainerHandle(serial: nextSerial, level: openContainers.count)
        nextSerial += 1
        openContainers.append(OpenContainer(serial: handle.serial, headerOffset: output.count))
        output.append(tag.rawValue)
        output.append(0)  // element count, patched when the container closes
        return handle
    }

    /// Starts the next entry of a keyed container: checks `key` is new and writes it.
    func beginEntry(of handle: ContainerHandle, key: some CodingKey, owner: ValueEncoder) throws(BinaryCodingError) {
        try reopen(handle, owner: owner)
        let name = key.stringValue
        guard openContainers[handle.level].keys.insert(name) else {
            throw .duplicateKey(path: owner.path(appending: .key(key)), offset: output.count)
        }
        openContainers[handle.level].count += 1
        writeUTF8(name)
    }

    /// Starts the next element of an array.
    func beginElement(of handle: ContainerHandle, owner: ValueEncoder) throws(BinaryCodingError) {
        try reopen(handle, owner: owner)
        openContainers[handle.level].count += 1
    }

    /// Makes the entry or element just begun in `handle`'s container one that `encoder`, handed
    /// out now, writes later; if it writes nothing, the value is an empty keyed container, like
    /// that of a value whose `encode(to:)` writes nothing.
    func deferValue(in handle: ContainerHandle, to encoder: ValueEncoder) {
        openContainers[handle.level].pendingValue = PendingValue(offset: output.count, path: encoder.pathComponents)
    }

    /// Writes an empty keyed container as the value of a type that wrote nothing.
    func writeEmptyKeyedContainer(depth: Int, path: @autoclosure () -> String) {
        guard depth <= maxDepth else {
            record(.limitExceeded(path: path(), limit: .depth, value: UInt64(depth), maximum: maxDepth, offset: output.count))
            return
        }
        output.append(Tag.keyed.rawValue)
        output.append(0)
    }

    /// Makes `handle`'s container the innermost open one, closing those opened after it.
    private func reopen(_ handle: ContainerHandle, owner: ValueEncoder) throws(BinaryCodingError) {
        guard handle.level < openContainers.count, openContainers[handle.level].serial == handle.serial else {
            throw .invalidValue(path: owner.path(), reason: Self.outOfOrder)
        }
        while openContainers.count > handle.level + 1 { closeInnermost() }
        writePendingValue(of: handle.level)
    }

    private func writePendingValue(of level: Int) {
        guard let pending = openContainers[level].pendingValue else { return }
        openContainers[level].pendingValue = nil
        if pending.offset == output.count { writeEmptyKeyedContainer(depth: level + 2, path: renderPath(pending.path)) }
    }

    private func closeInnermost() {
        writePendingValue(of: openContainers.count - 1)
        let container = openContainers.removeLast()
        let countOffset = container.headerOffset + 1
        if container.count < 0x80 {
            output[countOffset] = UInt8(container.count)
        } else {
            var varint: [UInt8] = []
            appendVarint(UInt64(container.count), to: &varint)
            output.replaceSubrange(countOffset..<(countOffset + 1), with: varint)
        }
    }

    private static let outOfOrder =
        "container written after a later value was started (BinaryEncoder needs nested containers filled in order)"
}

/// Appends `value` as an LEB128 varint: seven bits a byte, least significant first, the high
/// bit set on every byte but the last.
private func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
    var rest = value
    while rest >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
        rest >>= 7
    }
    bytes.append(UInt8(rest))
}

/// The keys of one keyed container: a list while short, a set once long.
private struct KeyLog {
    private var list: [String] = []
    private var set: Set<String> = []

    /// Adds `key`; returns false if it was already there.
    mutating func insert(_ key: String) -> Bool {
        if set.isEmpty {
            if list.contains(key) { return false }
            if list.count < KeyedIndex.linearSearchLimit {
                list.append(key)
                return true
            }
            set = Set(list)
            list = []
        }
        return set.insert(key).inserted
    }
}
