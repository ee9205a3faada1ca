#if canImport(Glibc)
import Glibc
#endif
import GuestMemory
@testable import Storage
import Synchronization
import Testing
@testable import Virtio
@testable import VirtioBlock

/// The bad-input list (reliability items 1–16, 18–20 as they apply to virtio-blk): each
/// malformed request gets the spec's status or DEVICE_NEEDS_RESET, the image is unchanged
/// where it must be, and the device serves the next well-formed request (after a reset
/// when it asked for one).
struct VirtioBlockBadInputTests {
    typealias Piece = BlockTestRig.Piece
    let ok = VirtioBlockStatus.ok.rawValue
    let ioErr = VirtioBlockStatus.ioError.rawValue
    let unsupp = VirtioBlockStatus.unsupported.rawValue
    static let needsReset = VirtioPCIDevice.statusNeedsReset

    // MARK: Items 14, 15: request fields

    @Test(arguments: [
        (UInt64(2048), UInt32(512)),          // sector == capacity
        (UInt64(5000), UInt32(512)),          // sector past capacity
        (UInt64(2047), UInt32(1024)),         // crosses the end
        (UInt64.max / 256, UInt32(512)),      // sector × 512 overflows
        (UInt64.max, UInt32(512)),            // sector + count overflows
        (UInt64(2048), UInt32(0)),            // zero length at the capacity
    ])
    func outOfRangeReadsAndWritesGetIOERRAndTouchNothing(sector: UInt64, length: UInt32) throws {
        let rig = try BlockTestRig()
        let before = try rig.fileBytes()
        try rig.memory.write([UInt8](repeating: 0x77, count: Int(max(length, 1))), at: BlockTestRig.dataAddress)
        let read = try rig.request(type: .read, sector: sector, data: length > 0 ? [length] : [], dataWritable: true)
        #expect(read.status == ioErr)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: Int(max(length, 1))).allSatisfy { $0 == 0x77 })
        let write = try rig.request(type: .write, sector: sector, data: length > 0 ? [length] : [])
        #expect(write.status == ioErr)
        #expect(try rig.fileBytes() == before)  // same length: nothing written past the end
        #expect(try rig.servesAGoodRead())
    }

    @Test(arguments: [UInt32(1), 100, 511, 513, 1000])
    func lengthsThatAreNotSectorMultiplesGetIOERR(length: UInt32) throws {
        let rig = try BlockTestRig()
        let before = try rig.fileBytes()
        #expect(try rig.request(type: .read, sector: 4, data: [length], dataWritable: true).status == ioErr)
        #expect(try rig.request(type: .write, sector: 4, data: [length]).status == ioErr)
        // Sector multiple in total but split oddly across segments is fine.
        #expect(try rig.request(type: .read, sector: 4, data: [length, 1024 - length], dataWritable: true).status == ok)
        #expect(try rig.fileBytes() == before)
    }

    @Test func requestsOverTheSizeLimitGetIOERR() throws {
        var c = VirtioBlockConfiguration()
        c.segmentsMax = 2
        c.segmentSizeMax = 4096
        let rig = try BlockTestRig(configuration: c)
        let before = try rig.fileBytes()
        #expect(try rig.request(type: .read, sector: 0, data: [8192], dataWritable: true).status == ok)
        #expect(try rig.request(type: .read, sector: 0, data: [8704], dataWritable: true).status == ioErr)
        #expect(try rig.request(type: .write, sector: 0, data: [8704]).status == ioErr)
        #expect(try rig.fileBytes() == before)
    }

    @Test func headerTooShortGetsIOERR() throws {
        let rig = try BlockTestRig()
        let before = try rig.fileBytes()
        try rig.header(type: VirtioBlockRequestType.write.rawValue, sector: 0)
        for length: UInt32 in [0, 1, 8, 15] {
            let r = try rig.submit([BlockTestRig.headerPiece(length), BlockTestRig.statusPiece])
            #expect(r.status == ioErr, "header of \(length) bytes")
            #expect(r.used == 1)
        }
        #expect(try rig.fileBytes() == before)
        #expect(try rig.servesAGoodRead())
    }

