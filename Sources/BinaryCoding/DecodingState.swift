/// A problem in the input, before the decoder locates it on a coding path.
enum FormatError: Error {
    case truncated(offset: Int)
    case unknownTag(UInt8, offset: Int)
    case typeMismatch(expected: String, found: String, offset: Int)
    case integerOutOfRange(value: String, type: String, offset: Int)
    case malformedVarint(offset: Int)
    case invalidUTF8(offset: Int)
    case limitExceeded(BinaryCodingError.Limit, value: UInt64, maximum: Int, offset: Int)

    func located(at path: String) -> BinaryCodingError {
        switch self {
        case .truncated(let offset): .truncated(path: path, offset: offset)
        case .unknownTag(let tag, let offset): .unknownTag(path: path, tag: tag, offset: offset)
        case .typeMismatch(let expected, let found, let offset): .typeMismatch(path: path, expected: expected, found: found, offset: offset)
        case .integerOutOfRange(let value, let type, let offset): .integerOutOfRange(path: path, value: value, type: type, offset: offset)
        case .malformedVarint(let offset): .malformedVarint(path: path, offset: offset)
        case .invalidUTF8(let offset): .invalidUTF8(path: path, offset: offset)
        case .limitExceeded(let limit, let value, let maximum, let offset):
            .limitExceeded(path: path, limit: limit, value: value, maximum: maximum, offset: offset)
        }
    }
}

/// The input of one `decode` call, its limits, and the reading of values from it.
///
/// Every read takes the offset of a value and returns it with the offset just past it. Every
/// offset, length and count is checked against the input (no unchecked arithmetic on them,
/// no trap on any input); errors carry the offset of the value or key at fault.
final class DecodingState {
    /// The input; empty once `decode` has returned, so a decoder that escaped cannot read it.
    private(set) var input: UnsafeRawBufferPointer
    let limits: BinaryDecoder.Limits
    private(set) var isFinished = false

    init(input: UnsafeRawBufferPointer, limits: BinaryDecoder.Limits) {
        self.input = input
        self.limits = limits
    }

    /// Ends decoding: the input may be freed after this.
    func finish() {
        isFinished = true
        input = UnsafeRawBufferPointer(start: nil, count: 0)
    }

    // MARK: Tags and varints

    func tag(at offset: Int) throws(FormatError) -> Tag {
        guard offset >= 0, offset < input.count else { throw .truncated(offset: offset) }
        let byte = input[offset]
        guard let tag = Tag(rawValue: byte) else { throw .unknownTag(byte, offset: offset) }
        return tag
    }

    func isNil(at offset: Int) -> Bool {
        offset >= 0 && offset < input.count && input[offset] == Tag.nilValue.rawValue
    }

    /// Reads a canonical LEB128 varint at `offset`, part of the value or key at `item`.
    func varint(at offset: Int, item: Int) throws(FormatError) -> (value: UInt64, end: Int) {
        guard offset >= 0, offset < input.count else { throw .truncated(offset: item) }
        let first = input[offset]
        if first < 0x80 { return (UInt64(first), offset + 1) }
        var value = UInt64(first & 0x7F)
        for length in 2...maxVarintLength {
            let position = offset + length - 1
            guard position < input.count else { throw .truncated(offset: item) }
            let byte = input[position]
            if length == maxVarintLength, byte > 1 { throw .malformedVarint(offset: item) }
            value |= UInt64(byte & 0x7F) << UInt64(7 * (length - 1))
            if byte < 0x80 {
                guard byte != 0 else { throw .malformedVarint(offset: item) }
                return (value, position + 1)
            }
        }
        throw .malformedVarint(offset: item)
    }

    /// Reads a varint length at `offset` and returns the range of the bytes it announces,
    /// checked against `limit` and then against the input left.
    func lengthPrefixed(at offset: Int, limit: BinaryCodingError.Limit, item: Int) throws(FormatError) -> Range<Int> {
        let (length, start) = try varint(at: offset, item: item)
        let maximum = limits.maximum(limit)
        guard maximum >= 0, length <= UInt64(maximum) else {
            throw .limitExceeded(limit, value: length, maximum: maximum, offset: item)
        }
        guard Int(length) <= input.count - start else { throw .truncated(offset: item) }
        return start..<(start + Int(length))
    }

    // MARK: Scalars

    func readBool(at offset: Int) throws(FormatError) -> (Bool, Int) {
        switch try tag(at: offset) {
        case .falseValue: (false, offset + 1)
        case .trueValue: (true, offset + 1)
        case let found: throw .typeMismatch(expected: "bool", found: found.name, offset: offset)
        }
    }

