/// A fuzzer's byte string read as a stream of little-endian values: every read succeeds, and
/// reads past the end return zeros, so any input decodes to some sequence of operations.
public struct FuzzInput {
    private let bytes: [UInt8]
    private var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Bytes not read yet.
    public var remaining: Int { bytes.count - position }
    /// Whether every byte was read.
    public var isAtEnd: Bool { position >= bytes.count }

    public mutating func u8() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    public mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    public mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }
    public mutating func bool() -> Bool { u8() & 1 != 0 }

    /// A value in `0..<bound` (0 when `bound` is 0).
    public mutating func below(_ bound: Int) -> Int {
        guard bound > 0 else { return 0 }
        return Int(u32() % UInt32(truncatingIfNeeded: bound))
    }

    /// Up to `count` bytes (fewer at the end of the input).
    public mutating func bytes(_ count: Int) -> [UInt8] {
        let n = max(0, min(count, bytes.count - position))
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] { bytes(remaining) }
}

/// A property a harness checks failed: the fuzzer reports it as a crash, the replay tests as an issue.
public struct FuzzInvariantViolation: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Throws a `FuzzInvariantViolation` with `message` unless `condition` holds.
@inline(__always)
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) throws(FuzzInvariantViolation) {
    if !condition() { throw FuzzInvariantViolation(message()) }
}