    @Test func headerSplitAcrossDescriptorsIsAccepted() throws {
        let rig = try BlockTestRig()
        try rig.header(type: VirtioBlockRequestType.read.rawValue, sector: 9)
        let r = try rig.submit([
            Piece(address: BlockTestRig.headerAddress, length: 5, writable: false),
            Piece(address: BlockTestRig.headerAddress + 5, length: 11, writable: false),
            Piece(address: BlockTestRig.dataAddress, length: 512, writable: true),
            BlockTestRig.statusPiece,
        ])
        #expect(r.status == ok)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 512) == rig.fileBytes(at: 9 * 512, count: 512))
    }

    @Test func statusSharingTheLastDataBufferIsHonoured() throws {
        let rig = try BlockTestRig()
        try rig.header(type: VirtioBlockRequestType.read.rawValue, sector: 2)
        // One writable buffer of 513 bytes: 512 data bytes, then the status byte.
        let r = try rig.submit([BlockTestRig.headerPiece(), Piece(address: BlockTestRig.dataAddress, length: 513, writable: true)])
        #expect(r.used == 513)
        #expect(try rig.memory.load(UInt8.self, at: BlockTestRig.dataAddress + 512) == ok)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 512) == rig.fileBytes(at: 2 * 512, count: 512))
    }

    @Test func missingStatusByteCompletesUntouchedAndServingContinues() throws {
        let rig = try BlockTestRig()
        let before = try rig.fileBytes()
        try rig.header(type: VirtioBlockRequestType.write.rawValue, sector: 0)
        try rig.memory.write([UInt8](repeating: 0x55, count: 512), at: BlockTestRig.dataAddress)
        // Header and data, nothing writable: no status can be reported, nothing is written.
        let r = try rig.submit([BlockTestRig.headerPiece(), Piece(address: BlockTestRig.dataAddress, length: 512, writable: false)])
        #expect(r.used == 0)
        #expect(r.status == 0xee)
        // A zero-length writable "status" is not a status byte either.
        let z = try rig.submit([BlockTestRig.headerPiece(), Piece(address: BlockTestRig.statusAddress, length: 0, writable: true)])
        #expect(z.used == 0)
        // A chain of one empty descriptor.
        #expect(try rig.submit([Piece(address: BlockTestRig.dataAddress, length: 0, writable: false)]).used == 0)
        #expect(rig.device.statistics.counts.malformed == 3)
        #expect(try rig.fileBytes() == before)
        #expect(try rig.servesAGoodRead())
    }

    @Test func dataBuffersOfTheWrongDirectionGetIOERR() throws {
        let rig = try BlockTestRig()
        let before = try rig.fileBytes()
        // A read whose data the device would have to read (readable), and a write whose data is writable.
        #expect(try rig.request(type: .read, sector: 1, data: [512], dataWritable: false).status == ioErr)
        try rig.memory.write([UInt8](repeating: 0x33, count: 512), at: BlockTestRig.dataAddress)
        #expect(try rig.request(type: .write, sector: 1, data: [512], dataWritable: true).status == ioErr)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 512).allSatisfy { $0 == 0x33 })
        // GET_ID with a readable buffer; DISCARD with writable segments.
        #expect(try rig.request(type: .getID, data: [20], dataWritable: false).status == ioErr)
        #expect(try rig.request(type: .discard, data: [16], dataWritable: true).status == ioErr)
        #expect(try rig.fileBytes() == before)
        #expect(try rig.servesAGoodRead())
    }

    @Test(arguments: [UInt32(0), 1, 19])
    func getIDWithLessThanTwentyBytesGetsIOERR(length: UInt32) throws {
        let rig = try BlockTestRig()
        try rig.memory.write([UInt8](repeating: 0xcc, count: 32), at: BlockTestRig.dataAddress)
        let r = try rig.request(type: .getID, data: length > 0 ? [length] : [], dataWritable: true)
        #expect(r.status == ioErr)
        #expect(r.used == 1)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 32).allSatisfy { $0 == 0xcc })
        #expect(try rig.servesAGoodRead())
    }

