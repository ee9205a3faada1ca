extension DecodingState {
    /// Reads a `primitive` value as a `T`, the type it was derived from; sets `end` to the
    /// offset after it.
    func readPrimitive<T>(_ primitive: Primitive, as type: T.Type, at offset: Int, end: inout Int) throws(FormatError) -> T? {
        switch primitive {
        case .bytes:
            let range = try readByteString(at: offset)
            end = range.upperBound
            return byteArray(in: range) as? T
        case .contiguousBytes:
            let range = try readByteString(at: offset)
            end = range.upperBound
            return unsafe ContiguousArray(bytes(in: range)) as? T
        case .bool: return try Bool.read(from: self, at: offset, end: &end) as? T
        case .string: return try String.read(from: self, at: offset, end: &end) as? T
        case .double: return try Double.read(from: self, at: offset, end: &end) as? T
        case .float: return try Float.read(from: self, at: offset, end: &end) as? T
        case .int: return try Int.read(from: self, at: offset, end: &end) as? T
        case .int8: return try Int8.read(from: self, at: offset, end: &end) as? T
        case .int16: return try Int16.read(from: self, at: offset, end: &end) as? T
        case .int32: return try Int32.read(from: self, at: offset, end: &end) as? T
        case .int64: return try Int64.read(from: self, at: offset, end: &end) as? T
        case .uint: return try UInt.read(from: self, at: offset, end: &end) as? T
        case .uint8: return try UInt8.read(from: self, at: offset, end: &end) as? T
        case .uint16: return try UInt16.read(from: self, at: offset, end: &end) as? T
        case .uint32: return try UInt32.read(from: self, at: offset, end: &end) as? T
        case .uint64: return try UInt64.read(from: self, at: offset, end: &end) as? T
        }
    }
}

/// A type the format holds as one scalar value, read without a `Decoder`.
protocol ScalarDecodable {
    /// Reads the value at `offset` and sets `end` to the offset after it.
    static func read(from state: DecodingState, at offset: Int, end: inout Int) throws(FormatError) -> Self
}

extension ScalarDecodable where Self: FixedWidthInteger {
    static func read(from state: DecodingState, at offset: Int, end: inout Int) throws(FormatError) -> Self {
        let value: Self
        (value, end) = try state.readInteger(Self.self, at: offset)
        return value
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
    static func read(from state: DecodingState, at offset: Int, end: inout Int) throws(FormatError) -> Bool {
        let value: Bool
        (value, end) = try state.readBool(at: offset)
        return value
    }
}

extension String: ScalarDecodable {
    static func read(from state: DecodingState, at offset: Int, end: inout Int) throws(FormatError) -> String {
        let value: String
        (value, end) = try state.readString(at: offset)
        return value
    }
}

extension Float: ScalarDecodable {
    static func read(from state: DecodingState, at offset: Int, end: inout Int) throws(FormatError) -> Float {
        let value: Float
        (value, end) = try state.readFloat(at: offset)
        return value
    }
}

extension Double: ScalarDecodable {
    static func read(from state: DecodingState, at offset: Int, end: inout Int) throws(FormatError) -> Double {
        let value: Double
        (value, end) = try state.readDouble(at: offset)
        return value
    }
}
