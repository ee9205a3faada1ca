/// A deterministic random write/zero/flush sequence, shared by the crash-test writer process and the
/// test that checks what survived: both regenerate the same operations from the seed.
public struct StressWorkload: Sendable {
    public enum Operation: Sendable, Equatable {
        case write(offset: UInt64, length: Int)
        case zero(offset: UInt64, length: Int)
        case flush
    }

    public let seed: UInt64
    public let diskSize: UInt64
    private var state: UInt64
    public private(set) var index = 0

    public init(seed: UInt64, diskSize: UInt64) {
        self.seed = seed
        self.diskSize = diskSize
        state = seed | 1
    }

    private mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    /// The next operation; writes and zeroes are numbered from 1 by `index`.
    public mutating func nextOperation() -> Operation {
        let roll = next() % 100
        if roll < 12 { return .flush }
        index += 1
        let length = Int(512 + next() % (96 << 10)) & ~511
        let offset = (next() % (diskSize - UInt64(length))) & ~511
        return roll < 18 ? .zero(offset: offset, length: length) : .write(offset: offset, length: length)
    }

    /// The byte that write number `op` puts at disk offset `offset`.
    @inline(__always)
    public static func pattern(op: Int, offset: UInt64) -> UInt8 {
        UInt8(truncatingIfNeeded: (UInt64(op) &* 0x9E37_79B1) ^ (offset >> 2) ^ (offset << 5))
    }

    /// Fills `buffer` with the data of write `op` at `offset`.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer, op: Int, offset: UInt64) {
        for i in 0..<buffer.count { unsafe buffer[i] = pattern(op: op, offset: offset + UInt64(i)) }
    }

    /// The byte of the backing file at `offset` in the crash test.
    @inline(__always)
    public static func backingPattern(_ offset: UInt64) -> UInt8 {
        UInt8(truncatingIfNeeded: (offset >> 9) &* 37 ^ 0x5a)
    }
}
