import Glibc

/// Reports progress of a long operation: bytes done, bytes in all.
public typealias ProgressHandler = (_ done: UInt64, _ total: UInt64) -> Void

/// qemu-img style whole-image operations: create, convert, clone, commit, rebase, resize.
public enum ImageOperations {
    static let copyChunk = 2 << 20

    /// Creates an empty image. For qcow2 with a backing file and no size, the backing file's size is used.
    public static func create(path: String, format: DiskFormat, size: UInt64?, options: QCOW2CreateOptions? = nil,
                              overwrite: Bool = false) throws {
        switch format {
        case .raw:
            guard let size else { throw StorageError.invalidArgument("raw images need a size") }
            try RawImage.create(path: path, size: size, overwrite: overwrite)
        case .qcow2:
            var opts = options ?? QCOW2CreateOptions(size: size ?? 0)
            if let size { opts.size = size }
            if size == nil {
                guard let backing = opts.backingFile, let backingFormat = opts.backingFormat else {
                    throw StorageError.invalidArgument("a size is needed unless a backing file gives it")
                }
                let resolved = DiskImage.resolveBackingPath(backing, relativeTo: path)
                let device = try DiskImage.open(path: resolved, format: backingFormat, readOnly: true)
                opts.size = device.size
                try device.close()
            }
            try QCOW2Image.create(path: path, options: opts, overwrite: overwrite)
        }
    }

    /// Creates a thin clone: a qcow2 overlay whose backing file is `base` (stored as an absolute path).
    public static func clone(base: String, baseFormat: DiskFormat, to path: String, clusterSize: UInt64 = 65536) throws {
        let absolute = try realPath(base)
        let device = try DiskImage.open(path: absolute, format: baseFormat, readOnly: true)
        let size = device.size
        try device.close()
        var options = QCOW2CreateOptions(size: size)
        options.backingFile = absolute
        options.backingFormat = baseFormat
        options.clusterSize = clusterSize
        try QCOW2Image.create(path: path, options: options)
    }

    /// The canonical absolute path of an existing file.
    public static func realPath(_ path: String) throws -> String {
        guard let resolved = unsafe realpath(path, nil) else { throw StorageError.fromErrno("resolve path", path: path) }
        defer { unsafe free(resolved) }
        return unsafe String(cString: resolved)
    }

    /// True if every byte is zero.
    package static func isZero(_ buffer: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let count = buffer.count
        var acc: UInt64 = 0
        while i + 64 <= count {
            for k in stride(from: 0, to: 64, by: 8) { unsafe acc |= buffer.loadUnaligned(fromByteOffset: i + k, as: UInt64.self) }
            if acc != 0 { return false }
            i += 64
        }
        while i < count {
            if unsafe buffer[i] != 0 { return false }
            i += 1
        }
        return true
    }

    /// Copies every byte of `source` into a new image at `destination`, leaving zero ranges sparse.
    public static func convert(source: any BlockDevice, to destination: String, format: DiskFormat,
                               options: QCOW2CreateOptions? = nil, overwrite: Bool = false,
                               progress: ProgressHandler? = nil) throws {
        let size = source.size
        try create(path: destination, format: format, size: size, options: options, overwrite: overwrite)
        let target = try DiskImage.open(path: destination, format: format, readOnly: false)
        try copy(from: source, to: target, progress: progress)
        try target.close()
    }

