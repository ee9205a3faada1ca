/// A container `EncodingState` has open: position `level` on its stack, and a serial number
/// that tells it from later containers at the same level. A negative level marks a container
/// that could not be opened; `serial` is then the index of the error that prevented it.
struct ContainerHandle {
    let serial: Int
    let level: Int

    var failed: Bool { level < 0 }
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
///
/// The mutable properties are `@exclusivity(unchecked)`: only this class's methods access them,
/// and none of those calls out (into `Encodable` code) while modifying one, so the dynamic
/// exclusivity checks Swift would make on every write (a third of encoding time) find nothing.
final class EncodingState {
    private struct OpenContainer {
        let serial: Int
        let headerOffset: Int
        /// Where this container's keys start in `keys`.
        let firstKey: Int
        var count = 0
        /// The keys once there are too many to search `keys` (empty until then).
        var keySet: Set<String> = []
        /// The entry or element handed out as an encoder (`superEncoder()`), whose value has
        /// to be in place before the container's next entry.
        var pendingValue: PendingValue?
    }

    /// A key in the output: where its UTF-8 is, and its fingerprint. (Closing a container moves
    /// only bytes after its header, so the offsets of keys of open containers stay valid.)
    private struct WrittenKey {
        let offset: Int
        let fingerprint: KeyFingerprint

        var range: Range<Int> { offset..<(offset + fingerprint.length) }
    }

    private struct PendingValue {
        let offset: Int
        let path: [PathComponent]
    }

    @exclusivity(unchecked) private(set) var output: [UInt8] = []
    @exclusivity(unchecked) private var openContainers: [OpenContainer] = []
    /// The keys written to the open keyed containers, innermost container's last.
    @exclusivity(unchecked) private var keys: [WrittenKey] = []
    private var nextSerial = 0
    /// Errors of non-throwing container requests (`container(keyedBy:)`, …), thrown when the
    /// container is used and, the first of them, when encoding ends.
    private var failures: [BinaryCodingError] = []
    let maxDepth: Int

    init(maxDepth: Int) {
        self.maxDepth = maxDepth
        unsafe output.reserveCapacity(1024)
    }

    /// Records the failure of a request that cannot throw; returns the handle of the container
    /// it did not open.
    @discardableResult
    func record(_ error: BinaryCodingError) -> ContainerHandle {
        failures.append(error)
        return ContainerHandle(serial: failures.count - 1, level: -1)
    }

    /// The error that made `handle` a failed handle.
    func failure(of handle: ContainerHandle) -> BinaryCodingError {
        failures[handle.serial]
    }

    /// Closes every container and returns the encoding.
    func finish() throws(BinaryCodingError) -> [UInt8] {
        while unsafe !openContainers.isEmpty { closeInnermost() }
        if let failure = failures.first { throw failure }
        return unsafe output
    }

    // MARK: Values

    /// Encodes `value` as the value of a container entry or element (or the top-level value):
    /// primitives directly, other types through their `encode(to:)`.
    func encodeValue<T: Encodable>(_ value: T, parent: ValueEncoder?, component: PathComponent?, enclosingDepth: Int) throws(BinaryCodingError) {
        if writePrimitive(value) { return }
        let encoder = unsafe ValueEncoder(state: self, parent: parent, component: component, enclosingDepth: enclosingDepth, valueOffset: output.count)
        do {
            try value.encode(to: encoder)
        } catch {
            throw .wrapping(error, at: encoder)
        }
        try encoder.writeEmptyContainerIfNothingWritten()
    }

