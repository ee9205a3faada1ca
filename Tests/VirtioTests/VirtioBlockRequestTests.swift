import Dispatch
import GuestMemory
import Storage
import Synchronization
import SystemExtras
import Testing
@testable import Virtio
@testable import VirtioBlock

/// Every virtio-blk request type through the PCI transport with a mock driver.
struct VirtioBlockRequestTests {
    let ok = VirtioBlockStatus.ok.rawValue
    let ioErr = VirtioBlockStatus.ioError.rawValue
    let unsupp = VirtioBlockStatus.unsupported.rawValue

    @Test func offersFeaturesAndConfigSpace() throws {
        let rig = try BlockTestRig(sectors: 3000)
        let offered = rig.harness.offeredFeatures()
        for f in [VirtioFeature.version1, VirtioBlockFeature.flush, VirtioBlockFeature.discard, VirtioBlockFeature.writeZeroes,
                  VirtioBlockFeature.blockSize, VirtioBlockFeature.segmentMax, VirtioBlockFeature.sizeMax, VirtioBlockFeature.topology] {
            #expect(offered & f == f)
        }
        #expect(offered & VirtioBlockFeature.readOnly == 0)
        #expect(rig.harness.read(0x2000, size: 8) == 3000)           // capacity
        #expect(rig.harness.read(0x2000 + 8, size: 4) == 1 << 20)    // size_max
        #expect(rig.harness.read(0x2000 + 12, size: 4) == 254)       // seg_max
        #expect(rig.harness.read(0x2000 + 20, size: 4) == 512)       // blk_size
        #expect(rig.harness.read(0x2000 + 24, size: 1) == 3)         // physical_block_exp
        #expect(rig.harness.read(0x2000 + 36, size: 4) == UInt64(UInt32.max >> 9))  // max_discard_sectors
        #expect(rig.harness.read(0x2000 + 40, size: 4) == 16)        // max_discard_seg
        #expect(rig.harness.read(0x2000 + 56, size: 1) == 1)         // write_zeroes_may_unmap
        #expect(rig.device.queueMaxSizes == [256])
    }

    @Test func readFillsEverySegmentFromTheDisk() throws {
        let rig = try BlockTestRig()
        let r = try rig.request(type: .read, sector: 3, data: [100, 412, 512, 1024], dataWritable: true)
        #expect(r.status == ok)
        #expect(r.used == 2048 + 1)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 2048) == rig.fileBytes(at: 3 * 512, count: 2048))
        #expect(rig.device.statistics.counts.bytesRead == 2048)
    }

    @Test func readOfTheLastSectorWorks() throws {
        let rig = try BlockTestRig(sectors: 64)
        let r = try rig.request(type: .read, sector: 63, data: [512], dataWritable: true)
        #expect(r.status == ok)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 512) == rig.fileBytes(at: 63 * 512, count: 512))
    }

