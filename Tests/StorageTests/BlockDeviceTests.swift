import Foundation
import Testing
@testable import Storage

@Suite struct BlockDeviceTests {
    @Test func rawImageReadsWritesZeroesAndDiscards() throws {
        let dir = TempDir()
        let path = dir.file("disk.raw")
        try RawImage.create(path: path, size: 1 << 20)
        let disk = try DiskImage.open(path: path, format: .raw, readOnly: false)
        #expect(disk.size == 1 << 20)
        try disk.writeBytes([UInt8](repeating: 7, count: 10_000), at: 5000)
        #expect(try disk.readBytes(at: 4999, count: 3) == [0, 7, 7])
        try disk.writeZeroes(at: 6000, length: 100, unmap: false)
        #expect(try disk.readBytes(at: 5999, count: 3) == [7, 0, 0])
        try disk.discard(at: 0, length: 65536)
        try disk.flush()
        try disk.close()
        #expect(try fileBytes(path).count == 1 << 20)
    }

    @Test func requestsOutsideTheDiskAreRefused() throws {
        let dir = TempDir()
        try QCOW2Image.create(path: dir.file("a.qcow2"), options: QCOW2CreateOptions(size: 4096 * 3))
        try RawImage.create(path: dir.file("a.raw"), size: 4096)
        for (path, format) in [(dir.file("a.qcow2"), DiskFormat.qcow2), (dir.file("a.raw"), .raw)] {
            let disk = try DiskImage.open(path: path, format: format, readOnly: false)
            #expect(throws: StorageError.self) { try disk.readBytes(at: disk.size - 1, count: 2) }
            #expect(throws: StorageError.self) { try disk.writeBytes([1], at: UInt64.max) }
            #expect(throws: StorageError.self) { try disk.writeZeroes(at: UInt64.max - 1, length: 4, unmap: true) }
            #expect(throws: StorageError.self) { try disk.discard(at: 1, length: UInt64.max) }
            try disk.close()
        }
    }

    @Test func readOnlyDevicesRefuseChangesWithEROFS() throws {
        let dir = TempDir()
        try QCOW2Image.create(path: dir.file("a.qcow2"), options: QCOW2CreateOptions(size: 1 << 20))
        let before = try fileBytes(dir.file("a.qcow2"))
        let disk = try DiskImage.open(path: dir.file("a.qcow2"), format: .qcow2, readOnly: true)
        #expect(disk.isReadOnly)
        do {
            try disk.writeBytes([1], at: 0)
            Issue.record("write succeeded on a read-only disk")
        } catch let error as StorageError {
            #expect(error.errno == EROFS)
        }
        #expect(throws: StorageError.self) { try disk.writeZeroes(at: 0, length: 512, unmap: false) }
        try disk.close()
        #expect(try fileBytes(dir.file("a.qcow2")) == before)
    }

    @Test func secondWriterIsRefusedByTheLock() throws {
        let dir = TempDir()
        try QCOW2Image.create(path: dir.file("a.qcow2"), options: QCOW2CreateOptions(size: 1 << 20))
        let first = try DiskImage.open(path: dir.file("a.qcow2"), format: .qcow2, readOnly: false)
        do {
            _ = try DiskImage.open(path: dir.file("a.qcow2"), format: .qcow2, readOnly: false)
            Issue.record("second writer was allowed")
        } catch let error as StorageError {
            #expect(error == .locked(path: dir.file("a.qcow2")))
            #expect("\(error)".contains("in use by another process"))
        }
        try first.close()
        let second = try DiskImage.open(path: dir.file("a.qcow2"), format: .qcow2, readOnly: false)
        try second.close()
    }

    /// A file dropped without close() must not leave its lock behind while another reference to
    /// the same open file description lives on, as one does in a child another thread forked
    /// before its exec (the suite's processes made `RawImage.create` then `open` fail with
    /// "in use by another process"). A dup stands in for the child's copy of the descriptor.
    @Test func droppedFileReleasesItsLockWhileADuplicateLives() throws {
        let dir = TempDir()
        var duplicate: Int32 = -1
        do {
            let file = try ImageFile.create(path: dir.file("a.raw"))
            try file.truncate(to: 1 << 20)
            duplicate = dup(file.fd)
        }
        #expect(duplicate >= 0)
        defer { close(duplicate) }
        let disk = try DiskImage.open(path: dir.file("a.raw"), format: .raw, readOnly: false)
        try disk.close()
    }

