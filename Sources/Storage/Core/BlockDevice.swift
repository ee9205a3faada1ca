/// A virtual disk as virtio-blk sees it: synchronous, byte-addressed, thread-safe.
///
/// Calls may come from several threads at once. Offsets and lengths come from the guest and are checked
/// by every implementation; a request outside `size` throws `StorageError.outOfRange`.
public protocol BlockDevice: AnyObject, Sendable {
    /// Virtual size in bytes.
    var size: UInt64 { get }
    /// True when writes, discards and flushes that would change the image are refused.
    var isReadOnly: Bool { get }
    /// Reads `buffer.count` bytes at `offset` into `buffer`.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws
    /// Writes `buffer` at `offset`. The data is durable once a later `flush()` returns.
    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws
    /// Makes every completed write durable (fdatasync). A failure is sticky: later flushes fail too.
    func flush() throws
    /// Tells the device the range is no longer needed; later reads return zeros or the old data.
    func discard(at offset: UInt64, length: UInt64) throws
    /// Makes the range read as zeros; with `unmap` the space may be released.
    func writeZeroes(at offset: UInt64, length: UInt64, unmap: Bool) throws
    /// Flushes and releases the image (clears the qcow2 dirty bit). Further calls fail.
    func close() throws
}

/// The on-disk format of an image. Always given explicitly: a file is never probed when it is opened.
public enum DiskFormat: String, Sendable, CaseIterable, Codable {
    /// A plain sparse file: byte N of the disk is byte N of the file.
    case raw
    /// QEMU copy-on-write v2/v3.
    case qcow2

    /// Parses a format name as qemu-img spells it.
    public init(name: String) throws {
        guard let format = DiskFormat(rawValue: name.lowercased()) else {
            throw StorageError.invalidArgument("unknown image format '\(name)' (expected raw or qcow2)")
        }
        self = format
    }
}

extension BlockDevice {
    /// Throws `.outOfRange` unless `[offset, offset+length)` lies inside the disk.
    package func checkRange(_ offset: UInt64, _ length: UInt64) throws {
        let (end, overflow) = offset.addingReportingOverflow(length)
        if overflow || end > size {
            throw StorageError.outOfRange(offset: offset, length: length, size: size)
        }
    }
}