    @Test func writeLandsInTheFileAndFlushCompletes() throws {
        let rig = try BlockTestRig()
        let payload = (0..<1536).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }
        try rig.memory.write(payload, at: BlockTestRig.dataAddress)
        let before = try rig.fileBytes()
        let w = try rig.request(type: .write, sector: 5, data: [3, 509, 1024])
        #expect(w.status == ok)
        #expect(w.used == 1)
        let f = try rig.request(type: .flush)
        #expect(f.status == ok)
        let after = try rig.fileBytes()
        #expect(Array(after[(5 * 512)..<(5 * 512 + 1536)]) == payload)
        #expect(Array(after[0..<(5 * 512)]) == Array(before[0..<(5 * 512)]))
        #expect(Array(after[(5 * 512 + 1536)...]) == Array(before[(5 * 512 + 1536)...]))
        #expect(rig.device.statistics.counts.flushes == 1)
        #expect(rig.device.statistics.counts.bytesWritten == 1536)
    }

    @Test func zeroLengthReadAndWriteAreAccepted() throws {
        let rig = try BlockTestRig()
        #expect(try rig.request(type: .read, sector: 1).status == ok)
        #expect(try rig.request(type: .write, sector: 1).status == ok)
    }

    @Test func getIDReturnsTheSerialPadded() throws {
        let rig = try BlockTestRig(serial: "disk-serial-1")
        try rig.memory.write([UInt8](repeating: 0xaa, count: 32), at: BlockTestRig.dataAddress)
        let r = try rig.request(type: .getID, data: [32], dataWritable: true)
        #expect(r.status == ok)
        #expect(r.used == 21)
        let id = try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 32)
        #expect(Array(id[0..<13]) == Array("disk-serial-1".utf8))
        #expect(id[13..<20].allSatisfy { $0 == 0 })
        #expect(id[20..<32].allSatisfy { $0 == 0xaa })  // nothing past 20 bytes
    }

    @Test func serialOfExactlyTwentyBytesHasNoTerminatorAndLongerIsCut() throws {
        let rig = try BlockTestRig(serial: "abcdefghijklmnopqrstuvwxyz")
        let r = try rig.request(type: .getID, data: [20], dataWritable: true)
        #expect(r.status == ok)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 20) == Array("abcdefghijklmnopqrst".utf8))
        #expect(VirtioBlock.defaultSerial(forPath: "/images/my disk\u{1}.qcow2") == "my disk_.qcow2")
        #expect(VirtioBlock.defaultSerial(forPath: "/a/very-long-image-file-name.raw") == "very-long-image-file")
    }

    @Test func writeZeroesZeroesTheRangesWithAndWithoutUnmap() throws {
        let rig = try BlockTestRig()
        try writeRanges(rig, [(10, 4, 0), (100, 9, 1)])
        let r = try rig.request(type: .writeZeroes, data: [32])
        #expect(r.status == ok)
        let file = try rig.fileBytes()
        #expect(file[(10 * 512)..<(14 * 512)].allSatisfy { $0 == 0 })
        #expect(file[(100 * 512)..<(109 * 512)].allSatisfy { $0 == 0 })
        #expect(file[9 * 512] == BlockTestRig.pattern(9 * 512))
        #expect(file[14 * 512] == BlockTestRig.pattern(14 * 512))
        #expect(file[109 * 512 + 5] == BlockTestRig.pattern(109 * 512 + 5))
        // Reads through the device see zeros as well.
        let read = try rig.request(type: .read, sector: 100, data: [512], dataWritable: true)
        #expect(read.status == ok)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 512).allSatisfy { $0 == 0 })
    }

    @Test func discardIsAccepted() throws {
        let rig = try BlockTestRig()
        try writeRanges(rig, [(16, 16, 0)])
        #expect(try rig.request(type: .discard, data: [16]).status == ok)
        #expect(rig.device.statistics.counts.discards == 1)
        #expect(try rig.servesAGoodRead())
    }

    @Test(arguments: [UInt32(2), 3, 5, 9, 10, 14, 15, 16, 26, 0xffff_ffff])
    func otherRequestTypesAreUnsupported(type: UInt32) throws {
        let rig = try BlockTestRig()
        let before = try rig.fileBytes()
        try rig.header(type: type, sector: 0)
        let r = try rig.submit([BlockTestRig.headerPiece(), BlockTestRig.Piece(address: BlockTestRig.dataAddress, length: 512, writable: true),
                                BlockTestRig.statusPiece])
        #expect(r.status == unsupp)
        #expect(try rig.fileBytes() == before)
        #expect(try rig.servesAGoodRead())
    }

    @Test func rangeCommandsNeedTheirFeature() throws {
        let rig = try BlockTestRig(features: VirtioFeature.version1 | VirtioBlockFeature.flush)
        let before = try rig.fileBytes()
        try writeRanges(rig, [(0, 8, 0)])
        #expect(try rig.request(type: .discard, data: [16]).status == unsupp)
        #expect(try rig.request(type: .writeZeroes, data: [16]).status == unsupp)
        #expect(try rig.fileBytes() == before)
    }

    @Test func flushWithoutTheFeatureStillFlushes() throws {
        let rig = try BlockTestRig(features: VirtioFeature.version1)
        #expect(try rig.request(type: .flush).status == ok)
        #expect(rig.device.statistics.counts.flushes == 1)
    }

    @Test func qcow2BackendReadsBackWhatWasWritten() throws {
        let rig = try BlockTestRig(sectors: 4096, format: .qcow2)
        let payload = (0..<4096).map { UInt8(truncatingIfNeeded: $0 ^ 0x5a) }
        try rig.memory.write(payload, at: BlockTestRig.dataAddress)
        #expect(try rig.request(type: .write, sector: 1000, data: [4096]).status == ok)
        #expect(try rig.request(type: .flush).status == ok)
        try rig.memory.zero(at: BlockTestRig.dataAddress, length: 8192)
        #expect(try rig.request(type: .read, sector: 1000, data: [4096], dataWritable: true).status == ok)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 4096) == payload)
        #expect(try rig.request(type: .read, sector: 0, data: [512], dataWritable: true).status == ok)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 512).allSatisfy { $0 == 0 })
        var check = [UInt8](repeating: 0, count: 4096)
        try check.withUnsafeMutableBytes { try rig.device.backend.read(at: 1000 * 512, into: $0) }
        #expect(check == payload)
    }

    @Test func interruptsFollowCompletions() throws {
        let rig = try BlockTestRig()
        let before = rig.harness.vectors.triggerCount
        #expect(try rig.servesAGoodRead())
        #expect(eventually { rig.harness.vectors.triggerCount > before })
        #expect(rig.harness.vectors.triggers.withLock { $0 }.allSatisfy { $0 == 1 })
    }

    /// Writes DISCARD/WRITE_ZEROES segments (sector, count, flags) at the data address.
    func writeRanges(_ rig: BlockTestRig, _ segments: [(UInt64, UInt32, UInt32)]) throws {
        var address = BlockTestRig.dataAddress
        for (sector, count, flags) in segments {
            try rig.memory.store(sector, at: address)
            try rig.memory.store(count, at: address + 8)
            try rig.memory.store(flags, at: address + 12)
            address += 16
        }
    }
}

