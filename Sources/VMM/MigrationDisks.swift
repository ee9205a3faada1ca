#if canImport(Glibc)
import Glibc
#endif
import Migration
import Storage
import VirtioBlock

/// The disks a migration copies when the target has no shared storage: each disk's writes
/// are tracked from the start; the first round sends what the image itself holds (for an
/// overlay only its own clusters, the backing file being on the target already), later
/// rounds the blocks written meanwhile, the switch-over the last ones.
final class OutgoingDisks {
    struct Disk {
        let index: Int
        let device: VirtioBlock
        let tracker: WriteTrackingBlockDevice
        let descriptor: DiskDescriptor
    }
    let disks: [Disk]

    /// Wraps every disk of `virtio` in a write tracker (the VM may be running).
    init(_ virtio: VirtioDevices) throws(VMError) {
        var disks: [Disk] = []
        var index = 0
        for (transport, spec) in zip(virtio.transports, virtio.specs) {
            guard let device = transport.device as? VirtioBlock, case .block(_, let format, _, _) = spec else { continue }
            let inner = device.backend
            let tracker = WriteTrackingBlockDevice(inner)
            var backing: (String, String?)?
            if let q = inner as? QCOW2Image, let file = q.currentHeader.backingFile { backing = (file, q.currentHeader.backingFormat) }
            let descriptor = DiskDescriptor(index: index, size: inner.size, format: format.rawValue, backingFile: backing?.0, backingFormat: backing?.1 ?? nil)
            do {
                try device.adopt(tracker)
            } catch {
                for d in disks { try? d.device.adopt(d.tracker.inner) }
                throw VMError("cannot track writes to disk \(index): \(error)")
            }
            disks.append(Disk(index: index, device: device, tracker: tracker, descriptor: descriptor))
            index += 1
        }
        self.disks = disks
    }

    var descriptors: [DiskDescriptor] { disks.map(\.descriptor) }

    /// Puts the untracked disks back (the migration ended, either way).
    func detach() {
        for d in disks { try? d.device.adopt(d.tracker.inner) }
    }

    /// Sends everything each image holds itself; returns the bytes of disk data sent.
    func sendInitial(over connection: MigrationConnection, cancelled: () -> Bool) throws(MigrationError) -> UInt64 {
        var sent: UInt64 = 0
        for d in disks {
            _ = d.tracker.takeDirtyBlocks()
            let extents: [DiskExtent]
            do {
                extents = try (d.tracker.inner as? ExtentReporting)?.allocatedExtents() ?? [DiskExtent(offset: 0, length: d.tracker.size, zero: false)]
            } catch {
                throw .transport("cannot list the extents of disk \(d.index): \(error)")
            }
            for e in extents {
                var offset = e.offset
                while offset < e.offset + e.length {
                    guard !cancelled() else { throw .cancelled }
                    let length = min(UInt64(DiskChunk.maxBytes), e.offset + e.length - offset)
                    sent += try send(d, offset: offset, length: length, zero: e.zero, over: connection)
                    offset += length
                }
            }
        }
        return sent
    }

    /// Sends the blocks written since the last call; returns the bytes of disk data sent.
    func sendDirty(over connection: MigrationConnection, cancelled: () -> Bool) throws(MigrationError) -> UInt64 {
        var sent: UInt64 = 0
        for d in disks {
            let bitmap = d.tracker.takeDirtyBlocks()
            for (w, word) in bitmap.enumerated() where word != 0 {
                var bits = word
                while bits != 0 {
                    let block = UInt64(w * 64 + bits.trailingZeroBitCount)
                    bits &= bits - 1
                    guard !cancelled() else { throw .cancelled }
                    let offset = block * WriteTrackingBlockDevice.blockSize
                    guard offset < d.tracker.size else { continue }
                    sent += try send(d, offset: offset, length: min(WriteTrackingBlockDevice.blockSize, d.tracker.size - offset), zero: false, over: connection)
                }
            }
        }
        return sent
    }