    @Test func badRangeSegmentsAndFlagsGetTheSpecStatus() throws {
        let rig = try BlockTestRig()
        let before = try rig.fileBytes()
        func ranges(_ type: VirtioBlockRequestType, _ segments: [(UInt64, UInt32, UInt32)], length: UInt32? = nil) throws -> UInt8 {
            var address = BlockTestRig.dataAddress
            for (sector, count, flags) in segments {
                try rig.memory.store(sector, at: address)
                try rig.memory.store(count, at: address + 8)
                try rig.memory.store(flags, at: address + 12)
                address += 16
            }
            return try rig.request(type: type, data: [length ?? UInt32(16 * segments.count)]).status
        }
        // Unknown flags: UNSUPP (and unmap is not a discard flag).
        #expect(try ranges(.writeZeroes, [(0, 8, 2)]) == unsupp)
        #expect(try ranges(.writeZeroes, [(0, 8, 0x8000_0000)]) == unsupp)
        #expect(try ranges(.discard, [(0, 8, 1)]) == unsupp)
        // A good first segment does not run when a later one has a bad flag or range.
        #expect(try ranges(.writeZeroes, [(0, 8, 0), (16, 8, 4)]) == unsupp)
        #expect(try ranges(.writeZeroes, [(0, 8, 0), (2040, 16, 0)]) == ioErr)
        // Ranges outside the disk, overflowing, or over max_write_zeroes_sectors.
        #expect(try ranges(.writeZeroes, [(2048, 1, 0)]) == ioErr)
        #expect(try ranges(.discard, [(UInt64.max, 2, 0)]) == ioErr)
        #expect(try ranges(.discard, [(UInt64.max / 512, 1, 0)]) == ioErr)
        #expect(try ranges(.writeZeroes, [(0, UInt32.max, 0)]) == ioErr)
        // Segment lists that are empty, not a multiple of 16 bytes, or longer than max_*_seg.
        #expect(try rig.request(type: .writeZeroes).status == ioErr)
        #expect(try ranges(.writeZeroes, [(0, 8, 0)], length: 20) == ioErr)
        #expect(try ranges(.discard, [(0, 8, 0)], length: 8) == ioErr)
        #expect(try ranges(.discard, Array(repeating: (0, 1, 0), count: 17)) == unsupp)
        #expect(try rig.fileBytes() == before)
        #expect(try rig.servesAGoodRead())
    }

    // MARK: Item 16: read-only disks

    @Test func readOnlyDiskRefusesEveryChangeAndStaysByteIdentical() throws {
        let rig = try BlockTestRig(readOnly: true)
        #expect(rig.harness.offeredFeatures() & VirtioBlockFeature.readOnly != 0)
        let before = try rig.fileBytes()
        try rig.memory.write([UInt8](repeating: 0x99, count: 4096), at: BlockTestRig.dataAddress)
        #expect(try rig.request(type: .write, sector: 0, data: [4096]).status == ioErr)
        for (sector, flags, type) in [(UInt64(0), UInt32(0), VirtioBlockRequestType.discard), (0, 0, .writeZeroes), (8, 1, .writeZeroes)] {
            try rig.memory.store(sector, at: BlockTestRig.dataAddress)
            try rig.memory.store(UInt32(8), at: BlockTestRig.dataAddress + 8)
            try rig.memory.store(flags, at: BlockTestRig.dataAddress + 12)
            #expect(try rig.request(type: type, data: [16]).status == ioErr)
        }
        #expect(try rig.request(type: .flush).status == ok)
        #expect(try rig.servesAGoodRead())
        #expect(try rig.fileBytes() == before)
        #expect(rig.device.statistics.counts.bytesWritten == 0)
    }

    // MARK: Item 17: a qcow2 header written into a raw disk

    @Test func qcow2HeaderWrittenIntoARawDiskLeavesItRaw() throws {
        let rig = try BlockTestRig()
        // "QFI\xfb", version 3, backing file offset 512 naming a host file.
        var header = [UInt8](repeating: 0, count: 1024)
        header.replaceSubrange(0..<8, with: [0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3])
        header.replaceSubrange(8..<16, with: [0, 0, 0, 0, 0, 0, 2, 0])
        header.replaceSubrange(16..<20, with: [0, 0, 0, 11])
        header.replaceSubrange(512..<523, with: Array("/etc/passwd".utf8))
        try rig.memory.write(header, at: BlockTestRig.dataAddress)
        #expect(try rig.request(type: .write, sector: 0, data: [1024]).status == ok)
        #expect(try rig.request(type: .flush).status == ok)
        try rig.device.close()
        // Opened again the way the VMM opens it (format given, never probed): still raw.
        let again = try DiskImage.open(path: rig.path, format: .raw, readOnly: true)
        defer { try? again.close() }
        #expect(again.size == 2048 * 512)
        var sector = [UInt8](repeating: 0, count: 1024)
        try sector.withUnsafeMutableBytes { try again.read(at: 0, into: $0) }
        #expect(sector == header)
    }