    @Test(.enabled(if: QEMU.shouldRun)) func qemuRespectsSkiffsWriteLock() throws {
        let qemuImg = try QEMU.img()
        let dir = TempDir()
        try QCOW2Image.create(path: dir.file("a.qcow2"), options: QCOW2CreateOptions(size: 1 << 20))
        let disk = try DiskImage.open(path: dir.file("a.qcow2"), format: .qcow2, readOnly: false)
        let result = try run(qemuImg, ["info", dir.file("a.qcow2")])
        #expect(result.status != 0 && result.stderr.contains("lock"))
        try disk.close()
        #expect(try run(qemuImg, ["info", dir.file("a.qcow2")]).status == 0)
    }

    @Test func backingFormatIsNeverGuessed() throws {
        let dir = TempDir()
        try RawImage.create(path: dir.file("base.raw"), size: 1 << 20)
        var options = QCOW2CreateOptions(size: 1 << 20)
        options.backingFile = "base.raw"
        #expect(throws: StorageError.self) { try QCOW2Image.create(path: dir.file("a.qcow2"), options: options) }
    }

    @Test(arguments: [2, 3] as [UInt32])
    func zeroesAndDiscardsOverABackingFile(version: UInt32) throws {
        let dir = TempDir()
        try Data([UInt8](repeating: 0xEE, count: 1 << 20)).write(to: URL(fileURLWithPath: dir.file("base.raw")))
        var options = QCOW2CreateOptions(size: 1 << 20)
        options.version = version
        options.clusterSize = 4096
        options.backingFile = "base.raw"
        options.backingFormat = .raw
        try QCOW2Image.create(path: dir.file("a.qcow2"), options: options)
        let disk = try DiskImage.open(path: dir.file("a.qcow2"), format: .qcow2, readOnly: false)
        #expect(try disk.readBytes(at: 100, count: 2) == [0xEE, 0xEE])
        try disk.writeZeroes(at: 1000, length: 20_000, unmap: true)
        #expect(try disk.readBytes(at: 999, count: 20_002) == [0xEE] + [UInt8](repeating: 0, count: 20_000) + [0xEE])
        try disk.writeBytes([1, 2, 3], at: 8192)
        #expect(try disk.readBytes(at: 8191, count: 5) == [0, 1, 2, 3, 0])
        try disk.close()
        try QEMU.expectCleanCheck(dir.file("a.qcow2"))
    }

    @Test func concurrentReadersAndWritersSeeConsistentData() throws {
        let dir = TempDir()
        var options = QCOW2CreateOptions(size: 16 << 20)
        options.clusterSize = 4096
        try QCOW2Image.create(path: dir.file("a.qcow2"), options: options)
        let disk = try DiskImage.open(path: dir.file("a.qcow2"), format: .qcow2, readOnly: false)
        // Each thread owns a 1 MiB stripe: writes then reads back its own pattern.
        let failures = DataBox()
        DispatchQueue.concurrentPerform(iterations: 8) { stripe in
            let pattern = [UInt8](repeating: UInt8(stripe + 1), count: 4096)
            for block in 0..<64 {
                let offset = UInt64(stripe) << 20 + UInt64(block) * 8192 + 1000
                do {
                    try disk.writeBytes(pattern, at: offset)
                    if try disk.readBytes(at: offset, count: 4096) != pattern { failures.done.signal() }
                } catch {
                    failures.done.signal()
                }
            }
        }
        #expect(failures.done.wait(timeout: .now()) == .timedOut)
        try disk.close()
        try QEMU.expectCleanCheck(dir.file("a.qcow2"))
    }
}

@Suite struct FlushFailureTests {
    @Test func oneFailedFdatasyncFailsEveryLaterFlush() throws {
        let dir = TempDir()
        try QCOW2Image.create(path: dir.file("a.qcow2"), options: QCOW2CreateOptions(size: 1 << 20))
        let image = try DiskImage.openQCOW2(path: dir.file("a.qcow2"), readOnly: false)
        try image.writeBytes([1, 2, 3], at: 0)
        image.file.injectedSyncError.store(EIO, ordering: .releasing)
        #expect(throws: StorageError.self) { try image.flush() }
        // The kernel may have dropped the dirty pages: no later flush may claim success.
        do {
            try image.flush()
            Issue.record("flush succeeded after an earlier failure")
        } catch let error as StorageError {
            #expect(error == .flushFailed(path: dir.file("a.qcow2"), errno: EIO))
            #expect(error.errno == EIO)
        }
    }
}
