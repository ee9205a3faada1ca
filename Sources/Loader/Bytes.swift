// Bounds-checked little-endian access to untrusted image bytes, and a fixed-size writer for the
// boot structures this module builds.

/// `0x1f` formatting used in every message.
func hex<T: BinaryInteger>(_ value: T) -> String {
    "0x" + String(value, radix: 16)
}

/// `a + b`, or an overflow error naming `what`.
func checkedAdd(_ a: UInt64, _ b: UInt64, _ what: @autoclosure () -> String) throws(LoaderError) -> UInt64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    if overflow { throw .overflow("\(what()): \(hex(a)) + \(hex(b)) overflows 64 bits") }
    return sum
}

/// `a * b`, or an overflow error naming `what`.
func checkedMultiply(_ a: UInt64, _ b: UInt64, _ what: @autoclosure () -> String) throws(LoaderError) -> UInt64 {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    if overflow { throw .overflow("\(what()): \(hex(a)) * \(hex(b)) overflows 64 bits") }
    return product
}

/// `value` rounded up to a multiple of `alignment` (a power of two), or nil on overflow.
func alignUp(_ value: UInt64, _ alignment: UInt64) -> UInt64? {
    let mask = alignment &- 1
    let (sum, overflow) = value.addingReportingOverflow(mask)
    if overflow { return nil }
    return sum & ~mask
}

/// `value` rounded down to a multiple of `alignment` (a power of two).
func alignDown(_ value: UInt64, _ alignment: UInt64) -> UInt64 {
    value & ~(alignment &- 1)
}

/// Whether `value` is a non-zero power of two.
func isPowerOfTwo(_ value: UInt64) -> Bool {
    value != 0 && value & (value &- 1) == 0
}

/// The page size used for initrd and module placement.
let pageSize: UInt64 = 4096

extension Array where Element == UInt8 {
    /// Whether `count` bytes at `offset` lie inside the array (no arithmetic can overflow).
    func hasBytes(at offset: UInt64, count: UInt64) -> Bool {
        let total = UInt64(self.count)
        return offset <= total && count <= total - offset
    }

    /// The `count` bytes at `offset`, or a truncation error naming `what`.
    func bytes(at offset: UInt64, count: UInt64, _ what: @autoclosure () -> String) throws(LoaderError)
        -> ArraySlice<UInt8>
    {
        guard hasBytes(at: offset, count: count) else {
            throw .truncated(
                "\(what()) at file offset \(hex(offset)) needs \(hex(count)) bytes but the file is \(hex(self.count)) bytes long"
            )
        }
        let start = Int(offset)
        return self[start..<(start + Int(count))]
    }

    /// A little-endian integer at `offset`, or a truncation error naming `what`.
    func readLE<T: FixedWidthInteger & UnsignedInteger>(
        _: T.Type, at offset: UInt64, _ what: @autoclosure () -> String
    ) throws(LoaderError) -> T {
        let size = UInt64(MemoryLayout<T>.size)
        guard hasBytes(at: offset, count: size) else {
            throw .truncated(
                "\(what()) at file offset \(hex(offset)) needs \(size) bytes but the file is \(hex(self.count)) bytes long"
            )
        }
        return loadLE(T.self, at: Int(offset))
    }

    /// A little-endian integer at an offset already known to be in bounds.
    func loadLE<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size {
            value |= T(self[offset + i]) << (8 * i)
        }
        return value
    }
}

/// A zero-initialised structure of fixed size, written field by field at offsets chosen by this
/// module (never by image data).
struct StructureWriter {
    private(set) var bytes: [UInt8]

    init(size: Int) {
        bytes = [UInt8](repeating: 0, count: size)
    }

    mutating func put<T: FixedWidthInteger & UnsignedInteger>(_ value: T, at offset: Int) {
        for i in 0..<MemoryLayout<T>.size {
            bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i))
        }
    }

    mutating func put<C: Collection>(bytes source: C, at offset: Int) where C.Element == UInt8 {
        var i = offset
        for byte in source {
            bytes[i] = byte
            i += 1
        }
    }
}