    // MARK: Backend failures

    @Test func backendErrorsBecomeIOERRAndFlushFailureIsSticky() throws {
        let rig = try BlockTestRig()
        let raw = try #require(rig.device.backend as? RawImage)
        try rig.memory.write([UInt8](repeating: 0x42, count: 512), at: BlockTestRig.dataAddress)
        #expect(try rig.request(type: .write, sector: 3, data: [512]).status == ok)
        raw.file.injectedSyncError.store(EIO, ordering: .releasing)
        #expect(try rig.request(type: .flush).status == ioErr)
        // The kernel may have dropped the dirty pages: every later flush fails too.
        #expect(try rig.request(type: .flush).status == ioErr)
        #expect(try rig.request(type: .flush).status == ioErr)
        #expect(rig.device.statistics.counts.flushes == 0)
        #expect(try rig.servesAGoodRead())
    }

    @Test func failingReadsAndWritesGetIOERR() throws {
        let disk = FailingDisk(size: 1 << 20)
        let rig = try BlockTestRig(backend: disk)
        disk.failing.store(true, ordering: .relaxed)
        let r = try rig.request(type: .read, sector: 0, data: [512, 512], dataWritable: true)
        #expect(r.status == ioErr)
        #expect(r.used == 1)
        #expect(try rig.request(type: .write, sector: 0, data: [512]).status == ioErr)
        #expect(try rig.request(type: .flush).status == ioErr)
        try rig.memory.store(UInt64(0), at: BlockTestRig.dataAddress)
        try rig.memory.store(UInt32(1), at: BlockTestRig.dataAddress + 8)
        try rig.memory.store(UInt32(0), at: BlockTestRig.dataAddress + 12)
        #expect(try rig.request(type: .discard, data: [16]).status == ioErr)
        #expect(try rig.request(type: .writeZeroes, data: [16]).status == ioErr)
        disk.failing.store(false, ordering: .relaxed)
        #expect(try rig.request(type: .read, sector: 0, data: [512], dataWritable: true).status == ok)
    }

    // MARK: Items 1–7, 18, 20: broken chains mark the device NEEDS_RESET

    enum Malformation: String, CaseIterable {
        case loop, selfLoop, headOutOfRange, headFFFF, nextOutOfRange, availJump
        case pastRAM, wrapsAddressSpace, insideOwnBAR, hugeDescriptor
        case readableAfterWritable, chainOver4GiB
        case indirectEmpty, indirectNotMultipleOf16, indirectTooLarge, indirectNested, indirectWithNext, indirectLoop
    }

