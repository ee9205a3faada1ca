/// Big-endian field access on byte arrays, bounds-checked (nil or no-op when out of range).
extension Array where Element == UInt8 {
    package func be16(at offset: Int) -> UInt16? {
        guard offset >= 0, offset + 2 <= count else { return nil }
        return UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    package func be32(at offset: Int) -> UInt32? {
        guard offset >= 0, offset + 4 <= count else { return nil }
        var value: UInt32 = 0
        for i in 0..<4 { value = value << 8 | UInt32(self[offset + i]) }
        return value
    }

    package func be64(at offset: Int) -> UInt64? {
        guard offset >= 0, offset + 8 <= count else { return nil }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(self[offset + i]) }
        return value
    }

    package mutating func putBE16(_ value: UInt16, at offset: Int) {
        guard offset >= 0, offset + 2 <= count else { return }
        self[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    package mutating func putBE32(_ value: UInt32, at offset: Int) {
        guard offset >= 0, offset + 4 <= count else { return }
        for i in 0..<4 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (24 - 8 * i)) }
    }

    package mutating func putBE64(_ value: UInt64, at offset: Int) {
        guard offset >= 0, offset + 8 <= count else { return }
        for i in 0..<8 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (56 - 8 * i)) }
    }

    package static func be32Bytes(_ value: UInt32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 4)
        bytes.putBE32(value, at: 0)
        return bytes
    }

    package static func be64Bytes(_ value: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 8)
        bytes.putBE64(value, at: 0)
        return bytes
    }
}

/// Checked arithmetic helpers for values that come from files.
package enum Checked {
    package static func add(_ a: UInt64, _ b: UInt64) -> UInt64? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }

    package static func mul(_ a: UInt64, _ b: UInt64) -> UInt64? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }

    /// `ceil(a / b)` for b > 0.
    package static func divRoundUp(_ a: UInt64, _ b: UInt64) -> UInt64 {
        b == 0 ? 0 : a / b + (a % b == 0 ? 0 : 1)
    }
}
