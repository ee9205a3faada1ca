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
@safe final class DecodingState {
    /// The input; empty once `decode` has returned, so a decoder that escaped cannot read it.
    private(set) var input: UnsafeRawBufferPointer
    let limits: BinaryDecoder.Limits
    private(set) var isFinished = false

    init(input: UnsafeRawBufferPointer, limits: BinaryDecoder.Limits) {
        unsafe self.input = input
        self.limits = limits
    }

    /// Ends decoding: the input may be freed after this.
    func finish() {
        isFinished = true
        unsafe input = UnsafeRawBufferPointer(start: nil, count: 0)
    }

    // MARK: Tags and varints

    /// The tag byte of the value at `offset`.
    @inline(__always)
    func tag(at offset: Int) throws(FormatError) -> UInt8 {
        guard offset >= 0, unsafe offset < input.count else { throw .truncated(offset: offset) }
        return unsafe input[offset]
    }

    /// The error for a value tagged `tag` at `offset` where a value of kind `expected` is needed.
    func mismatch(_ tag: UInt8, expected: String, at offset: Int) -> FormatError {
        guard let found = Tag(rawValue: tag) else { return .unknownTag(tag, offset: offset) }
        return .typeMismatch(expected: expected, found: found.name, offset: offset)
    }

    func isNil(at offset: Int) -> Bool {
        unsafe offset >= 0 && offset < input.count && input[offset] == Tag.nilValue.rawValue
    }

    /// Reads a canonical LEB128 varint at `offset`, part of the value or key at `item`.
    @inline(__always)
    func varint(at offset: Int, item: Int) throws(FormatError) -> (value: UInt64, end: Int) {
        if unsafe offset < input.count, unsafe input[offset] < 0x80 { return unsafe (UInt64(input[offset]), offset + 1) }
        return try multiByteVarint(at: offset, item: item)
    }