    /// Reads an integer of either sign's tag, if `T` can represent it.
    func readInteger<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) throws(FormatError) -> (T, Int) {
        let found = try tag(at: offset)
        guard found == .unsigned || found == .signed else {
            throw .typeMismatch(expected: "integer", found: found.name, offset: offset)
        }
        let (raw, end) = try varint(at: offset + 1, item: offset)
        if found == .unsigned {
            guard let value = T(exactly: raw) else {
                throw .integerOutOfRange(value: String(raw), type: String(describing: T.self), offset: offset)
            }
            return (value, end)
        }
        let signed = ZigZag.decode(raw)
        guard let value = T(exactly: signed) else {
            throw .integerOutOfRange(value: String(signed), type: String(describing: T.self), offset: offset)
        }
        return (value, end)
    }

    func readFloat(at offset: Int) throws(FormatError) -> (Float, Int) {
        let (bits, end): (UInt32, Int) = try readFixedWidth(.float32, at: offset)
        return (Float(bitPattern: bits), end)
    }

    func readDouble(at offset: Int) throws(FormatError) -> (Double, Int) {
        let (bits, end): (UInt64, Int) = try readFixedWidth(.float64, at: offset)
        return (Double(bitPattern: bits), end)
    }

    private func readFixedWidth<T: FixedWidthInteger>(_ expected: Tag, at offset: Int) throws(FormatError) -> (T, Int) {
        let found = try tag(at: offset)
        guard found == expected else { throw .typeMismatch(expected: expected.name, found: found.name, offset: offset) }
        let start = offset + 1
        guard MemoryLayout<T>.size <= input.count - start else { throw .truncated(offset: offset) }
        return (T(littleEndian: input.loadUnaligned(fromByteOffset: start, as: T.self)), start + MemoryLayout<T>.size)
    }

    func readString(at offset: Int) throws(FormatError) -> (String, Int) {
        let range = try readPayload(.string, at: offset)
        guard let string = validatedString(in: range) else { throw .invalidUTF8(offset: offset) }
        return (string, range.upperBound)
    }

    /// Reads a byte string and returns the range of its bytes in the input.
    func readByteString(at offset: Int) throws(FormatError) -> Range<Int> {
        try readPayload(.bytes, at: offset)
    }

    private func readPayload(_ expected: Tag, at offset: Int) throws(FormatError) -> Range<Int> {
        let found = try tag(at: offset)
        guard found == expected else { throw .typeMismatch(expected: expected.name, found: found.name, offset: offset) }
        return try lengthPrefixed(at: offset + 1, limit: expected == .string ? .stringLength : .byteStringLength, item: offset)
    }

    /// The bytes in `range`, which the caller has checked against the input.
    func bytes(in range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: input[range])
    }

    /// The bytes in `range` as a new array (one copy).
    func byteArray(in range: Range<Int>) -> [UInt8] {
        let source = bytes(in: range)
        return [UInt8](unsafeUninitializedCapacity: source.count) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            initialized = source.count
        }
    }

    /// The UTF-8 in `range` as a string, or nil if it is not valid UTF-8.
    func validatedString(in range: Range<Int>) -> String? {
        bytes(in: range).withMemoryRebound(to: UInt8.self) { String(validating: $0, as: UTF8.self) }
    }

    /// Reads a key (varint length and UTF-8) at `offset` and returns the range of its UTF-8.
    func readKey(at offset: Int) throws(FormatError) -> Range<Int> {
        let range = try lengthPrefixed(at: offset, limit: .stringLength, item: offset)
        let isASCII = bytes(in: range).allSatisfy { $0 < 0x80 }
        guard isASCII || validatedString(in: range) != nil else { throw .invalidUTF8(offset: offset) }
        return range
    }

    /// Reads the header of the container at `offset`, which sits at nesting `depth`: returns its
    /// element count (checked against the limits and the input left) and its first element.
    func readContainerHeader(_ expected: Tag, at offset: Int, depth: Int) throws(FormatError) -> (count: Int, first: Int) {
        let found = try tag(at: offset)
        guard found == expected else { throw .typeMismatch(expected: expected.name, found: found.name, offset: offset) }
        return try containerCount(expected, at: offset, depth: depth)
    }

    private func containerCount(_ tag: Tag, at offset: Int, depth: Int) throws(FormatError) -> (count: Int, first: Int) {
        guard depth <= limits.maxDepth else {
            throw .limitExceeded(.depth, value: UInt64(depth), maximum: limits.maxDepth, offset: offset)
        }
        let (count, first) = try varint(at: offset + 1, item: offset)
        guard limits.maxContainerCount >= 0, count <= UInt64(limits.maxContainerCount) else {
            throw .limitExceeded(.containerCount, value: count, maximum: limits.maxContainerCount, offset: offset)
        }
        // Each element takes at least one byte (its tag), each entry at least two (key length, tag).
        let smallestElement = tag == .keyed ? 2 : 1
        guard Int(count) <= (input.count - first) / smallestElement else { throw .truncated(offset: offset) }
        return (Int(count), first)
    }

    /// The end of the value at `offset`, a value inside `enclosingDepth` containers.
    ///
    /// Checks structure only (tags, canonical varints, lengths, counts, depth), not the UTF-8 of
    /// strings or the uniqueness of keys, which decoding checks for the values it reads.
    func skipValue(at offset: Int, enclosingDepth: Int) throws(FormatError) -> Int {
        let found = try tag(at: offset)
        switch found {
        case .nilValue, .falseValue, .trueValue:
            return offset + 1
        case .unsigned, .signed:
            return try varint(at: offset + 1, item: offset).end
        case .float32, .float64:
            let size = found == .float32 ? 4 : 8
            guard size <= input.count - (offset + 1) else { throw .truncated(offset: offset) }
            return offset + 1 + size
        case .string, .bytes:
            return try readPayload(found, at: offset).upperBound
        case .array, .keyed:
            let depth = enclosingDepth + 1
            var (remaining, next) = try containerCount(found, at: offset, depth: depth)
            while remaining > 0 {
                if found == .keyed { next = try lengthPrefixed(at: next, limit: .stringLength, item: next).upperBound }
                next = try skipValue(at: next, enclosingDepth: depth)
                remaining -= 1
            }
            return next
        }
    }

    // MARK: Primitive types

    /// Reads a value of `type` if it is one the format encodes directly (integers, floats,
    /// Bool, String, byte arrays); nil for any other type, which decodes itself.
    func readPrimitive<T>(_ type: T.Type, at offset: Int) throws(FormatError) -> (value: T, end: Int)? {
        if T.self == [UInt8].self {
            let range = try readByteString(at: offset)
            return (byteArray(in: range) as? T).map { ($0, range.upperBound) }
        }
        if T.self == Int.self { return try read(Int.self, as: T.self, at: offset) }
        if T.self == UInt64.self { return try read(UInt64.self, as: T.self, at: offset) }
        if T.self == UInt32.self { return try read(UInt32.self, as: T.self, at: offset) }
        if T.self == UInt16.self { return try read(UInt16.self, as: T.self, at: offset) }
        if T.self == UInt8.self { return try read(UInt8.self, as: T.self, at: offset) }
        if T.self == String.self { return try read(String.self, as: T.self, at: offset) }
        if T.self == Bool.self { return try read(Bool.self, as: T.self, at: offset) }
        if T.self == Int64.self { return try read(Int64.self, as: T.self, at: offset) }
        if T.self == Int32.self { return try read(Int32.self, as: T.self, at: offset) }
        if T.self == Int16.self { return try read(Int16.self, as: T.self, at: offset) }
        if T.self == Int8.self { return try read(Int8.self, as: T.self, at: offset) }
        if T.self == UInt.self { return try read(UInt.self, as: T.self, at: offset) }
        if T.self == Double.self { return try read(Double.self, as: T.self, at: offset) }
        if T.self == Float.self { return try read(Float.self, as: T.self, at: offset) }
        if T.self == ContiguousArray<UInt8>.self {
            let range = try readByteString(at: offset)
            return (ContiguousArray(bytes(in: range)) as? T).map { ($0, range.upperBound) }
        }
        if T.self == ArraySlice<UInt8>.self {
            let range = try readByteString(at: offset)
            return (byteArray(in: range)[...] as? T).map { ($0, range.upperBound) }
        }
        return nil
    }

    /// Reads a `Scalar` and returns it as a `T`, which the caller has checked is `Scalar`.
    private func read<Scalar: ScalarDecodable, T>(_ scalar: Scalar.Type, as type: T.Type, at offset: Int) throws(FormatError) -> (value: T, end: Int)? {
        let (value, end) = try Scalar.read(from: self, at: offset)
        return (value as? T).map { ($0, end) }
    }
}