    @Test(arguments: Malformation.allCases)
    func brokenChainsNeedResetAndTheDeviceRecovers(_ kind: Malformation) throws {
        // INDIRECT_DESC negotiated, so each indirect case fails for its own reason.
        let rig = try BlockTestRig(features: BlockTestRig.features | VirtioFeature.indirectDescriptors)
        let before = try rig.fileBytes()
        let d = rig.driver
        let hdr = BlockTestRig.headerAddress, data = BlockTestRig.dataAddress, status = BlockTestRig.statusAddress
        let table = BlockTestRig.extraAddress
        let next = SplitQueue.flagNext, write = SplitQueue.flagWrite, indirect = SplitQueue.flagIndirect
        try rig.header(type: VirtioBlockRequestType.write.rawValue, sector: 0)
        var head: UInt16 = 0
        switch kind {
        case .loop:
            try d.writeDescriptor(0, address: hdr, length: 16, flags: next, next: 1)
            try d.writeDescriptor(1, address: data, length: 512, flags: next, next: 0)
        case .selfLoop:
            try d.writeDescriptor(0, address: hdr, length: 16, flags: next, next: 0)
        case .headOutOfRange:
            head = d.size
        case .headFFFF:
            head = 0xffff
        case .nextOutOfRange:
            try d.writeDescriptor(0, address: hdr, length: 16, flags: next, next: 0xffff)
        case .availJump:
            try d.writeDescriptor(0, address: hdr, length: 16, flags: 0, next: 0)
            try d.setAvailIndex(0x8000)
        case .pastRAM:
            try d.writeDescriptor(0, address: hdr, length: 16, flags: next, next: 1)
            try d.writeDescriptor(1, address: BlockTestRig.ramSize - 511, length: 512, flags: next, next: 2)
            try d.writeDescriptor(2, address: status, length: 1, flags: write, next: 0)
        case .wrapsAddressSpace:
            try d.writeDescriptor(0, address: hdr, length: 16, flags: next, next: 1)
            try d.writeDescriptor(1, address: UInt64.max - 255, length: 512, flags: write, next: 0)
        case .insideOwnBAR:
            // DMA at the device's own registers: not RAM, so never touched (CVE-2021-20255 class).
            try d.writeDescriptor(0, address: hdr, length: 16, flags: next, next: 1)
            try d.writeDescriptor(1, address: 0xc000_0000, length: 512, flags: next, next: 2)
            try d.writeDescriptor(2, address: status, length: 1, flags: write, next: 0)
        case .hugeDescriptor:
            try d.writeDescriptor(0, address: hdr, length: 16, flags: next, next: 1)
            try d.writeDescriptor(1, address: data, length: UInt32.max, flags: write, next: 0)
        case .readableAfterWritable:
            try d.writeDescriptor(0, address: hdr, length: 16, flags: next, next: 1)
            try d.writeDescriptor(1, address: status, length: 1, flags: write | next, next: 2)
            try d.writeDescriptor(2, address: data, length: 512, flags: 0, next: 0)
        case .chainOver4GiB:
            // A well-formed read request whose data buffers add up to 4 GiB: the header, 1024
            // indirect entries each covering all 4 MiB of RAM, and the status byte.
            try rig.header(type: VirtioBlockRequestType.read.rawValue, sector: 0)
            try d.writeDescriptor(table: table, 0, address: hdr, length: 16, flags: next, next: 1)
            for i in 1...1024 {
                try d.writeDescriptor(table: table, UInt16(i), address: 0, length: UInt32(BlockTestRig.ramSize), flags: write | next, next: UInt16(i + 1))
            }
            try d.writeDescriptor(table: table, 1025, address: status, length: 1, flags: write, next: 0)
            try d.writeDescriptor(0, address: table, length: 16 * 1026, flags: indirect, next: 0)
        case .indirectEmpty:
            try d.writeDescriptor(0, address: table, length: 0, flags: indirect, next: 0)
        case .indirectNotMultipleOf16:
            try d.writeDescriptor(table: table, 0, address: hdr, length: 16, flags: 0, next: 0)
            try d.writeDescriptor(0, address: table, length: 24, flags: indirect, next: 0)
        case .indirectTooLarge:
            try d.writeDescriptor(0, address: table, length: 16 * 65536, flags: indirect, next: 0)
        case .indirectNested:
            try d.writeDescriptor(table: table, 0, address: table + 0x1000, length: 32, flags: indirect, next: 0)
            try d.writeDescriptor(0, address: table, length: 16, flags: indirect, next: 0)
        case .indirectWithNext:
            try d.writeDescriptor(table: table, 0, address: hdr, length: 16, flags: 0, next: 0)
            try d.writeDescriptor(0, address: table, length: 16, flags: indirect | next, next: 1)
            try d.writeDescriptor(1, address: status, length: 1, flags: write, next: 0)
        case .indirectLoop:
            try d.writeDescriptor(table: table, 0, address: hdr, length: 16, flags: next, next: 1)
            try d.writeDescriptor(table: table, 1, address: data, length: 512, flags: next, next: 0)
            try d.writeDescriptor(0, address: table, length: 32, flags: indirect, next: 0)
        }
        if kind != .availJump { try rig.driver.publish(head) }
        if kind == .chainOver4GiB {
            // The reason, from a copy of the queue over the same rings.
            var copy = rig.driver.queue(indirect: true)
            #expect(throws: VirtqueueError.chainTooLong) { _ = try copy.pop(memory: rig.memory) }
        }
        rig.harness.notify(0)
        #expect(eventually { rig.harness.status & Self.needsReset != 0 }, "\(kind): status 0x\(String(rig.harness.status, radix: 16))")
        #expect(try rig.driver.usedIndex() == 0)
        #expect(rig.device.statistics.counts.requests == 0)
        // A broken device ignores further notifications until it is reset.
        rig.harness.notify(0)
        try rig.start()
        #expect(try rig.servesAGoodRead(), "\(kind)")
        #expect(try rig.fileBytes() == before)
    }

