/// A half-open range of guest-physical addresses, `start ..< end`.
public struct AddressRange: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// First address in the range.
    public let start: UInt64
    /// One past the last address in the range.
    public let end: UInt64

    /// The range `start ..< start + size`, or nil when that end does not fit in 64 bits.
    public init?(start: UInt64, size: UInt64) {
        let (end, overflow) = start.addingReportingOverflow(size)
        if overflow { return nil }
        self.start = start
        self.end = end
    }

    /// The range `start ..< end`, or nil when `end < start`.
    public init?(start: UInt64, end: UInt64) {
        guard start <= end else { return nil }
        self.start = start
        self.end = end
    }

    /// `start ..< max(start, end)`: never fails, for ranges whose end is known not to be below the start.
    init(start: UInt64, clampedEnd end: UInt64) {
        self.start = start
        self.end = max(start, end)
    }

    /// Number of bytes in the range.
    public var size: UInt64 { end - start }

    /// Whether the range holds no byte.
    public var isEmpty: Bool { start == end }

    /// Whether the two ranges share at least one byte (empty ranges overlap nothing).
    public func overlaps(_ other: AddressRange) -> Bool {
        !isEmpty && !other.isEmpty && start < other.end && other.start < end
    }

    /// Whether every byte of `other` lies inside this range.
    public func contains(_ other: AddressRange) -> Bool {
        other.start >= start && other.end <= end
    }

    /// Whether `address` lies inside the range.
    public func contains(_ address: UInt64) -> Bool {
        address >= start && address < end
    }

    /// `[0x100000, 0x200000)`
    public var description: String { "[\(hex(start)), \(hex(end)))" }

    /// The range for `size` bytes at `start`, or an overflow error naming `what`.
    static func checked(start: UInt64, size: UInt64, _ what: @autoclosure () -> String) throws(LoaderError)
        -> AddressRange
    {
        guard let range = AddressRange(start: start, size: size) else {
            throw .overflow("\(what()): \(hex(start)) + \(hex(size)) bytes overflows 64 bits")
        }
        return range
    }
}