    /// Writes `value` if the format has a tag for its type; returns whether it did.
    func writePrimitive<T>(_ value: T) -> Bool {
        switch Primitive(T.self) {
        case .bytes?: if let bytes = value as? [UInt8] { unsafe bytes.withUnsafeBufferPointer(writeBytes); return true }
        case .contiguousBytes?: if let bytes = value as? ContiguousArray<UInt8> { unsafe bytes.withUnsafeBufferPointer(writeBytes); return true }
        case .bool?: if let value = value as? Bool { writeBool(value); return true }
        case .string?: if let value = value as? String { writeString(value); return true }
        case .double?: if let value = value as? Double { writeDouble(value); return true }
        case .float?: if let value = value as? Float { writeFloat(value); return true }
        case .int?: if let value = value as? Int { writeSigned(Int64(value)); return true }
        case .int8?: if let value = value as? Int8 { writeSigned(Int64(value)); return true }
        case .int16?: if let value = value as? Int16 { writeSigned(Int64(value)); return true }
        case .int32?: if let value = value as? Int32 { writeSigned(Int64(value)); return true }
        case .int64?: if let value = value as? Int64 { writeSigned(value); return true }
        case .uint?: if let value = value as? UInt { writeUnsigned(UInt64(value)); return true }
        case .uint8?: if let value = value as? UInt8 { writeUnsigned(UInt64(value)); return true }
        case .uint16?: if let value = value as? UInt16 { writeUnsigned(UInt64(value)); return true }
        case .uint32?: if let value = value as? UInt32 { writeUnsigned(UInt64(value)); return true }
        case .uint64?: if let value = value as? UInt64 { writeUnsigned(value); return true }
        case nil: break
        }
        return false
    }

    func writeNil() { unsafe output.append(Tag.nilValue.rawValue) }

    func writeBool(_ value: Bool) { unsafe output.append((value ? Tag.trueValue : Tag.falseValue).rawValue) }

    func writeUnsigned(_ value: UInt64) {
        unsafe output.append(Tag.unsigned.rawValue)
        writeVarint(value)
    }

    func writeSigned(_ value: Int64) {
        unsafe output.append(Tag.signed.rawValue)
        writeVarint(ZigZag.encode(value))
    }

    func writeFloat(_ value: Float) {
        unsafe output.append(Tag.float32.rawValue)
        unsafe withUnsafeBytes(of: value.bitPattern.littleEndian) { unsafe output.append(contentsOf: $0) }
    }

    func writeDouble(_ value: Double) {
        unsafe output.append(Tag.float64.rawValue)
        unsafe withUnsafeBytes(of: value.bitPattern.littleEndian) { unsafe output.append(contentsOf: $0) }
    }

    func writeString(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            unsafe output.append(Tag.string.rawValue)
            writeVarint(UInt64(utf8.count))
            unsafe output.append(contentsOf: utf8)
        }
    }

    func writeBytes(_ bytes: UnsafeBufferPointer<UInt8>) {
        unsafe output.append(Tag.bytes.rawValue)
        writeVarint(UInt64(bytes.count))
        unsafe output.append(contentsOf: bytes)
    }

    private func writeVarint(_ value: UInt64) {
        unsafe appendVarint(value, to: &output)
    }

    // MARK: Containers

    /// Checks that `encoder`'s value can be written now: nothing has been written since it was
    /// handed out, and no container opened since is still open.
    func checkPosition(of encoder: ValueEncoder) throws(BinaryCodingError) {
        guard unsafe output.count == encoder.valueOffset, unsafe openContainers.count == encoder.enclosingDepth else {
            throw .invalidValue(path: encoder.path(), reason: Self.outOfOrder)
        }
    }

    /// Opens a container as `encoder`'s value.
    func openContainer(_ tag: Tag, for encoder: ValueEncoder) throws(BinaryCodingError) -> ContainerHandle {
        try checkPosition(of: encoder)
        let depth = encoder.enclosingDepth + 1
        guard depth <= maxDepth else {
            throw unsafe .limitExceeded(path: encoder.path(), limit: .depth, value: UInt64(depth), maximum: maxDepth, offset: output.count)
        }
        let handle = unsafe ContainerHandle(serial: nextSerial, level: openContainers.count)
        nextSerial += 1
        unsafe openContainers.append(OpenContainer(serial: handle.serial, headerOffset: output.count, firstKey: keys.count))
        unsafe output.append(tag.rawValue)
        unsafe output.append(0)  // element count, patched when the container closes
        return handle
    }