    private func multiByteVarint(at offset: Int, item: Int) throws(FormatError) -> (value: UInt64, end: Int) {
        if unsafe input.count - offset >= 8 {
            // All of a varint of up to 8 bytes in one load: its last byte is the first without
            // the continuation bit; its 7-bit groups are then gathered in three steps.
            let word = unsafe UInt64(littleEndian: input.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            let lastBytes = ~word & 0x8080_8080_8080_8080
            if lastBytes != 0 {
                let length = lastBytes.trailingZeroBitCount / 8 + 1
                let bits = length == 8 ? word : word & ((1 << UInt64(8 * length)) - 1)
                guard length == 1 || bits >> UInt64(8 * length - 8) != 0 else { throw .malformedVarint(offset: item) }
                var value = bits & 0x7F7F_7F7F_7F7F_7F7F
                value = (value & 0x007F_007F_007F_007F) | ((value & 0x7F00_7F00_7F00_7F00) >> 1)
                value = (value & 0x0000_3FFF_0000_3FFF) | ((value & 0x3FFF_0000_3FFF_0000) >> 2)
                value = (value & 0x0000_0000_0FFF_FFFF) | ((value & 0x0FFF_FFFF_0000_0000) >> 4)
                return (value, offset + length)
            }
        }
        var value: UInt64 = 0
        var position = offset
        for length in 1...maxVarintLength {
            guard unsafe position < input.count else { throw .truncated(offset: item) }
            let byte = unsafe input[position]
            if length == maxVarintLength, byte > 1 { throw .malformedVarint(offset: item) }
            value |= UInt64(byte & 0x7F) << UInt64(7 * (length - 1))
            position += 1
            if byte < 0x80 {
                guard byte != 0 || length == 1 else { throw .malformedVarint(offset: item) }
                return (value, position)
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
        guard unsafe Int(length) <= input.count - start else { throw .truncated(offset: item) }
        return start..<(start + Int(length))
    }

    // MARK: Scalars

    func readBool(at offset: Int) throws(FormatError) -> (Bool, Int) {
        switch try tag(at: offset) {
        case Tag.falseValue.rawValue: (false, offset + 1)
        case Tag.trueValue.rawValue: (true, offset + 1)
        case let found: throw mismatch(found, expected: "bool", at: offset)
        }
    }

    /// Reads an integer of either sign's tag, if `T` can represent it.
    func readInteger<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) throws(FormatError) -> (T, Int) {
        let found = try tag(at: offset)
        let isUnsigned = found == Tag.unsigned.rawValue
        guard isUnsigned || found == Tag.signed.rawValue else { throw mismatch(found, expected: "integer", at: offset) }
        let (raw, end) = try varint(at: offset + 1, item: offset)
        if isUnsigned {
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
        guard found == expected.rawValue else { throw mismatch(found, expected: expected.name, at: offset) }
        let start = offset + 1
        guard unsafe MemoryLayout<T>.size <= input.count - start else { throw .truncated(offset: offset) }
        return unsafe (T(littleEndian: input.loadUnaligned(fromByteOffset: start, as: T.self)), start + MemoryLayout<T>.size)
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
        guard found == expected.rawValue else { throw mismatch(found, expected: expected.name, at: offset) }
        return try lengthPrefixed(at: offset + 1, limit: expected == .string ? .stringLength : .byteStringLength, item: offset)
    }

    /// The bytes in `range`, which the caller has checked against the input.
    func bytes(in range: Range<Int>) -> UnsafeRawBufferPointer {
        unsafe UnsafeRawBufferPointer(rebasing: input[range])
    }

    /// The bytes in `range` as a new array (one copy).
    func byteArray(in range: Range<Int>) -> [UInt8] {
        let source = unsafe bytes(in: range)
        return unsafe [UInt8](unsafeUninitializedCapacity: source.count) { buffer, initialized in
            unsafe UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            initialized = source.count
        }
    }

    /// The UTF-8 in `range` as a string, or nil if it is not valid UTF-8.
    func validatedString(in range: Range<Int>) -> String? {
        unsafe bytes(in: range).withMemoryRebound(to: UInt8.self) { unsafe String(validating: $0, as: UTF8.self) }
    }

    // MARK: Containers

    /// Reads a key (varint length and UTF-8) at `offset` and returns the range of its UTF-8.
    func readKey(at offset: Int) throws(FormatError) -> Range<Int> {
        let range = try lengthPrefixed(at: offset, limit: .stringLength, item: offset)
        let isASCII = unsafe bytes(in: range).allSatisfy { $0 < 0x80 }
        guard isASCII || validatedString(in: range) != nil else { throw .invalidUTF8(offset: offset) }
        return range
    }

    /// Reads the header of the container at `offset`, which sits at nesting `depth`: returns its
    /// element count (checked against the limits and the input left) and its first element.
    func readContainerHeader(_ expected: Tag, at offset: Int, depth: Int) throws(FormatError) -> (count: Int, first: Int) {
        let found = try tag(at: offset)
        guard found == expected.rawValue else { throw mismatch(found, expected: expected.name, at: offset) }
        return try containerCount(keyed: expected == .keyed, at: offset, depth: depth)
    }

    private func containerCount(keyed: Bool, at offset: Int, depth: Int) throws(FormatError) -> (count: Int, first: Int) {
        guard depth <= limits.maxDepth else {
            throw .limitExceeded(.depth, value: UInt64(depth), maximum: limits.maxDepth, offset: offset)
        }
        let (count, first) = try varint(at: offset + 1, item: offset)
        guard limits.maxContainerCount >= 0, count <= UInt64(limits.maxContainerCount) else {
            throw .limitExceeded(.containerCount, value: count, maximum: limits.maxContainerCount, offset: offset)
        }
        // Each element takes at least one byte (its tag), each entry at least two (key length, tag).
        guard unsafe Int(count) <= (input.count - first) / (keyed ? 2 : 1) else { throw .truncated(offset: offset) }
        return (Int(count), first)
    }

    /// The end of the value at `offset`, a value inside `enclosingDepth` containers.
    ///
    /// Checks structure only (tags, canonical varints, lengths, counts, depth), not the UTF-8 of
    /// strings or the uniqueness of keys, which decoding checks for the values it reads.
    func skipValue(at offset: Int, enclosingDepth: Int) throws(FormatError) -> Int {
        let found = try tag(at: offset)
        switch found {
        case Tag.nilValue.rawValue, Tag.falseValue.rawValue, Tag.trueValue.rawValue:
            return offset + 1
        case Tag.unsigned.rawValue, Tag.signed.rawValue:
            return try varint(at: offset + 1, item: offset).end
        case Tag.float32.rawValue, Tag.float64.rawValue:
            let size = found == Tag.float32.rawValue ? 4 : 8
            guard unsafe size <= input.count - (offset + 1) else { throw .truncated(offset: offset) }
            return offset + 1 + size
        case Tag.string.rawValue:
            return try lengthPrefixed(at: offset + 1, limit: .stringLength, item: offset).upperBound
        case Tag.bytes.rawValue:
            return try lengthPrefixed(at: offset + 1, limit: .byteStringLength, item: offset).upperBound
        case Tag.array.rawValue, Tag.keyed.rawValue:
            let keyed = found == Tag.keyed.rawValue
            let depth = enclosingDepth + 1
            var (remaining, next) = try containerCount(keyed: keyed, at: offset, depth: depth)
            while remaining > 0 {
                if keyed { next = try lengthPrefixed(at: next, limit: .stringLength, item: next).upperBound }
                next = try skipValue(at: next, enclosingDepth: depth)
                remaining -= 1
            }
            return next
        default:
            throw .unknownTag(found, offset: offset)
        }
    }
}