    /// Copies all non-zero data of `source` into `target` (same size or larger).
    static func copy(from source: any BlockDevice, to target: any BlockDevice, progress: ProgressHandler?) throws {
        let size = source.size
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: copyChunk, alignment: 4096)
        defer { unsafe buffer.deallocate() }
        var offset: UInt64 = 0
        while offset < size {
            let n = Int(min(UInt64(copyChunk), size - offset))
            let chunk = unsafe UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
            unsafe try source.read(at: offset, into: chunk)
            // Write only the non-zero 64 KiB pieces (runs of them in one request), so the destination stays sparse.
            var piece = 0
            var runStart = -1
            while piece <= n {
                let m = min(65536, n - piece)
                let zero = unsafe m == 0 || isZero(UnsafeRawBufferPointer(rebasing: buffer[piece..<(piece + m)]))
                if !zero && runStart < 0 { runStart = piece }
                if zero && runStart >= 0 {
                    unsafe try target.write(at: offset + UInt64(runStart), from: UnsafeRawBufferPointer(rebasing: buffer[runStart..<piece]))
                    runStart = -1
                }
                if m == 0 { break }
                piece += m
            }
            offset += UInt64(n)
            progress?(offset, size)
        }
        try target.flush()
    }

    /// Writes the overlay's own data into its backing file, then (unless `keepOverlay`) empties the overlay.
    public static func commit(path: String, keepOverlay: Bool = false, progress: ProgressHandler? = nil) throws {
        let probe = try ImageFile.open(path: path, readOnly: true, lock: .none)
        let header = try DiskImage.readHeader(probe)
        guard let name = header.backingFile else {
            throw StorageError.invalidArgument("\(path) has no backing file to commit into")
        }
        guard let formatName = header.backingFormat else {
            throw StorageError.invalidImage(path: path, reason: "backing file has no recorded format")
        }
        let backingPath = DiskImage.resolveBackingPath(name, relativeTo: path)
        let backing = try DiskImage.open(path: backingPath, format: try DiskFormat(name: formatName), readOnly: false)
        let overlayFile = try ImageFile.open(path: path, readOnly: false, lock: .exclusive)
        let overlay = try QCOW2Image(file: overlayFile, header: header, backing: backing, readOnly: false,
                                     cacheLimitBytes: DiskImage.defaultCacheBytes)
        let cs = overlay.clusterSize
        let size = min(overlay.size, backing.size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(cs), alignment: 4096)
        defer { unsafe buffer.deallocate() }
        var offset: UInt64 = 0
        while offset < size {
            let n = min(cs, size - offset)
            switch try overlay.status(at: offset) {
            case .unallocated:
                break
            case .zero:
                try backing.writeZeroes(at: offset, length: n, unmap: false)
            case .data:
                let chunk = unsafe UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(n)])
                unsafe try overlay.read(at: offset, into: chunk)
                unsafe try backing.write(at: offset, from: UnsafeRawBufferPointer(chunk))
            }
            offset += n
            progress?(offset, size)
        }
        try backing.flush()
        if !keepOverlay { try overlay.makeUnallocated(at: 0, length: overlay.size - overlay.size % cs) }
        try overlay.close()
    }

    /// Changes the backing file of a qcow2 image. Safe mode copies into the image every cluster whose
    /// content would change; `unsafe` only rewrites the header. A nil backing flattens the image.
    public static func rebase(path: String, newBacking: String?, newFormat: DiskFormat?, unsafe: Bool,
                              progress: ProgressHandler? = nil) throws {
        if newBacking != nil && newFormat == nil {
            throw StorageError.invalidArgument("a new backing file needs an explicit format (-F)")
        }
        if unsafe {
            let file = try ImageFile.open(path: path, readOnly: false, lock: .exclusive)
            let header = try DiskImage.readHeader(file)
            let image = try QCOW2Image(file: file, header: header, backing: nil, readOnly: false,
                                       cacheLimitBytes: DiskImage.defaultCacheBytes)
            try image.setBacking(file: newBacking, format: newFormat)
            try image.close()
            return
        }
        let image = try DiskImage.openQCOW2(path: path, readOnly: false)
        var newDevice: (any BlockDevice)?
        if let newBacking, let newFormat {
            newDevice = try DiskImage.open(path: DiskImage.resolveBackingPath(newBacking, relativeTo: path),
                                           format: newFormat, readOnly: true)
        }
        let cs = image.clusterSize
        let size = image.size
        let old = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(cs), alignment: 4096)
        let new = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(cs), alignment: 4096)
        defer {
            unsafe old.deallocate()
            unsafe new.deallocate()
        }
        var offset: UInt64 = 0
        while offset < size {
            let n = Int(min(cs, size - offset))
            if try image.status(at: offset) == .unallocated {
                let oldChunk = unsafe UnsafeMutableRawBufferPointer(rebasing: old[0..<n])
                let newChunk = unsafe UnsafeMutableRawBufferPointer(rebasing: new[0..<n])
                unsafe try image.read(at: offset, into: oldChunk)
                unsafe newChunk.initializeMemory(as: UInt8.self, repeating: 0)
                if let newDevice, offset < newDevice.size {
                    let m = Int(min(UInt64(n), newDevice.size - offset))
                    unsafe try newDevice.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: new[0..<m]))
                }
                if unsafe !oldChunk.elementsEqual(newChunk) {
                    unsafe try image.write(at: offset, from: UnsafeRawBufferPointer(oldChunk))
                }
            }
            offset += UInt64(n)
            progress?(offset, size)
        }
        try image.flush()
        try image.setBacking(file: newBacking, format: newFormat)
        try newDevice?.close()
        try image.close()
    }

    /// Changes the virtual size. qcow2 grows only; raw grows, or shrinks with `allowShrink`.
    public static func resize(path: String, format: DiskFormat, size: UInt64, allowShrink: Bool = false) throws {
        switch format {
        case .raw:
            let file = try ImageFile.open(path: path, readOnly: false, lock: .exclusive)
            if size < (try file.length()) && !allowShrink {
                throw StorageError.invalidArgument("shrinking loses data; pass --shrink to confirm")
            }
            try file.truncate(to: size)
            try file.sync()
        case .qcow2:
            let image = try DiskImage.openQCOW2(path: path, readOnly: false)
            try image.grow(to: size)
            try image.close()
        }
    }
}
