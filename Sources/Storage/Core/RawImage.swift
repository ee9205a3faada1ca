import Glibc

/// A raw (sparse) disk image: disk byte N is file byte N. Never probed: whatever the file holds is data.
public final class RawImage: BlockDevice {
    public let file: ImageFile
    public let size: UInt64
    public var isReadOnly: Bool { file.isReadOnly }

    /// Opens `path` as raw. Writers lock the file exclusively, readers take a shared lock.
    public init(path: String, readOnly: Bool, lock: ImageFile.LockMode? = nil) throws {
        file = try ImageFile.open(path: path, readOnly: readOnly, lock: lock ?? (readOnly ? .shared : .exclusive))
        size = try file.length()
    }

    /// Wraps an already open file.
    public init(file: ImageFile) throws {
        self.file = file
        size = try file.length()
    }

    /// Creates a sparse raw image of `size` bytes.
    public static func create(path: String, size: UInt64, overwrite: Bool = false) throws {
        let file = try ImageFile.create(path: path, overwrite: overwrite)
        try file.truncate(to: size)
        try file.sync()
    }

    public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try checkRange(offset, UInt64(buffer.count))
        unsafe try file.readZeroFilled(into: buffer, at: offset)
    }

    public func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {
        if isReadOnly { throw StorageError.readOnly(path: file.path) }
        try checkRange(offset, UInt64(buffer.count))
        unsafe try file.write(buffer, at: offset)
    }

    public func flush() throws { try file.sync() }

    public func discard(at offset: UInt64, length: UInt64) throws {
        if isReadOnly { throw StorageError.readOnly(path: file.path) }
        try checkRange(offset, length)
        _ = try file.punchHole(at: offset, length: length)
    }

    public func writeZeroes(at offset: UInt64, length: UInt64, unmap: Bool) throws {
        if isReadOnly { throw StorageError.readOnly(path: file.path) }
        try checkRange(offset, length)
        if unmap, try file.punchHole(at: offset, length: length) { return }
        if try file.zeroRange(at: offset, length: length) { return }
        try file.writeZeros(at: offset, length: length)
    }

    public func close() throws {
        if !isReadOnly { try file.sync() }
        file.unlock()
    }
}