    /// Starts the next entry of a keyed container: checks `key` is new and writes it.
    func beginEntry(of handle: ContainerHandle, key: some CodingKey, owner: ValueEncoder) throws(BinaryCodingError) {
        try reopen(handle, owner: owner)
        let name = key.stringValue
        var contiguousName = name
        let isNew = contiguousName.withUTF8 { unsafe writeKey($0, named: name, level: handle.level) }
        guard isNew else { throw unsafe .duplicateKey(path: owner.path(appending: .key(key)), offset: output.count) }
        unsafe openContainers[handle.level].count += 1
    }

    /// Writes `utf8`, the UTF-8 of `name`, as the next key of the container at `level` unless it
    /// has that key already; returns whether it wrote it.
    private func writeKey(_ utf8: UnsafeBufferPointer<UInt8>, named name: String, level: Int) -> Bool {
        let fingerprint = unsafe KeyFingerprint(UnsafeRawBufferPointer(utf8))
        let first = unsafe openContainers[level].firstKey
        if unsafe keys.count - first < KeyedIndex.linearSearchLimit {
            for key in unsafe keys[first...] where key.fingerprint == fingerprint {
                if unsafe fingerprint.isWholeKey || utf8.elementsEqual(output[key.range]) { return false }
            }
        } else {
            if unsafe openContainers[level].keySet.isEmpty {
                unsafe openContainers[level].keySet = Set(keys[first...].map { unsafe String(decoding: output[$0.range], as: UTF8.self) })
            }
            guard unsafe openContainers[level].keySet.insert(name).inserted else { return false }
        }
        writeVarint(UInt64(utf8.count))
        unsafe keys.append(WrittenKey(offset: output.count, fingerprint: fingerprint))
        unsafe output.append(contentsOf: utf8)
        return true
    }

    /// Starts the next element of an array.
    func beginElement(of handle: ContainerHandle, owner: ValueEncoder) throws(BinaryCodingError) {
        try reopen(handle, owner: owner)
        unsafe openContainers[handle.level].count += 1
    }

    /// Makes the entry or element just begun in `handle`'s container one that `encoder`, handed
    /// out now, writes later; if it writes nothing, the value is an empty keyed container, like
    /// that of a value whose `encode(to:)` writes nothing.
    func deferValue(in handle: ContainerHandle, to encoder: ValueEncoder) {
        unsafe openContainers[handle.level].pendingValue = PendingValue(offset: output.count, path: encoder.pathComponents)
    }

    /// Writes an empty keyed container as the value of a type that wrote nothing.
    func writeEmptyKeyedContainer(depth: Int, path: @autoclosure () -> String) {
        guard depth <= maxDepth else {
            unsafe record(.limitExceeded(path: path(), limit: .depth, value: UInt64(depth), maximum: maxDepth, offset: output.count))
            return
        }
        unsafe output.append(Tag.keyed.rawValue)
        unsafe output.append(0)
    }

    /// Makes `handle`'s container the innermost open one, closing those opened after it.
    private func reopen(_ handle: ContainerHandle, owner: ValueEncoder) throws(BinaryCodingError) {
        guard !handle.failed else { throw failure(of: handle) }
        guard unsafe handle.level < openContainers.count, unsafe openContainers[handle.level].serial == handle.serial else {
            throw .invalidValue(path: owner.path(), reason: Self.outOfOrder)
        }
        while unsafe openContainers.count > handle.level + 1 { closeInnermost() }
        if unsafe openContainers[handle.level].pendingValue != nil { writePendingValue(of: handle.level) }
    }

    private func writePendingValue(of level: Int) {
        guard let pending = unsafe openContainers[level].pendingValue else { return }
        unsafe openContainers[level].pendingValue = nil
        if unsafe pending.offset == output.count { writeEmptyKeyedContainer(depth: level + 2, path: renderPath(pending.path)) }
    }

    private func closeInnermost() {
        unsafe writePendingValue(of: openContainers.count - 1)
        let container = unsafe openContainers.removeLast()
        unsafe keys.removeSubrange(container.firstKey...)
        let countOffset = container.headerOffset + 1
        if container.count < 0x80 {
            unsafe output[countOffset] = UInt8(container.count)
        } else {
            var varint: [UInt8] = []
            appendVarint(UInt64(container.count), to: &varint)
            unsafe output.replaceSubrange(countOffset..<(countOffset + 1), with: varint)
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