/// A type the format holds as one scalar value, read without a `Decoder`.
protocol ScalarDecodable {
    static func read(from state: DecodingState, at offset: Int) throws(FormatError) -> (value: Self, end: Int)
}

extension ScalarDecodable where Self: FixedWidthInteger {
    static func read(from state: DecodingState, at offset: Int) throws(FormatError) -> (value: Self, end: Int) {
        try state.readInteger(Self.self, at: offset)
    }
}

extension Int: ScalarDecodable {}
extension Int8: ScalarDecodable {}
extension Int16: ScalarDecodable {}
extension Int32: ScalarDecodable {}
extension Int64: ScalarDecodable {}
extension UInt: ScalarDecodable {}
extension UInt8: ScalarDecodable {}
extension UInt16: ScalarDecodable {}
extension UInt32: ScalarDecodable {}
extension UInt64: ScalarDecodable {}

extension Bool: ScalarDecodable {
    static func read(from state: DecodingState, at offset: Int) throws(FormatError) -> (value: Bool, end: Int) {
        try state.readBool(at: offset)
    }
}

extension String: ScalarDecodable {
    static func read(from state: DecodingState, at offset: Int) throws(FormatError) -> (value: String, end: Int) {
        try state.readString(at: offset)
    }
}

extension Float: ScalarDecodable {
    static func read(from state: DecodingState, at offset: Int) throws(FormatError) -> (value: Float, end: Int) {
        try state.readFloat(at: offset)
    }
}

extension Double: ScalarDecodable {
    static func read(from state: DecodingState, at offset: Int) throws(FormatError) -> (value: Double, end: Int) {
        try state.readDouble(at: offset)
    }
}