    @Test func indirectChainsWorkWhenNegotiatedAndAreRefusedOtherwise() throws {
        let rig = try BlockTestRig(features: BlockTestRig.features | VirtioFeature.indirectDescriptors)
        let table = BlockTestRig.extraAddress
        let d = rig.driver
        try rig.header(type: VirtioBlockRequestType.read.rawValue, sector: 11)
        try d.writeDescriptor(table: table, 0, address: BlockTestRig.headerAddress, length: 16, flags: SplitQueue.flagNext, next: 1)
        try d.writeDescriptor(table: table, 1, address: BlockTestRig.dataAddress, length: 512, flags: SplitQueue.flagWrite | SplitQueue.flagNext, next: 2)
        try d.writeDescriptor(table: table, 2, address: BlockTestRig.statusAddress, length: 1, flags: SplitQueue.flagWrite, next: 0)
        try d.writeDescriptor(0, address: table, length: 48, flags: SplitQueue.flagIndirect, next: 0)
        try rig.driver.publish(0)
        rig.harness.notify(0)
        #expect(try eventually { try rig.driver.usedIndex() == 1 })
        #expect(try rig.memory.load(UInt8.self, at: BlockTestRig.statusAddress) == ok)
        #expect(try rig.memory.readBytes(at: BlockTestRig.dataAddress, count: 512) == rig.fileBytes(at: 11 * 512, count: 512))

        try rig.start(features: BlockTestRig.features)  // without INDIRECT_DESC
        try d.writeDescriptor(0, address: table, length: 48, flags: SplitQueue.flagIndirect, next: 0)
        try rig.driver.publish(0)
        rig.harness.notify(0)
        #expect(eventually { rig.harness.status & Self.needsReset != 0 })
    }

    @Test func bufferEndingExactlyAtTheEndOfRAMIsAccepted() throws {
        let rig = try BlockTestRig()
        let end = BlockTestRig.ramSize
        try rig.header(type: VirtioBlockRequestType.read.rawValue, sector: 0)
        let r = try rig.submit([BlockTestRig.headerPiece(), Piece(address: end - 513, length: 513, writable: true)])
        #expect(r.used == 513)
        #expect(try rig.memory.load(UInt8.self, at: end - 1) == ok)
        #expect(try rig.memory.readBytes(at: end - 513, count: 512) == rig.fileBytes(at: 0, count: 512))
    }

    // MARK: Items 8–11, 19: registers

    @Test func queueSetupOutsideTheRulesIsRefusedWithoutACrash() throws {
        let rig = try BlockTestRig()
        let h = rig.harness
        for (size, ring) in [(UInt64(0), UInt64(0x10000)), (3, 0x10000), (512, 0x10000), (16, BlockTestRig.ramSize - 8), (16, 0xffff_ffff_ffff_fff0)] {
            h.setStatus(0)
            #expect(h.negotiate(features: BlockTestRig.features))
            h.write(0x16, 0, size: 2)
            h.write(0x18, size, size: 2)
            h.write(0x20, ring, size: 8)
            h.write(0x28, 0x14000, size: 8)
            h.write(0x30, 0x18000, size: 8)
            h.write(0x1c, 1, size: 2)
            h.setStatus(1 | 2 | 8 | 4)
            #expect(h.read(0x1c, size: 2) == 0 || h.status & Self.needsReset != 0, "size \(size) ring \(ring)")
        }
        try rig.start()
        #expect(try rig.servesAGoodRead())
    }

    @Test func queueRegistersAreFrozenWhileRunning() throws {
        let rig = try BlockTestRig()
        let h = rig.harness
        h.write(0x18, 2, size: 2)
        h.write(0x20, 0xdead_0000, size: 8)
        h.write(0x30, 0, size: 8)
        h.write(0x16, 5, size: 2)
        h.notify(9)
        h.write(0x1a, 400, size: 2)
        #expect(try rig.servesAGoodRead())
        h.write(0x16, 0, size: 2)
        #expect(h.read(0x18, size: 2) == 16)
        #expect(h.read(0x20, size: 8) == rig.driver.desc)
    }