/// FLUSH completes only after the backend's flush returned, and a slow backend never
/// holds up the thread that notifies (the vCPU in a VM).
struct VirtioBlockFlushOrderingTests {
    @Test func flushCompletesOnlyAfterTheBackendFlushReturns() throws {
        let disk = GatedDisk(size: 1 << 20)
        let rig = try BlockTestRig(backend: disk)
        try rig.header(type: VirtioBlockRequestType.flush.rawValue, sector: 0)
        try rig.memory.store(UInt8(0xee), at: BlockTestRig.statusAddress)
        try rig.driver.writeDescriptor(0, address: BlockTestRig.headerAddress, length: 16, flags: SplitQueue.flagNext, next: 1)
        try rig.driver.writeDescriptor(1, address: BlockTestRig.statusAddress, length: 1, flags: SplitQueue.flagWrite, next: 0)
        try rig.driver.publish(0)
        let start = monotonicSeconds()
        rig.harness.notify(0)
        let notifyTook = monotonicSeconds() - start
        #expect(eventually { disk.flushesStarted.load(ordering: .acquiring) == 1 })
        // A second notification while the flush is stuck returns at once too.
        let again = monotonicSeconds()
        rig.harness.notify(0)
        #expect(notifyTook < 0.05 && monotonicSeconds() - again < 0.05)
        usleepSeconds(0.2)
        #expect(try rig.driver.usedIndex() == 0, "FLUSH completed before the backend's flush returned")
        #expect(try rig.memory.load(UInt8.self, at: BlockTestRig.statusAddress) == 0xee)
        disk.release()
        #expect(try eventually { try rig.driver.usedIndex() == 1 })
        #expect(try rig.memory.load(UInt8.self, at: BlockTestRig.statusAddress) == VirtioBlockStatus.ok.rawValue)
    }
}

/// A disk whose flush waits until `release()` is called: on a semaphore (a futex wait), which
/// a device worker's seccomp filter allows, rather than in a sleep loop, which it does not (the
/// worker threads of this test process are confined once a KVM test has run, see `TestSeccomp`).
final class GatedDisk: BlockDevice, @unchecked Sendable {
    let size: UInt64
    let isReadOnly = false
    let flushesStarted = Atomic<Int>(0)
    private let gate = Atomic<Bool>(false)
    private let opened = DispatchSemaphore(value: 0)
    init(size: UInt64) { self.size = size }
    func release() {
        if !gate.exchange(true, ordering: .acquiringAndReleasing) { opened.signal() }
    }
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws { buffer.initializeMemory(as: UInt8.self, repeating: 0) }
    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws {}
    func flush() throws {
        flushesStarted.add(1, ordering: .acquiringAndReleasing)
        if gate.load(ordering: .acquiring) { return }
        opened.wait()
        opened.signal()  // for the next flush
    }
    func discard(at offset: UInt64, length: UInt64) throws {}
    func writeZeroes(at offset: UInt64, length: UInt64, unmap: Bool) throws {}
    func close() throws { release() }
}
