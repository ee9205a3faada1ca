import Storage
/// Content-defined chunking with FastCDC (Xia et al., USENIX ATC 2016): a gear rolling hash, a
/// stricter mask before the average size and a looser one after it (normalized chunking), hard
/// minimum and maximum sizes. Boundaries depend only on nearby content, so an insertion moves only
/// the chunks around it, and identical data in two images yields identical chunks.
public struct FastCDC: Sendable, Equatable {
    public let minSize: Int
    public let averageSize: Int
    public let maxSize: Int
    let maskSmall: UInt64
    let maskLarge: UInt64

    /// The store's gear table: 256 fixed pseudo-random words (splitmix64 from a fixed seed). Changing it
    /// changes every chunk boundary, so it is part of the store format.
    static let gear: [UInt64] = {
        var state: UInt64 = 0x736b_6966_6663_6463  // "skiffcdc"
        return (0..<256).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }()

    /// `averageSize` must be a power of two; min and max default to a quarter and four times it.
    public init(averageSize: Int = 64 << 10, minSize: Int? = nil, maxSize: Int? = nil) throws {
        guard averageSize >= 256, averageSize <= 16 << 20, averageSize.nonzeroBitCount == 1 else {
            throw StorageError.invalidArgument("average chunk size must be a power of two from 256 B to 16 MiB")
        }
        self.averageSize = averageSize
        self.minSize = minSize ?? averageSize / 4
        self.maxSize = maxSize ?? averageSize * 4
        guard self.minSize >= 64, self.minSize < averageSize, self.maxSize > averageSize else {
            throw StorageError.invalidArgument("chunk sizes must satisfy 64 <= min < average < max")
        }
        let bits = averageSize.trailingZeroBitCount
        // Normalization level 2: two more mask bits before the average, two fewer after it.
        maskSmall = FastCDC.topBits(bits + 2)
        maskLarge = FastCDC.topBits(bits - 2)
    }

    private static func topBits(_ n: Int) -> UInt64 {
        n >= 64 ? UInt64.max : ((UInt64(1) << UInt64(n)) - 1) << UInt64(64 - n)
    }

    /// Length of the next chunk at the start of `data`. With `isFinal` false and less than `maxSize`
    /// bytes available, the caller should supply more data first.
    public func cut(_ data: UnsafeRawBufferPointer) -> Int {
        let count = data.count
        if count <= minSize { return count }
        let end = min(count, maxSize)
        let middle = min(end, averageSize)
        var hash: UInt64 = 0
        var i = minSize
        return unsafe FastCDC.gear.withUnsafeBufferPointer { gear -> Int in
            guard let bytes = unsafe data.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return count }
            while i < middle {
                hash = unsafe (hash << 1) &+ gear[Int(bytes[i])]
                if hash & maskSmall == 0 { return i + 1 }
                i += 1
            }
            while i < end {
                hash = unsafe (hash << 1) &+ gear[Int(bytes[i])]
                if hash & maskLarge == 0 { return i + 1 }
                i += 1
            }
            return end
        }
    }
}
