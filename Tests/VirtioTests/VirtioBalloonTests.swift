import GuestMemory
import Testing
@testable import Virtio

/// A balloon behind the PCI transport with mock drivers on its queues.
final class BalloonRig {
    static let ramSize: UInt64 = 8 << 20
    /// Pages the tests inflate live from 4 MiB up.
    static let firstTestPage: UInt64 = 0x400

    let memory: GuestMemory
    let device: VirtioBalloon
    let h: TransportHarness
    /// Mock drivers by queue index.
    var drivers: [MockDriver]

    /// Negotiates `features` (VERSION_1 is added) and sets up `queueCount` queues, vector i+1 for queue i.
    init(options: VirtioBalloon.Options = .init(), features: UInt64? = nil, queueCount: Int? = nil) throws {
        let mem = try GuestMemory(ranges: [(0, Self.ramSize)])
        memory = mem
        device = VirtioBalloon(guestMemorySize: Self.ramSize, options: options)
        h = try TransportHarness(device: device, memory: mem)
        let count = queueCount ?? device.queueMaxSizes.count
        drivers = (0..<count).map { MockDriver(memory: mem, size: 16, base: 0x10000 + 0x20000 * UInt64($0)) }
        h.enableMSIX(vectors: device.queueMaxSizes.count + 1)
        let wanted = (features ?? device.deviceFeatures) | VirtioFeature.version1
        guard h.negotiate(features: wanted) else { throw RigError.negotiation }
        h.write(0x10, 0, size: 2)  // config vector 0
        for (i, d) in drivers.enumerated() { h.setUpQueue(UInt16(i), driver: d, vector: UInt16(i + 1)) }
        h.setStatus(15)
        guard h.status == 15 else { throw RigError.notRunning(h.status) }
    }

    enum RigError: Error { case negotiation, notRunning(UInt8) }

    /// Publishes one chain of `buffers` (address, length, device-writable) on queue `q` and kicks it.
    func send(_ q: Int, _ buffers: [(address: UInt64, length: UInt32, writable: Bool)]) throws {
        var d = drivers[q]
        let first = UInt16(truncatingIfNeeded: Int(d.availIdx) * 4) % d.size
        for (i, b) in buffers.enumerated() {
            let index = (first + UInt16(i)) % d.size
            let last = i == buffers.count - 1
            try d.writeDescriptor(index, address: b.address, length: b.length,
                                  flags: (b.writable ? SplitQueue.flagWrite : 0) | (last ? 0 : SplitQueue.flagNext),
                                  next: (index + 1) % d.size)
        }
        try d.publish(first)
        drivers[q] = d
        h.notify(UInt16(q))
    }

    /// Writes `pfns` at queue `q`'s data area and sends them as one readable buffer of `length` bytes (default: all).
    func sendPFNs(_ q: Int, _ pfns: [UInt32], length: UInt32? = nil) throws {
        let d = drivers[q]
        var bytes: [UInt8] = []
        for p in pfns { bytes += withUnsafeBytes(of: p.littleEndian, Array.init) }
        try memory.write(bytes, at: d.dataBase)
        try send(q, [(d.dataBase, length ?? UInt32(bytes.count), false)])
    }

    /// Waits until queue `q` has used `count` chains in total.
    func waitUsed(_ q: Int, _ count: UInt16) -> Bool {
        eventually { (try? drivers[q].usedIndex()) == count }
    }

    func fill(page: UInt64, with byte: UInt8) throws {
        try memory.write([UInt8](repeating: byte, count: 4096), at: page * 4096)
    }

    func isZero(page: UInt64) throws -> Bool {
        try memory.readBytes(at: page * 4096, count: 4096).allSatisfy { $0 == 0 }
    }

    func statsEntries(_ entries: [(UInt16, UInt64)]) -> [UInt8] {
        var bytes: [UInt8] = []
        for (tag, value) in entries {
            bytes += withUnsafeBytes(of: tag.littleEndian, Array.init)
            bytes += withUnsafeBytes(of: value.littleEndian, Array.init)
        }
        return bytes
    }

    deinit { h.setStatus(0) }
}

