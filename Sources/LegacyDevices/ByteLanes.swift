import DeviceModel

/// Splits a bus access into single-byte register accesses.
///
/// The legacy devices have 8-bit registers. On an ISA bus a 16- or 32-bit `in`/`out` to such
/// a device becomes consecutive byte cycles at `port`, `port + 1`, ..., so a wide access at
/// `offset` is handled as byte accesses at `offset + i`, lowest address (least significant
/// byte) first. The bus guarantees the whole access lies inside the device's range.
enum ByteLanes {
    /// Fills `data[i]` with `readByte(offset + i)`; a nil result leaves the byte as the bus set it.
    static func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer, _ readByte: (UInt64) -> UInt8?) {
        for i in data.indices {
            let (address, overflow) = offset.addingReportingOverflow(UInt64(i))
            guard !overflow else { return }
            if let value = readByte(address) { unsafe data[i] = value }
        }
    }

    /// Calls `writeByte(offset + i, data[i])` for every byte of the access.
    static func write(offset: UInt64, from data: UnsafeRawBufferPointer, _ writeByte: (UInt64, UInt8) -> Void) {
        for i in data.indices {
            let (address, overflow) = offset.addingReportingOverflow(UInt64(i))
            guard !overflow else { return }
            unsafe writeByte(address, data[i])
        }
    }

    /// The little-endian value of an access of at most 8 bytes (longer accesses keep the low 8).
    static func littleEndianValue(_ data: UnsafeRawBufferPointer) -> UInt64 {
        var value: UInt64 = 0
        for i in data.indices.prefix(8) {
            unsafe value |= UInt64(data[i]) << (8 * UInt64(i))
        }
        return value
    }
}

/// Drives an `InterruptLine` only when its level changes, remembering the last level.
///
/// Kept inside a device's locked state so that level changes reach the interrupt controller in
/// the same order as the state changes that caused them (two vCPUs cannot leave the line high
/// after the last pending interrupt was cleared).
struct LineLevel: Sendable {
    private(set) var isHigh = false

    mutating func drive(_ line: any InterruptLine, high: Bool) {
        guard high != isHigh else { return }
        isHigh = high
        line.setLevel(high)
    }

    /// Takes `high` as the line's level without driving it: for a restored device whose
    /// interrupt controller is restored from the same snapshot, and so already holds the pin at
    /// this level (see `Serial16550.restoreState(_:)`).
    mutating func adopt(_ high: Bool) {
        isHigh = high
    }
}
