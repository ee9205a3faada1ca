import GuestMemory

/// One guest buffer of a descriptor chain (already checked to lie inside guest RAM).
public struct VirtioBuffer: Equatable, Sendable {
    public let address: UInt64
    public let length: UInt32
    public init(address: UInt64, length: UInt32) {
        self.address = address
        self.length = length
    }
}

/// A request popped from the available ring: its head index and its buffers, split into the
/// device-readable part followed by the device-writable part.
///
/// Every descriptor was read from guest memory exactly once, so later guest changes to the
/// table cannot alter what the device validated.
public struct DescriptorChain: Equatable, Sendable {
    /// Index of the head descriptor: what the device returns in the used ring.
    public let head: UInt16
    /// Buffers the device reads, in order.
    public let readable: [VirtioBuffer]
    /// Buffers the device writes, in order.
    public let writable: [VirtioBuffer]

    public init(head: UInt16, readable: [VirtioBuffer], writable: [VirtioBuffer]) {
        self.head = head
        self.readable = readable
        self.writable = writable
    }

    /// Total bytes the device may read.
    public var readableLength: UInt64 { readable.reduce(0) { $0 + UInt64($1.length) } }
    /// Total bytes the device may write.
    public var writableLength: UInt64 { writable.reduce(0) { $0 + UInt64($1.length) } }
}

/// Reads the device-readable part of a chain sequentially.
public struct ChainReader {
    private let memory: GuestMemory
    private let buffers: [VirtioBuffer]
    private var index = 0
    private var offset: UInt32 = 0

    public init(memory: GuestMemory, chain: DescriptorChain) {
        self.memory = memory
        self.buffers = chain.readable
    }

    /// Bytes left to read.
    public var remaining: UInt64 {
        guard index < buffers.count else { return 0 }
        var total = UInt64(buffers[index].length - offset)
        for b in buffers[(index + 1)...] { total += UInt64(b.length) }
        return total
    }

    /// Fills `out` completely; returns false (reading nothing further) if the chain is too short.
    public mutating func read(into out: UnsafeMutableRawBufferPointer) -> Bool {
        var done = 0
        while done < out.count {
            guard index < buffers.count else { return false }
            let b = buffers[index]
            let take = min(Int(b.length - offset), out.count - done)
            if take > 0 {
                do {
                    try memory.read(at: b.address + UInt64(offset), into: UnsafeMutableRawBufferPointer(rebasing: out[done..<(done + take)]))
                } catch {
                    return false
                }
                done += take
                offset += UInt32(take)
            }
            if offset == b.length {
                index += 1
                offset = 0
            }
        }
        return true
    }

    /// Reads a little-endian integer.
    public mutating func read<T: FixedWidthInteger>(_ type: T.Type) -> T? {
        var v = T.zero
        let ok = withUnsafeMutableBytes(of: &v) { read(into: $0) }
        return ok ? T(littleEndian: v) : nil
    }

    /// Skips `count` bytes; returns false if the chain is too short.
    public mutating func skip(_ count: UInt64) -> Bool {
        var left = count
        while left > 0 {
            guard index < buffers.count else { return false }
            let avail = UInt64(buffers[index].length - offset)
            let take = min(avail, left)
            offset += UInt32(take)
            left -= take
            if offset == buffers[index].length {
                index += 1
                offset = 0
            }
        }
        return true
    }

    /// Visits the next `count` bytes as guest (address, length) segments without copying.
    public mutating func segments(count: UInt64) -> [(address: UInt64, length: UInt32)]? {
        var result: [(UInt64, UInt32)] = []
        var left = count
        while left > 0 {
            guard index < buffers.count else { return nil }
            let b = buffers[index]
            let take = UInt32(min(UInt64(b.length - offset), left))
            if take > 0 { result.append((b.address + UInt64(offset), take)) }
            offset += take
            left -= UInt64(take)
            if offset == b.length {
                index += 1
                offset = 0
            }
        }
        return result
    }
}

/// Writes into the device-writable part of a chain sequentially.
public struct ChainWriter {
    private let memory: GuestMemory
    private let buffers: [VirtioBuffer]
    private var index = 0
    private var offset: UInt32 = 0
    /// Bytes written so far (what the device reports as the used length).
    public private(set) var written: UInt32 = 0

    public init(memory: GuestMemory, chain: DescriptorChain) {
        self.memory = memory
        self.buffers = chain.writable
    }

    /// Bytes of room left.
    public var remaining: UInt64 {
        guard index < buffers.count else { return 0 }
        var total = UInt64(buffers[index].length - offset)
        for b in buffers[(index + 1)...] { total += UInt64(b.length) }
        return total
    }

    /// Writes all of `bytes`; returns false (after writing what fits) if there is not enough room.
    @discardableResult
    public mutating func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            guard index < buffers.count else { return false }
            let b = buffers[index]
            let take = min(Int(b.length - offset), bytes.count - done)
            if take > 0 {
                do {
                    try memory.write(at: b.address + UInt64(offset), from: UnsafeRawBufferPointer(rebasing: bytes[done..<(done + take)]))
                } catch {
                    return false
                }
                done += take
                offset += UInt32(take)
                written += UInt32(take)
            }
            if offset == b.length {
                index += 1
                offset = 0
            }
        }
        return true
    }

    /// Writes a little-endian integer.
    @discardableResult
    public mutating func write<T: FixedWidthInteger>(_ value: T) -> Bool {
        var v = value.littleEndian
        return withUnsafeBytes(of: &v) { write($0) }
    }

    /// Takes the next `count` bytes as guest segments to fill directly (e.g. with pread), counting them as written.
    public mutating func segments(count: UInt64) -> [(address: UInt64, length: UInt32)]? {
        var result: [(UInt64, UInt32)] = []
        var left = count
        while left > 0 {
            guard index < buffers.count else { return nil }
            let b = buffers[index]
            let take = UInt32(min(UInt64(b.length - offset), left))
            if take > 0 { result.append((b.address + UInt64(offset), take)) }
            offset += take
            written += take
            left -= UInt64(take)
            if offset == b.length {
                index += 1
                offset = 0
            }
        }
        return result
    }
}