struct VirtioBalloonTests {
    @Test func offersStatisticsAndReportingByDefaultAndDeflateOnOOMOnRequest() throws {
        let plain = VirtioBalloon(guestMemorySize: 1 << 20)
        #expect(plain.deviceFeatures == VirtioBalloon.featureStatsQueue | VirtioBalloon.featurePageReporting)
        #expect(plain.queueMaxSizes.count == 4)
        let oom = VirtioBalloon(guestMemorySize: 1 << 20, options: .init(statistics: false, freePageReporting: false, deflateOnOOM: true))
        #expect(oom.deviceFeatures == VirtioBalloon.featureDeflateOnOOM)
        #expect(oom.queueMaxSizes.count == 2)
    }

    @Test func coalescingSortsMergesAndDropsDuplicates() {
        #expect(BalloonPages.coalesce([]) == [])
        #expect(BalloonPages.coalesce([7, 5, 6, 6, 10, 9, 0xffff_ffff]) ==
                [PageRange(first: 5, count: 3), PageRange(first: 9, count: 2), PageRange(first: 0xffff_ffff, count: 1)])
    }

    @Test func piecesSkipHolesAndSplitAtRegionEnds() throws {
        let mem = try GuestMemory(ranges: [(0, 0x4000), (0x10000, 0x2000)])
        let (pieces, outside) = BalloonPages.pieces(of: PageRange(first: 2, count: 0x10), in: mem)
        #expect(pieces.map { [$0.region.guestAddress, $0.offset, $0.length] } == [[0, 0x2000, 0x2000], [0x10000, 0, 0x2000]])
        #expect(outside == 0x10 - 4)
        // A range running to the top of the address space ends without overflow.
        let top = BalloonPages.pieces(of: PageRange(first: (UInt64.max >> 12) - 3, count: 100), in: mem)
        #expect(top.pieces.isEmpty && top.outsideRAM == 100)
        let wrap = BalloonPages.pieces(of: PageRange(first: UInt64.max - 3, count: 100), in: mem)
        #expect(wrap.pieces.isEmpty && wrap.outsideRAM == 100)
    }

    @Test func wholePagesOfAReportRoundInward() {
        #expect(BalloonPages.wholePages(address: 0x1000, length: 0x3000) == PageRange(first: 1, count: 3))
        #expect(BalloonPages.wholePages(address: 0x1800, length: 0x3000) == PageRange(first: 2, count: 2))
        #expect(BalloonPages.wholePages(address: 0x1800, length: 0x1000) == nil)
        #expect(BalloonPages.wholePages(address: UInt64.max - 0x10, length: 0x100) == nil)
    }

    @Test func inflateReturnsPagesToTheHostAndCountsThem() throws {
        let rig = try BalloonRig()
        let pages = (0..<8).map { BalloonRig.firstTestPage + UInt64($0) }
        for p in pages { try rig.fill(page: p, with: 0xa5) }
        try rig.fill(page: BalloonRig.firstTestPage + 8, with: 0x5a)
        // Out of order, with a duplicate: still one range of 8 pages.
        try rig.sendPFNs(0, pages.reversed().map { UInt32($0) } + [UInt32(pages[3])])
        #expect(rig.waitUsed(0, 1))
        #expect(try rig.drivers[0].usedElement(0).length == 0)
        for p in pages { #expect(try rig.isZero(page: p)) }
        #expect(try !rig.isZero(page: BalloonRig.firstTestPage + 8), "a page next to the range must keep its contents")
        #expect(rig.device.status.inflatedPages == 8)
        #expect(rig.device.status.rejected == 0)
        #expect(eventually { rig.h.vectors.triggers.withLock { $0.contains(1) } })
    }

    @Test func pageNumbersOutsideRAMAreIgnoredAndTheRestIsServed() throws {
        let rig = try BalloonRig()
        let good = BalloonRig.firstTestPage
        try rig.fill(page: good, with: 1)
        let ramPages = UInt32(BalloonRig.ramSize / 4096)
        try rig.sendPFNs(0, [ramPages, UInt32(good), 0xffff_ffff, ramPages + 1, 0xe0000])
        #expect(rig.waitUsed(0, 1))
        #expect(try rig.isZero(page: good))
        #expect(rig.device.status.inflatedPages == 1)
        #expect(rig.device.status.rejected == 4)
        // The next good request still works.
        try rig.fill(page: good + 1, with: 2)
        try rig.sendPFNs(0, [UInt32(good + 1)])
        #expect(rig.waitUsed(0, 2))
        #expect(try rig.isZero(page: good + 1))
        #expect(rig.h.status & VirtioPCIDevice.statusNeedsReset == 0)
    }

    @Test func hugeArraysAreCutAtTheRequestLimit() throws {
        let rig = try BalloonRig()
        let inside = BalloonRig.firstTestPage, beyond = BalloonRig.firstTestPage + 1
        try rig.fill(page: inside, with: 3)
        try rig.fill(page: beyond, with: 4)
        // 1 MiB of page numbers: the first 4096 name `inside`, a later one names `beyond`.
        var pfns = [UInt32](repeating: UInt32(inside), count: 1 << 18)
        pfns[VirtioBalloon.maxPagesPerRequest + 10] = UInt32(beyond)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(pfns.count * 4)
        for p in pfns { bytes += withUnsafeBytes(of: p.littleEndian, Array.init) }
        try rig.memory.write(bytes, at: 0x500000)
        try rig.send(0, [(0x500000, UInt32(bytes.count), false)])
        #expect(rig.waitUsed(0, 1))
        #expect(try rig.isZero(page: inside))
        #expect(try !rig.isZero(page: beyond), "page numbers past the limit are ignored")
        #expect(rig.device.status.rejected == UInt64(pfns.count - VirtioBalloon.maxPagesPerRequest))
        try rig.sendPFNs(0, [UInt32(beyond)])
        #expect(rig.waitUsed(0, 2))
        #expect(try rig.isZero(page: beyond))
    }

    @Test func oddLengthsIgnoreTheTrailingBytes() throws {
        let rig = try BalloonRig()
        let p = BalloonRig.firstTestPage
        for i in 0..<3 { try rig.fill(page: p + UInt64(i), with: 9) }
        try rig.sendPFNs(0, [UInt32(p), UInt32(p + 1), UInt32(p + 2)], length: 10)  // two PFNs and two stray bytes
        #expect(rig.waitUsed(0, 1))
        #expect(try rig.isZero(page: p) && rig.isZero(page: p + 1))
        #expect(try !rig.isZero(page: p + 2))
        #expect(rig.device.status.rejected == 1)
        // Empty and writable-only requests are used with nothing done.
        try rig.send(0, [(rig.drivers[0].dataBase, 0, false)])
        try rig.send(0, [(rig.drivers[0].dataBase, 64, true)])
        #expect(rig.waitUsed(0, 3))
        try rig.sendPFNs(0, [UInt32(p + 2)])
        #expect(rig.waitUsed(0, 4))
        #expect(try rig.isZero(page: p + 2))
        #expect(rig.device.status.inflatedPages == 3)
    }

    @Test func deflateCountsPagesAndLeavesMemoryAlone() throws {
        let rig = try BalloonRig()
        let p = BalloonRig.firstTestPage
        try rig.fill(page: p, with: 7)
        try rig.sendPFNs(1, [UInt32(p), UInt32(p + 1), 0xffff_fff0])
        #expect(rig.waitUsed(1, 1))
        #expect(rig.device.status.deflatedPages == 2)
        #expect(rig.device.status.rejected == 1)
        #expect(try !rig.isZero(page: p))
    }

    @Test func targetIsReadableAndChangesRaiseTheConfigVector() throws {
        let rig = try BalloonRig()
        #expect(rig.h.read(0x2000, size: 4) == 0)
        try rig.device.setTarget(pages: 1024)
        #expect(rig.h.read(0x2000, size: 4) == 1024)
        #expect(rig.h.read(0x2001, size: 1) == 4)
        #expect(eventually { rig.h.vectors.triggers.withLock { $0.contains(0) } })
        let before = rig.h.vectors.triggerCount
        try rig.device.setTarget(pages: 1024)  // unchanged: no interrupt
        #expect(rig.h.vectors.triggerCount == before)
        #expect(throws: VirtioDeviceError.self) { try rig.device.setTarget(pages: BalloonRig.ramSize / 4096 + 1) }
        #expect(throws: VirtioDeviceError.self) { try rig.device.setTarget(pages: UInt64.max) }
        #expect(rig.device.status.targetPages == 1024)
        // The driver cannot write num_pages; it writes actual, whole or byte by byte.
        rig.h.write(0x2000, 5, size: 4)
        #expect(rig.h.read(0x2000, size: 4) == 1024)
        rig.h.write(0x2004, 0x0102_0304, size: 4)
        #expect(rig.device.status.actualPages == 0x0102_0304)
        rig.h.write(0x2007, 0, size: 1)
        #expect(rig.device.status.actualPages == 0x0002_0304)
        #expect(rig.h.read(0x2004, size: 4) == 0x0002_0304)
        #expect(rig.h.read(0x2008, size: 8) == 0)
        rig.h.write(0x2ffe, 0xffff, size: 2)
        // Reset empties the balloon but keeps the host's target.
        rig.h.setStatus(0)
        #expect(rig.device.status.actualPages == 0)
        #expect(rig.device.status.targetPages == 1024)
    }

    @Test func statisticsAreKeptAndReturnedToAskForFreshOnes() throws {
        let rig = try BalloonRig()
        let d = rig.drivers[2]
        #expect(!rig.device.requestStatistics(), "no buffer held yet")
        try rig.memory.write(rig.statsEntries([(5, 64 << 20), (4, 10 << 20), (99, 1), (0, 4096)]), at: d.dataBase)
        try rig.send(2, [(d.dataBase, 40, false)])
        #expect(eventually { rig.device.status.statisticsUpdates == 1 })
        let s = try #require(rig.device.status.statistics)
        #expect(s[.totalMemory] == 64 << 20)
        #expect(s[.freeMemory] == 10 << 20)
        #expect(s[.swapIn] == 4096)
        #expect(s.unknownEntries == 1)
        #expect(s.lines == ["swap-in 4096", "free-memory 10485760", "total-memory 67108864"])
        #expect(try d.usedIndex() == 0, "the device keeps the buffer")
        #expect(rig.device.requestStatistics())
        #expect(rig.waitUsed(2, 1))
        #expect(try rig.drivers[2].usedElement(0).length == 0)
        #expect(eventually { rig.h.vectors.triggers.withLock { $0.contains(3) } })
        #expect(!rig.device.requestStatistics(), "the buffer is with the driver now")
        try rig.memory.write(rig.statsEntries([(5, 64 << 20), (4, 9 << 20)]), at: d.dataBase)
        try rig.send(2, [(d.dataBase, 20, false)])
        #expect(eventually { rig.device.status.statisticsUpdates == 2 })
        #expect(rig.device.status.statistics?[.freeMemory] == 9 << 20)
        #expect(rig.device.status.statistics?[.swapIn] == nil)
    }

    @Test func malformedStatisticsBuffersAreBoundedAndTheNextOneIsServed() throws {
        let rig = try BalloonRig()
        let d = rig.drivers[2]
        // Too short (7 bytes): no entries. The device holds it.
        try rig.send(2, [(d.dataBase, 7, false)])
        #expect(eventually { rig.device.status.statisticsUpdates == 1 })
        #expect(rig.device.status.statistics == BalloonStatistics())
        #expect(rig.device.status.rejected == 7)
        // A second buffer while one is held: the old one goes back, the new (4 MiB, mostly junk) is read only to the limit.
        var big = rig.statsEntries([(6, 123)])
        big += [UInt8](repeating: 0x00, count: 4 << 20)
        try rig.memory.write(big, at: 0x300000)
        try rig.send(2, [(0x300000, UInt32(big.count), false)])
        #expect(eventually { rig.device.status.statisticsUpdates == 2 })
        #expect(rig.waitUsed(2, 1), "the previously held buffer is returned")
        // Only the first 64 entries count: the real one and 63 zero entries (tag 0 = swap-in).
        #expect(rig.device.status.statistics?[.availableMemory] == 123)
        #expect(rig.device.status.statistics?[.swapIn] == 0)
        #expect(rig.device.status.rejected == 7 + UInt64(big.count - VirtioBalloon.maxStatisticsBytes))
        // A good buffer next: parsed, and the big one is returned.
        try rig.memory.write(rig.statsEntries([(6, 321)]), at: d.dataBase + 0x100)
        try rig.send(2, [(d.dataBase + 0x100, 10, false)])
        #expect(eventually { rig.device.status.statistics?[.availableMemory] == 321 })
        #expect(rig.waitUsed(2, 2))
        #expect(rig.h.status & VirtioPCIDevice.statusNeedsReset == 0)
    }

    @Test func freePageReportsAreDiscardedAndReturned() throws {
        let rig = try BalloonRig()
        let p = BalloonRig.firstTestPage
        for i in 0..<6 { try rig.fill(page: p + UInt64(i), with: 0x11) }
        // One aligned 2-page buffer, one unaligned buffer covering one whole page, one buffer smaller than a page.
        try rig.send(3, [(p * 4096, 0x2000, true), ((p + 2) * 4096 + 0x800, 0x1800, true), ((p + 5) * 4096, 0x800, true)])
        #expect(rig.waitUsed(3, 1))
        #expect(try rig.isZero(page: p) && rig.isZero(page: p + 1) && rig.isZero(page: p + 3))
        #expect(try !rig.isZero(page: p + 2) && !rig.isZero(page: p + 4) && !rig.isZero(page: p + 5))
        #expect(rig.device.status.reportedPages == 3)
        #expect(rig.device.status.rejected == 1)
    }

    @Test func reportingTakesQueueTwoWhenStatisticsAreNotNegotiated() throws {
        let rig = try BalloonRig(features: VirtioBalloon.featurePageReporting, queueCount: 3)
        let p = BalloonRig.firstTestPage
        try rig.fill(page: p, with: 0x22)
        try rig.send(2, [(p * 4096, 0x1000, true)])
        #expect(rig.waitUsed(2, 1))
        #expect(try rig.isZero(page: p))
        #expect(rig.device.status.reportedPages == 1)
        #expect(rig.device.status.statisticsUpdates == 0)
    }

    @Test func aBrokenChainNeedsResetAndResetRecovers() throws {
        let rig = try BalloonRig()
        var d = rig.drivers[0]
        try d.writeDescriptor(0, address: d.dataBase, length: 8, flags: SplitQueue.flagNext, next: 0)  // loop
        try d.publish(0)
        rig.h.notify(0)
        #expect(eventually { rig.h.status & VirtioPCIDevice.statusNeedsReset != 0 })
        // Reset and set up again: a good inflate works.
        let fresh = MockDriver(memory: rig.memory, size: 16, base: 0x100000)
        #expect(rig.h.negotiate(features: VirtioFeature.version1))
        rig.h.setUpQueue(0, driver: fresh, vector: 1)
        rig.h.setUpQueue(1, driver: MockDriver(memory: rig.memory, size: 16, base: 0x120000), vector: 2)
        rig.h.setStatus(15)
        #expect(rig.h.status == 15)
        rig.drivers[0] = fresh
        try rig.fill(page: BalloonRig.firstTestPage, with: 1)
        try rig.sendPFNs(0, [UInt32(BalloonRig.firstTestPage)])
        #expect(rig.waitUsed(0, 1))
        #expect(try rig.isZero(page: BalloonRig.firstTestPage))
    }

    @Test func activationNeedsTheInflateAndDeflateQueues() throws {
        let memory = try GuestMemory(ranges: [(0, 1 << 20)])
        let h = try TransportHarness(device: VirtioBalloon(guestMemorySize: 1 << 20), memory: memory)
        #expect(h.negotiate(features: VirtioFeature.version1))
        h.setUpQueue(0, driver: MockDriver(memory: memory), vector: 0xffff)
        h.setStatus(15)
        #expect(h.status & VirtioPCIDevice.statusNeedsReset != 0)
        h.setStatus(0)
    }
}
