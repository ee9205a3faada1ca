/// Sizes derived from the header.
struct QCOW2Geometry: Sendable {
    let clusterBits: UInt64
    let clusterSize: UInt64
    let l2Bits: UInt64
    let l2Entries: UInt64
    let refcountOrder: UInt64
    let refcountBlockEntries: UInt64
    let maxRefcount: UInt64

    init(clusterBits: UInt32, refcountOrder: UInt32) {
        self.clusterBits = UInt64(clusterBits)
        clusterSize = 1 << UInt64(clusterBits)
        l2Bits = UInt64(clusterBits) - 3
        l2Entries = clusterSize / 8
        self.refcountOrder = UInt64(refcountOrder)
        refcountBlockEntries = (clusterSize * 8) >> UInt64(refcountOrder)
        let bits = UInt64(1) << UInt64(refcountOrder)
        maxRefcount = bits == 64 ? UInt64.max : (UInt64(1) << bits) - 1
    }

    func l1Index(_ offset: UInt64) -> Int { Int(offset >> (clusterBits + l2Bits)) }
    func l2Index(_ offset: UInt64) -> Int { Int((offset >> clusterBits) & (l2Entries - 1)) }
    func offsetInCluster(_ offset: UInt64) -> UInt64 { offset & (clusterSize - 1) }
}

/// Bit layout of L1 and L2 entries.
enum QCOW2Entry {
    static let copied: UInt64 = 1 << 63
    static let compressed: UInt64 = 1 << 62
    static let zero: UInt64 = 1
    static let offsetMask: UInt64 = 0x00ff_ffff_ffff_fe00
    /// Bits that must be clear in an L1 entry.
    static let l1Reserved: UInt64 = 0x7f00_0000_0000_01ff
    /// Bits that must be clear in a standard L2 entry.
    static let l2Reserved: UInt64 = 0x3f00_0000_0000_01fe
}

/// One L2 table in the cache, with the range of entries changed since it was last written.
final class L2Table {
    let diskOffset: UInt64
    var entries: [UInt64]
    var dirtyLow = Int.max
    var dirtyHigh = -1

    init(diskOffset: UInt64, entries: [UInt64]) {
        self.diskOffset = diskOffset
        self.entries = entries
    }

    var isDirty: Bool { dirtyHigh >= dirtyLow }

    func set(_ index: Int, _ value: UInt64) {
        entries[index] = value
        dirtyLow = min(dirtyLow, index)
        dirtyHigh = max(dirtyHigh, index)
    }

    func markAllDirty() {
        dirtyLow = 0
        dirtyHigh = entries.count - 1
    }
}

/// One refcount block in the cache. Entries are 1 to 64 bits wide; sub-byte entries fill bytes from bit 0.
final class RefcountBlock {
    let diskOffset: UInt64
    let order: UInt64
    var bytes: [UInt8]
    var dirty = false

    init(diskOffset: UInt64, order: UInt64, bytes: [UInt8]) {
        self.diskOffset = diskOffset
        self.order = order
        self.bytes = bytes
    }

    func get(_ index: Int) -> UInt64 {
        switch order {
        case 0, 1, 2:
            let bits = 1 << Int(order)
            let perByte = 8 / bits
            let shift = (index % perByte) * bits
            return UInt64((bytes[index / perByte] >> UInt8(shift)) & UInt8((1 << bits) - 1))
        case 3: return UInt64(bytes[index])
        case 4: return UInt64(bytes.be16(at: index * 2) ?? 0)
        case 5: return UInt64(bytes.be32(at: index * 4) ?? 0)
        default: return bytes.be64(at: index * 8) ?? 0
        }
    }

    func set(_ index: Int, _ value: UInt64) {
        switch order {
        case 0, 1, 2:
            let bits = 1 << Int(order)
            let perByte = 8 / bits
            let shift = (index % perByte) * bits
            let mask = UInt8((1 << bits) - 1) << UInt8(shift)
            let byte = bytes[index / perByte]
            bytes[index / perByte] = (byte & ~mask) | (UInt8(truncatingIfNeeded: value) << UInt8(shift) & mask)
        case 3: bytes[index] = UInt8(truncatingIfNeeded: value)
        case 4: bytes.putBE16(UInt16(truncatingIfNeeded: value), at: index * 2)
        case 5: bytes.putBE32(UInt32(truncatingIfNeeded: value), at: index * 4)
        default: bytes.putBE64(value, at: index * 8)
        }
        dirty = true
    }
}

/// Where a guest cluster's data lives.
enum ClusterMapping: Equatable {
    /// Not allocated in this image: read from the backing file or as zeros.
    case unallocated
    /// Reads as zeros (v3 zero flag); `hostOffset` is kept if the cluster stays allocated.
    case zero(hostOffset: UInt64)
    /// Plain data at a host offset; `copied` means refcount is exactly one.
    case data(hostOffset: UInt64, copied: Bool)
    /// Compressed data: host byte offset and the most bytes it may occupy.
    case compressed(hostOffset: UInt64, length: UInt64)
}
