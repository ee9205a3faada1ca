/// A block device that records which 64 KiB blocks were written (or discarded, or zeroed)
/// since the last `takeDirtyBlocks()`: a disk copied while its VM runs sends those again.
public final class WriteTrackingBlockDevice: BlockDevice, @unchecked Sendable {
    // @unchecked: the bitmap is guarded by `lock`; `inner` is Sendable.
    public static let blockSize: UInt64 = 64 << 10

    /// The device written through.
    public let inner: any BlockDevice
    private let lock = PosixLock()
    private var bitmap: [UInt64]

    public init(_ inner: any BlockDevice) {
        self.inner = inner
        let blocks = (inner.size + Self.blockSize - 1) / Self.blockSize
        bitmap = [UInt64](repeating: 0, count: Int((blocks + 63) / 64))
    }

    public var size: UInt64 { inner.size }
    public var isReadOnly: Bool { inner.isReadOnly }

    /// The blocks written since the last call (one bit per `blockSize` bytes), cleared.
    public func takeDirtyBlocks() -> [UInt64] {
        lock.withLock {
            let taken = bitmap
            for i in bitmap.indices { bitmap[i] = 0 }
            return taken
        }
    }

    private func mark(_ offset: UInt64, _ length: UInt64) {
        guard length > 0, offset < size else { return }
        let first = offset / Self.blockSize
        let last = min(offset + length - 1, size - 1) / Self.blockSize
        lock.withLock {
            for block in first...last { bitmap[Int(block >> 6)] |= 1 << (block & 63) }
        }
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        unsafe try inner.read(at: offset, into: buffer)
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        // Marked before and after: a copy that reads the block in between sends it again.
        mark(offset, UInt64(buffer.count))
        unsafe try inner.write(at: offset, from: buffer)
        mark(offset, UInt64(buffer.count))
    }

    public func flush() throws { try inner.flush() }

    public func discard(at offset: UInt64, length: UInt64) throws {
        mark(offset, length)
        try inner.discard(at: offset, length: length)
        mark(offset, length)
    }

    public func writeZeroes(at offset: UInt64, length: UInt64, unmap: Bool) throws {
        mark(offset, length)
        try inner.writeZeroes(at: offset, length: length, unmap: unmap)
        mark(offset, length)
    }

    public func close() throws { try inner.close() }
}
