/// The byte that starts every encoded value and says what follows (see `BinaryEncoder`).
enum Tag: UInt8 {
    case nilValue = 0x01
    case falseValue = 0x02
    case trueValue = 0x03
    case unsigned = 0x04
    case signed = 0x05
    case float32 = 0x06
    case float64 = 0x07
    case string = 0x08
    case bytes = 0x09
    case array = 0x0A
    case keyed = 0x0B

    /// The kind of value, as error messages name it.
    var name: String {
        switch self {
        case .nilValue: "nil"
        case .falseValue, .trueValue: "bool"
        case .unsigned: "unsigned integer"
        case .signed: "signed integer"
        case .float32: "float32"
        case .float64: "float64"
        case .string: "string"
        case .bytes: "bytes"
        case .array: "array"
        case .keyed: "keyed container"
        }
    }
}

/// Zigzag mapping of signed integers onto unsigned ones (0, -1, 1, -2, … → 0, 1, 2, 3, …) so
/// that small magnitudes of either sign make short varints.
enum ZigZag {
    static func encode(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    static func decode(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value >> 1) ^ (0 &- Int64(bitPattern: value & 1))
    }
}

/// Longest canonical LEB128 encoding of a UInt64: 9 × 7 bits plus one final bit.
let maxVarintLength = 10
