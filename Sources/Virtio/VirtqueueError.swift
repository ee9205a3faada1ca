/// Ways a driver can break a virtqueue. Any of them marks the device as needing a reset
/// (the spec's DEVICE_NEEDS_RESET); none of them may crash the VMM.
public enum VirtqueueError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The queue size is 0, not a power of two, or above the device maximum.
    case invalidSize(UInt16)
    /// A ring or table address is misaligned or not inside guest RAM.
    case invalidRingAddress(String)
    /// avail.idx moved more than the queue size past the device's position.
    case availIndexJump(available: UInt16, next: UInt16)
    /// A head or `next` index is outside the table.
    case descriptorIndexOutOfRange(UInt16)
    /// A chain revisits a descriptor or exceeds the table size.
    case descriptorLoop
    /// A buffer lies outside guest RAM or wraps the address space.
    case bufferOutOfRange(address: UInt64, length: UInt32)
    /// The chain's total length exceeds 2^32 - 1 bytes.
    case chainTooLong
    /// A device-readable descriptor follows a device-writable one.
    case readableAfterWritable
    /// An indirect descriptor is malformed: not negotiated, empty, not a multiple of 16 bytes,
    /// too large, nested, or combined with NEXT.
    case invalidIndirect(String)
    /// The ring could not be read or written.
    case memory(String)

    public var description: String {
        switch self {
        case .invalidSize(let s): return "invalid queue size \(s)"
        case .invalidRingAddress(let s): return "invalid ring address: \(s)"
        case .availIndexJump(let a, let n): return "avail.idx \(a) is more than the queue size ahead of \(n)"
        case .descriptorIndexOutOfRange(let i): return "descriptor index \(i) out of range"
        case .descriptorLoop: return "descriptor chain loops or is longer than the queue"
        case .bufferOutOfRange(let a, let l): return "buffer 0x\(String(a, radix: 16)) + \(l) is outside guest RAM"
        case .chainTooLong: return "descriptor chain is longer than 4 GiB"
        case .readableAfterWritable: return "device-readable descriptor after a device-writable one"
        case .invalidIndirect(let s): return "invalid indirect descriptor: \(s)"
        case .memory(let s): return "ring access failed: \(s)"
        }
    }
}
