/// Little-endian serialization helpers for the firmware tables built in this module.
extension Array where Element == UInt8 {
    mutating func appendLittleEndian(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
    }

    mutating func appendLittleEndian(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) {
            append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    mutating func appendLittleEndian(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) {
            append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    /// Appends `text` as ASCII, padded with `padding` or truncated to exactly `width` bytes.
    mutating func appendFixedASCII(_ text: String, width: Int, padding: UInt8 = 0x20) {
        var bytes = Array(text.utf8.prefix(width))
        while bytes.count < width { bytes.append(padding) }
        append(contentsOf: bytes)
    }

    /// Overwrites bytes at `offset` with the little-endian encoding of `value`.
    mutating func storeLittleEndian(_ value: UInt32, at offset: Int) {
        for i in 0..<4 {
            self[offset + i] = UInt8(truncatingIfNeeded: value >> UInt32(8 * i))
        }
    }

    /// Overwrites bytes at `offset` with the little-endian encoding of `value`.
    mutating func storeLittleEndian(_ value: UInt64, at offset: Int) {
        for i in 0..<8 {
            self[offset + i] = UInt8(truncatingIfNeeded: value >> UInt64(8 * i))
        }
    }

    /// Overwrites bytes at `offset` with the little-endian encoding of `value`.
    mutating func storeLittleEndian(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
    }
}

/// Byte checksums as used by ACPI, the MP specification and resource end tags.
enum ByteChecksum {
    /// The 8-bit sum of `bytes`, wrapping.
    static func sum<C: Collection>(_ bytes: C) -> UInt8 where C.Element == UInt8 {
        bytes.reduce(0, &+)
    }

    /// The byte that makes `bytes` plus itself sum to zero.
    static func complement<C: Collection>(_ bytes: C) -> UInt8 where C.Element == UInt8 {
        0 &- sum(bytes)
    }
}
