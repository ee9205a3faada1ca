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

/// A position in a list of guest buffers, shared by `ChainReader` and `ChainWriter`.
struct BufferCursor {
    private let buffers: [VirtioBuffer]
    private var index = 0
    private var offset: UInt32 = 0

    init(_ buffers: [VirtioBuffer]) { self.buffers = buffers }

    /// Bytes after the position.
    var remaining: UInt64 {
        guard index < buffers.count else { return 0 }
        var total = UInt64(buffers[index].length - offset)
        for b in buffers[(index + 1)...] { total += UInt64(b.length) }
        return total
    }

    /// The next piece of at most `limit` bytes (possibly empty for zero-length buffers), or nil at the end.
    mutating func next(limit: UInt64) -> (address: UInt64, length: UInt32)? {
        guard index < buffers.count else { return nil }
        let b = buffers[index]
        let take = UInt32(min(UInt64(b.length - offset), limit))
        let piece = (b.address + UInt64(offset), take)
        offset += take
        if offset == b.length {
            index += 1
            offset = 0
        }
        return piece
    }

    /// The next `count` bytes as guest segments; nil if the buffers end first.
    mutating func segments(count: UInt64) -> [(address: UInt64, length: UInt32)]? {
        var result: [(address: UInt64, length: UInt32)] = []
        var left = count
        while left > 0 {
            guard let piece = next(limit: left) else { return nil }
            if piece.length > 0 { result.append(piece) }
            left -= UInt64(piece.length)
        }
        return result
    }
}

/// Reads the device-readable part of a chain sequentially.
public struct ChainReader {
    private let memory: GuestMemory
    private var cursor: BufferCursor

    public init(memory: GuestMemory, chain: DescriptorChain) {
        self.memory = memory
        cursor = BufferCursor(chain.readable)
    }

    /// Bytes left to read.
    public var remaining: UInt64 { cursor.remaining }

    /// Fills `out` completely; returns false (reading nothing further) if the chain is too short.
    public mutating func read(into out: UnsafeMutableRawBufferPointer) -> Bool {
        guard let pieces = cursor.segments(count: UInt64(out.count)) else { return false }
        var done = 0
        for p in pieces {
            do {
                try unsafe memory.read(at: p.address, into: UnsafeMutableRawBufferPointer(rebasing: out[done..<(done + Int(p.length))]))
            } catch {
                return false
            }
            done += Int(p.length)
        }
        return true
    }

    /// Reads a little-endian integer.
    public mutating func read<T: FixedWidthInteger>(_ type: T.Type) -> T? {
        var v = T.zero
        let ok = unsafe withUnsafeMutableBytes(of: &v) { unsafe read(into: $0) }
        return ok ? T(littleEndian: v) : nil
    }

    /// Skips `count` bytes; returns false if the chain is too short.
    public mutating func skip(_ count: UInt64) -> Bool {
        cursor.segments(count: count) != nil
    }

    /// Visits the next `count` bytes as guest (address, length) segments without copying.
    public mutating func segments(count: UInt64) -> [(address: UInt64, length: UInt32)]? {
        cursor.segments(count: count)
    }
}

/// Writes into the device-writable part of a chain sequentially.
public struct ChainWriter {
    private let memory: GuestMemory
    private var cursor: BufferCursor
    /// Bytes written so far (what the device reports as the used length).
    public private(set) var written: UInt32 = 0

    public init(memory: GuestMemory, chain: DescriptorChain) {
        self.memory = memory
        cursor = BufferCursor(chain.writable)
    }

    /// Bytes of room left.
    public var remaining: UInt64 { cursor.remaining }

    /// Writes all of `bytes`; returns false (after writing what fits) if there is not enough room.
    @discardableResult
    public mutating func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            guard let p = cursor.next(limit: UInt64(bytes.count - done)) else { return false }
            guard p.length > 0 else { continue }
            do {
                try unsafe memory.write(at: p.address, from: UnsafeRawBufferPointer(rebasing: bytes[done..<(done + Int(p.length))]))
            } catch {
                return false
            }
            done += Int(p.length)
            written += p.length
        }
        return true
    }

    /// Writes a little-endian integer.
    @discardableResult
    public mutating func write<T: FixedWidthInteger>(_ value: T) -> Bool {
        var v = value.littleEndian
        return unsafe withUnsafeBytes(of: &v) { unsafe write($0) }
    }

    /// Takes the next `count` bytes as guest segments to fill directly (e.g. with pread), counting them as written.
    public mutating func segments(count: UInt64) -> [(address: UInt64, length: UInt32)]? {
        guard let pieces = cursor.segments(count: count) else { return nil }
        for p in pieces { written += p.length }
        return pieces
    }
}
