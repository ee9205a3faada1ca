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

/// The Swift types the format encodes directly, told apart by a type's identity (cheaper than
/// dynamic casts, and needing no metadata of generic types built from the type in question).
enum Primitive {
    case bool, string, double, float
    case int, int8, int16, int32, int64
    case uint, uint8, uint16, uint32, uint64
    /// `[UInt8]`
    case bytes
    /// `ContiguousArray<UInt8>`
    case contiguousBytes

    init?(_ type: Any.Type) {
        switch ObjectIdentifier(type) {
        case byteArrayType: self = .bytes
        case ObjectIdentifier(Int.self): self = .int
        case ObjectIdentifier(UInt64.self): self = .uint64
        case ObjectIdentifier(UInt32.self): self = .uint32
        case ObjectIdentifier(UInt16.self): self = .uint16
        case ObjectIdentifier(UInt8.self): self = .uint8
        case ObjectIdentifier(String.self): self = .string
        case ObjectIdentifier(Bool.self): self = .bool
        case ObjectIdentifier(Int64.self): self = .int64
        case ObjectIdentifier(Int32.self): self = .int32
        case ObjectIdentifier(Int16.self): self = .int16
        case ObjectIdentifier(Int8.self): self = .int8
        case ObjectIdentifier(UInt.self): self = .uint
        case ObjectIdentifier(Double.self): self = .double
        case ObjectIdentifier(Float.self): self = .float
        case contiguousByteArrayType: self = .contiguousBytes
        default: return nil
        }
    }
}

/// Identities of the byte-array types, looked up once: asking for a generic type's metadata
/// costs more than the comparison.
private let byteArrayType = ObjectIdentifier([UInt8].self)
private let contiguousByteArrayType = ObjectIdentifier(ContiguousArray<UInt8>.self)

/// The length and first eight bytes of a key's UTF-8: enough to tell most keys apart without
/// comparing them byte by byte.
struct KeyFingerprint: Equatable {
    let length: Int
    let prefix: UInt64

    init(_ utf8: UnsafeRawBufferPointer) {
        length = utf8.count
        var prefix: UInt64 = 0
        unsafe withUnsafeMutableBytes(of: &prefix) { unsafe $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: utf8.prefix(8))) }
        self.prefix = prefix
    }

    /// Whether keys with this fingerprint are equal without comparing more bytes.
    var isWholeKey: Bool { length <= 8 }
}