    @Test func configSpaceReadsAndWritesAtAnyOffsetAndSize() throws {
        let rig = try BlockTestRig(sectors: 0x1234)
        let h = rig.harness
        for offset in UInt64(0)..<80 {
            for size in [1, 2, 3, 4, 8] {
                let v = h.read(0x2000 + offset, size: size)
                if offset >= 60 { #expect(v == 0, "offset \(offset) size \(size)") }
                h.write(0x2000 + offset, 0xffff_ffff_ffff_ffff, size: size)
            }
        }
        // Far past the structure, and at the end of the region.
        #expect(h.read(0x2fff, size: 1) == 0)
        #expect(h.read(0x2ffc, size: 8) == 0)
        #expect(h.read(0x2000, size: 8) == 0x1234)
        #expect(try rig.servesAGoodRead())
    }

    @Test func randomRegisterWritesNeverCrashTheDevice() throws {
        let rig = try BlockTestRig()
        var rng = Xorshift(seed: 0x5eed_b10c)
        for _ in 0..<20_000 {
            let offset = rng.next() % 0x10000
            let size = [1, 2, 4, 8][Int(rng.next() % 4)]
            if rng.next() % 2 == 0 {
                rig.harness.write(offset, rng.next(), size: size)
            } else {
                _ = rig.harness.read(offset, size: size)
            }
        }
        for offset in stride(from: 0, to: 256, by: 1) { rig.harness.transport.configWrite(offset: offset, size: 1, value: UInt32(rng.next() & 0xff)) }
        try rig.start()
        #expect(try rig.servesAGoodRead())
    }

    // MARK: Item 12: a flood whose completions are never consumed

    @Test func floodOfRequestsStaysBounded() throws {
        let rig = try BlockTestRig()
        try rig.header(type: VirtioBlockRequestType.read.rawValue, sector: 1)
        try rig.driver.writeDescriptor(0, address: BlockTestRig.headerAddress, length: 16, flags: SplitQueue.flagNext, next: 1)
        try rig.driver.writeDescriptor(1, address: BlockTestRig.dataAddress, length: 4096, flags: SplitQueue.flagWrite | SplitQueue.flagNext, next: 2)
        try rig.driver.writeDescriptor(2, address: BlockTestRig.statusAddress, length: 1, flags: SplitQueue.flagWrite, next: 0)
        // The driver never reads the used ring: the device keeps overwriting its slots.
        for round in 0..<200 {
            for _ in 0..<rig.driver.size { try rig.driver.publish(0) }
            rig.harness.notify(0)
            let expected = UInt16(truncatingIfNeeded: (round + 1) * Int(rig.driver.size))
            #expect(try eventually { try rig.driver.usedIndex() == expected })
        }
        #expect(rig.device.statistics.counts.requests == 200 * UInt64(rig.driver.size))
        #expect(rig.device.statistics.counts.ioErrors == 0)
        #expect(try rig.servesAGoodRead())
    }

    // MARK: Reset while requests are pending

    @Test func resetStopsServingAndRestartWorks() throws {
        let rig = try BlockTestRig()
        for _ in 0..<10 {
            try rig.header(type: VirtioBlockRequestType.read.rawValue, sector: 0)
            try rig.driver.writeDescriptor(0, address: BlockTestRig.headerAddress, length: 16, flags: SplitQueue.flagNext, next: 1)
            try rig.driver.writeDescriptor(1, address: BlockTestRig.dataAddress, length: 65536, flags: SplitQueue.flagWrite | SplitQueue.flagNext, next: 2)
            try rig.driver.writeDescriptor(2, address: BlockTestRig.statusAddress, length: 1, flags: SplitQueue.flagWrite, next: 0)
            for _ in 0..<rig.driver.size { try rig.driver.publish(0) }
            rig.harness.notify(0)
            rig.harness.setStatus(0)
            #expect(rig.harness.status == 0)
            try rig.start()
        }
        #expect(try rig.servesAGoodRead())
    }
}

/// A disk whose every operation fails while `failing` is set.
final class FailingDisk: BlockDevice, @unchecked Sendable {
    let size: UInt64
    let isReadOnly = false
    let failing = Atomic<Bool>(false)
    init(size: UInt64) { self.size = size }
    private func check() throws { if failing.load(ordering: .relaxed) { throw StorageError.system(operation: "test", path: "failing", errno: EIO) } }
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try check()
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
    }
    func write(at offset: UInt64, from buffer: UnsafeRawBufferPointer) throws { try check() }
    func flush() throws { try check() }
    func discard(at offset: UInt64, length: UInt64) throws { try check() }
    func writeZeroes(at offset: UInt64, length: UInt64, unmap: Bool) throws { try check() }
    func close() throws {}
}

/// Deterministic pseudo-random numbers for register fuzzing.
struct Xorshift {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 1 : seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}
