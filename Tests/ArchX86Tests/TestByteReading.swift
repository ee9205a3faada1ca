/// Little-endian readers for checking table layouts in tests (independent of the encoders).
extension Array where Element == UInt8 {
    func u8(_ offset: Int) -> UInt8 { self[offset] }

    func u16(_ offset: Int) -> UInt16 {
        UInt16(self[offset]) | UInt16(self[offset + 1]) << 8
    }

    func u32(_ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(self[offset + $1]) << (8 * UInt32($1)) }
    }

    func u64(_ offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(self[offset + $1]) << (8 * UInt64($1)) }
    }

    func ascii(_ offset: Int, _ count: Int) -> String {
        String(decoding: self[offset..<(offset + count)], as: UTF8.self)
    }

    /// Wrapping 8-bit sum of a range.
    func byteSum(_ range: Range<Int>? = nil) -> UInt8 {
        self[range ?? 0..<count].reduce(0, &+)
    }

    /// Whether `needle` occurs anywhere.
    func contains(bytes needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { Array(self[$0..<($0 + needle.count)]) == needle }
    }
}
