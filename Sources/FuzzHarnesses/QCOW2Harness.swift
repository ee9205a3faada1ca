#if canImport(Glibc)
import Glibc
#endif
import Storage

/// The qcow2 opener and its read, write and check paths (the scheme Cloud Hypervisor and crosvm
/// use): the input is a list of operations followed by an image file. The image is written to a
/// private directory on tmpfs that also holds `base.raw`, a 64 KiB raw backing file; an image
/// naming any other backing file is only parsed, never opened, so no input reaches host files.
///
/// Input: operation-stream length (le16), the operations, then the image bytes.
///
/// Checks: every call ends in success or a `StorageError`; on an image that checked clean, bytes
/// a successful write stored read back (until a later write, zeroing or discard of them fails or
/// changes them), bytes zeroed read as zeros, and a check after the operations and a flush finds
/// no corruption.
public enum QCOW2Harness {
    static let backingName = "base.raw"
    static let backingSize = 64 * 1024

    final class Directory {
        let path: String
        init() {
            let base = unsafe access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
            path = "\(base)/skiff-fuzz-qcow2-\(getpid())"
            unsafe mkdir(path, 0o700)
            let backing = (0..<QCOW2Harness.backingSize).map { UInt8(truncatingIfNeeded: $0 ^ ($0 >> 8)) }
            writeFile(path + "/" + QCOW2Harness.backingName, backing)
        }
        var image: String { path + "/image.qcow2" }
    }

    nonisolated(unsafe) static var directory: Directory?

    /// Removes the image, the backing file and their directory.
    static func removeDirectory() {
        guard let directory = unsafe directory else { return }
        unsafe unlink(directory.image)
        unsafe unlink(directory.path + "/" + backingName)
        unsafe rmdir(directory.path)
        unsafe Self.directory = nil
    }

    /// Writes `bytes` to `path` (replacing it).
    static func writeFile(_ path: String, _ bytes: [UInt8]) {
        let fd = unsafe open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = unsafe bytes.withUnsafeBytes { buffer in unsafe buffer.baseAddress.map { unsafe write(fd, $0 + done, bytes.count - done) } ?? 0 }
            if n <= 0 { return }
            done += n
        }
    }

    public static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        let directory = unsafe Self.directory ?? Directory()
        unsafe Self.directory = directory
        var header = FuzzInput(data)
        let opsLength = Int(header.u16())
        var ops = FuzzInput(header.bytes(opsLength))
        let imageBytes = header.rest()
        writeFile(directory.image, imageBytes)

        // Parse first: only images without a backing file, or naming base.raw, are opened.
        do {
            let file = try ImageFile.open(path: directory.image, readOnly: true, lock: .none)
            let parsed = try DiskImage.readHeader(file)
            if let backing = parsed.backingFile, backing != backingName { return }
        } catch is StorageError {
            return
        } catch {
            throw FuzzInvariantViolation("parsing threw \(type(of: error)): \(error)")
        }

        let flags = ops.u8()
        let readOnly = flags & 1 != 0
        let image: QCOW2Image
        do {
            image = try DiskImage.openQCOW2(path: directory.image, readOnly: readOnly, lock: false,
                                            cacheBytes: flags & 2 != 0 ? 4096 * (1 + ops.below(16)) : DiskImage.defaultCacheBytes)
        } catch is StorageError {
            return
        } catch {
            throw FuzzInvariantViolation("open threw \(type(of: error)): \(error)")
        }
        try exercise(image, ops: &ops, readOnly: readOnly)
    }

    /// What the image must hold: bytes a write stored, or nil where the content is not known.
    struct Model {
        var known: [UInt64: UInt8] = [:]

        mutating func set(_ offset: UInt64, _ bytes: [UInt8]) {
            for (i, b) in bytes.enumerated() { known[offset + UInt64(i)] = b }
        }

        mutating func forget(_ offset: UInt64, _ length: UInt64) {
            if length > UInt64(known.count) {
                known = known.filter { $0.key < offset || $0.key >= offset + length }
            } else {
                for i in 0..<length { known[offset + i] = nil }
            }
        }
    }

    static func exercise(_ image: QCOW2Image, ops: inout FuzzInput, readOnly: Bool) throws(FuzzInvariantViolation) {
        let size = image.size
        // Requests stay in the first 8 MiB, where the input's images put their clusters.
        let span = min(size, 8 << 20)
        var model = Model()
        // Only an image that checks clean promises read-after-write: a corrupt one may map two
        // guest clusters to one host cluster, so a write to one changes the other.
        let initiallyClean = (try? image.check(repairing: false)).map { $0.corruptions == 0 && $0.checkErrors == 0 } ?? false
        var steps = 0
        while !ops.isAtEnd && steps < 32 {
            steps += 1
            let offset = span == 0 ? 0 : UInt64(ops.u32()) % span
            let length = UInt64(min(UInt64(ops.u16() % 9000), size - offset))
            do {
                switch ops.u8() % 8 {
                case 0, 1:
                    let bytes = (0..<Int(length)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ steps) }
                    do {
                        unsafe try bytes.withUnsafeBytes { unsafe try image.write(at: offset, from: $0) }
                        model.set(offset, bytes)
                    } catch let error as StorageError {
                        model.forget(offset, length)
                        throw error
                    }
                case 2, 3:
                    var buffer = [UInt8](repeating: 0xee, count: Int(length))
                    unsafe try buffer.withUnsafeMutableBytes { unsafe try image.read(at: offset, into: $0) }
                    for (i, b) in buffer.enumerated() {
                        if initiallyClean, let expected = model.known[offset + UInt64(i)], expected != b {
                            throw FuzzInvariantViolation("byte \(offset + UInt64(i)) reads 0x\(String(b, radix: 16)), written 0x\(String(expected, radix: 16))")
                        }
                    }
                case 4:
                    let unmap = ops.bool()
                    do {
                        try image.writeZeroes(at: offset, length: length, unmap: unmap)
                        model.set(offset, [UInt8](repeating: 0, count: Int(length)))
                    } catch let error as StorageError {
                        model.forget(offset, length)
                        throw error
                    }
                case 5:
                    model.forget(offset, length)
                    try image.discard(at: offset, length: length)
                case 6:
                    try image.flush()
                default:
                    _ = try image.check(repairing: !readOnly && ops.u8() & 7 == 0)
                }
            } catch let violation as FuzzInvariantViolation {
                throw violation
            } catch is StorageError {
                continue
            } catch {
                throw FuzzInvariantViolation("threw \(type(of: error)): \(error)")
            }
        }
        if initiallyClean && !readOnly, (try? image.flush()) != nil, let result = try? image.check(repairing: false) {
            try require(result.corruptions == 0, "clean image has \(result.corruptions) corruptions after the operations: \(result.messages.prefix(3))")
        }
        try? image.close()
    }
}