    private func send(_ d: Disk, offset: UInt64, length: UInt64, zero: Bool, over connection: MigrationConnection) throws(MigrationError) -> UInt64 {
        var data: [UInt8]?
        if !zero {
            var buffer = [UInt8](repeating: 0, count: Int(length))
            do {
                unsafe try buffer.withUnsafeMutableBytes { unsafe try d.tracker.inner.read(at: offset, into: $0) }
            } catch {
                throw .transport("cannot read disk \(d.index) at \(offset): \(error)")
            }
            data = buffer.allSatisfy({ $0 == 0 }) ? nil : buffer
        }
        try connection.send(.disk, value: DiskChunk(disk: d.index, offset: offset, length: length, data: data))
        return UInt64(data?.count ?? 0)
    }
}

/// The disks a migration target creates and fills before the VM opens them.
package final class IncomingDisks {
    private var devices: [any BlockDevice] = []
    private var created: [String] = []
    private let sizes: [UInt64]

    /// Checks the source's description of the disks it will copy (one per disk path): each
    /// disk's index, a size that is a positive multiple of 512 up to 1 PiB, a known format.
    package static func check(_ descriptors: [DiskDescriptor], pathCount: Int) throws(VMError) -> [DiskFormat] {
        guard descriptors.count == pathCount else { throw VMError("the VM has \(descriptors.count) disks to copy and \(pathCount) disk paths") }
        var formats: [DiskFormat] = []
        for (i, d) in descriptors.enumerated() {
            guard d.index == i, d.size > 0, d.size % 512 == 0, d.size <= 1 << 50, let format = DiskFormat(rawValue: d.format) else {
                throw VMError("disk \(i) is described wrongly by the source")
            }
            formats.append(format)
        }
        return formats
    }

    /// Creates each disk at `paths[i]` (which must not exist) as the source describes it.
    init(_ descriptors: [DiskDescriptor], paths: [String]) throws(VMError) {
        sizes = descriptors.map(\.size)
        let formats = try Self.check(descriptors, pathCount: paths.count)
        for (i, ((d, path), format)) in zip(zip(descriptors, paths), formats).enumerated() {
            if unsafe access(path, F_OK) == 0 { throw VMError("the copied disk \(i) would overwrite \(path), which exists (give the disk a new path)") }
            do {
                switch format {
                case .raw:
                    try RawImage.create(path: path, size: d.size)
                case .qcow2:
                    var options = QCOW2CreateOptions(size: d.size)
                    if let backing = d.backingFile {
                        let resolved = DiskImage.resolveBackingPath(backing, relativeTo: path)
                        guard unsafe access(resolved, R_OK) == 0 else { throw VMError("this host lacks the backing file \(resolved) of disk \(i)") }
                        options.backingFile = backing
                        options.backingFormat = d.backingFormat.flatMap { DiskFormat(rawValue: $0) }
                    }
                    try QCOW2Image.create(path: path, options: options)
                }
                created.append(path)
                devices.append(try DiskImage.open(path: path, format: format, readOnly: false))
            } catch let e as VMError {
                abandon()
                throw e
            } catch {
                abandon()
                throw VMError("cannot create the copied disk \(path): \(error)")
            }
        }
    }

    /// Writes one chunk the source sent.
    func apply(_ chunk: DiskChunk) throws(VMError) {
        do {
            try chunk.validate(diskCount: devices.count, diskSizes: sizes)
        } catch {
            throw VMError(error.description)
        }
        do {
            if let data = chunk.data {
                unsafe try data.withUnsafeBytes { unsafe try devices[chunk.disk].write(at: chunk.offset, from: $0) }
            } else {
                try devices[chunk.disk].writeZeroes(at: chunk.offset, length: chunk.length, unmap: false)
            }
        } catch {
            throw VMError("cannot write the copied disk \(chunk.disk): \(error)")
        }
    }

    /// Flushes and closes the disks so the VM's devices can open them.
    func finish() throws(VMError) {
        do {
            for d in devices { try d.close() }
        } catch {
            throw VMError("cannot close the copied disks: \(error)")
        }
        devices = []
    }

    /// Removes what was created (the migration failed).
    func abandon() {
        for d in devices { try? d.close() }
        devices = []
        for p in created { unsafe unlink(p) }
        created = []
    }
}
