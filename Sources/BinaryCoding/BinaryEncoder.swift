/// Encodes `Encodable` values in Skiff's binary format, the encoding of VM snapshot state
/// files, the live-migration stream and monitor control messages.
///
/// # Format
///
/// Self-describing and tagged: every value is a one-byte tag followed by its payload. A
/// *varint* is an unsigned LEB128 integer — seven bits a byte, least significant group first,
/// the high bit set on every byte but the last — and must be canonical: at most 10 bytes, no
/// final 0x00 byte after the first byte (overlong), and a 10th byte of 0 or 1 only.
///
/// | Tag  | Value            | Payload                                                              |
/// |------|------------------|----------------------------------------------------------------------|
/// | 0x01 | nil              | none                                                                 |
/// | 0x02 | false            | none                                                                 |
/// | 0x03 | true             | none                                                                 |
/// | 0x04 | unsigned integer | varint                                                               |
/// | 0x05 | signed integer   | varint of the zigzag mapping (0, -1, 1, -2, … → 0, 1, 2, 3, …)       |
/// | 0x06 | Float            | IEEE 754 bit pattern, 4 bytes little-endian                          |
/// | 0x07 | Double           | IEEE 754 bit pattern, 8 bytes little-endian                          |
/// | 0x08 | string           | varint byte count, UTF-8                                             |
/// | 0x09 | byte string      | varint byte count, the bytes                                         |
/// | 0x0A | array            | varint element count, the elements (values)                          |
/// | 0x0B | keyed container  | varint entry count, entries: key (varint byte count, UTF-8), value   |
///
/// Tag 0x00 and tags above 0x0B are invalid (zero-filled input fails at its first byte).
/// An input is exactly one value: bytes after it are an error.
///
/// Swift values map onto it as follows:
/// - `Int`, `Int8` … `Int64` are signed integers; `UInt`, `UInt8` … `UInt64` unsigned ones.
///   Decoding takes either integer tag into any integer type that can represent the value.
///   `Int128` and `UInt128` are not supported.
/// - `[UInt8]` and `ContiguousArray<UInt8>` are always byte strings, at the top level and inside
///   containers alike. (`ArraySlice` is not `Codable`.)
/// - Structs, classes and enums with associated values are keyed containers: keys are
///   `CodingKey.stringValue`s, in the order `encode(to:)` writes them, and unique within a
///   container. Dictionaries keyed by `String` or `Int` are keyed containers too, in their
///   iteration order; other collections are arrays.
/// - `superEncoder()` writes under the key "super" in a keyed container, or as the next element
///   of an array.
/// - Synthesized code omits nil optionals from keyed containers; elsewhere nil is the nil tag.
/// - A value whose `encode(to:)` writes nothing is an empty keyed container.
///
/// Decoders ignore keys they do not know, so optional fields can be added compatibly.
///
/// Examples: `300 as UInt16` is `04 AC 02`; `-1` is `05 01`; `"hé"` is `08 03 68 C3 A9`;
/// `[1, 2] as [UInt8]` is `09 02 01 02`; `struct P { var x = 1, y = -1 }` (Int fields) is
/// `0B 02 01 78 05 02 01 79 05 01`.
///
/// # Encoding
///
/// Deterministic: a value whose `encode(to:)` is deterministic always encodes to the same
/// bytes (a `Dictionary`'s iteration order is not: it varies between processes). Values are
/// written straight into one buffer; nested containers must be filled in order, as synthesized
/// `Codable` code does (see `EncodingState`).
public struct BinaryEncoder: Sendable {
    /// Deepest nesting of containers written; deeper values fail to encode rather than produce
    /// what a decoder with the same `maxDepth` rejects (and a reference cycle fails rather than
    /// exhausting the stack).
    public var maxDepth: Int

    /// An encoder writing at most `maxDepth` levels of containers (by default as deep as
    /// `BinaryDecoder` reads by default).
    public init(maxDepth: Int = BinaryDecoder.Limits.default.maxDepth) {
        self.maxDepth = maxDepth
    }

    /// Encodes `value`.
    public func encode<T: Encodable>(_ value: T) throws(BinaryCodingError) -> [UInt8] {
        let state = EncodingState(maxDepth: maxDepth)
        try state.encodeValue(value, parent: nil, component: nil, enclosingDepth: 0)
        return try state.finish()
    }
}
