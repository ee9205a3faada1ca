import GuestMemory
import Testing
@testable import Virtio

struct SplitQueueTests {
    static let ramSize: UInt64 = 1 << 20

    func makeMemory() throws -> GuestMemory {
        try GuestMemory(ranges: [(0, Self.ramSize)])
    }

    @Test func popsAChainSplitIntoReadableAndWritable() throws {
        let mem = try makeMemory()
        var d = MockDriver(memory: mem)
        var q = d.queue()
        try q.validate(memory: mem)
        try d.writeDescriptor(0, address: d.dataBase, length: 16, flags: SplitQueue.flagNext, next: 3)
        try d.writeDescriptor(3, address: d.dataBase + 0x100, length: 512, flags: SplitQueue.flagNext | SplitQueue.flagWrite, next: 5)
        try d.writeDescriptor(5, address: d.dataBase + 0x400, length: 1, flags: SplitQueue.flagWrite, next: 0)
        try d.publish(0)
        let chain = try #require(try q.pop(memory: mem))
        #expect(chain.head == 0)
        #expect(chain.readable == [VirtioBuffer(address: d.dataBase, length: 16)])
        #expect(chain.writable.map(\.length) == [512, 1])
        #expect(try q.pop(memory: mem) == nil)
        try q.pushUsed(head: chain.head, length: 513, memory: mem)
        #expect(try d.usedIndex() == 1)
        #expect(try d.usedElement(0) == (0, 513))
    }

    @Test func indirectTableIsFollowed() throws {
        let mem = try makeMemory()
        var d = MockDriver(memory: mem)
        var q = d.queue()
        let table = d.dataBase + 0x8000
        try d.writeDescriptor(table: table, 0, address: d.dataBase, length: 8, flags: SplitQueue.flagNext, next: 1)
        try d.writeDescriptor(table: table, 1, address: d.dataBase + 8, length: 8, flags: SplitQueue.flagWrite, next: 0)
        try d.writeDescriptor(2, address: table, length: 32, flags: SplitQueue.flagIndirect, next: 0)
        try d.publish(2)
        let chain = try #require(try q.pop(memory: mem))
        #expect(chain.head == 2)
        #expect(chain.readable.count == 1 && chain.writable.count == 1)
    }

    @Test(arguments: [
        // (case name, setup) pairs are expressed as an index into `Self.malformed`.
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
    ])
    func malformedChainsAreRejected(_ which: Int) throws {
        let mem = try makeMemory()
        var d = MockDriver(memory: mem)
        var q = d.queue()
        let expected = try Self.malformed(which, &d, &q)
        #expect(throws: expected) { _ = try q.pop(memory: mem) }
    }

    /// Builds malformed case `which` and returns the error it must produce.
    static func malformed(_ which: Int, _ d: inout MockDriver, _ q: inout SplitQueue) throws -> VirtqueueError {
        let f = SplitQueue.flagNext, w = SplitQueue.flagWrite, ind = SplitQueue.flagIndirect
        switch which {
        case 0:  // self loop
            try d.writeDescriptor(0, address: d.dataBase, length: 1, flags: f, next: 0)
            try d.publish(0)
            return .descriptorLoop
        case 1:  // two-element loop
            try d.writeDescriptor(0, address: d.dataBase, length: 1, flags: f, next: 1)
            try d.writeDescriptor(1, address: d.dataBase, length: 1, flags: f, next: 0)
            try d.publish(0)
            return .descriptorLoop
        case 2:  // head out of range
            try d.publish(0xffff)
            return .descriptorIndexOutOfRange(0xffff)
        case 3:  // next out of range
            try d.writeDescriptor(0, address: d.dataBase, length: 1, flags: f, next: 16)
            try d.publish(0)
            return .descriptorIndexOutOfRange(16)
        case 4:  // avail.idx jumps past the queue size
            try d.setAvailIndex(0x8000)
            return .availIndexJump(available: 0x8000, next: 0)
        case 5:  // buffer wraps the address space
            try d.writeDescriptor(0, address: UInt64.max - 4, length: 16, flags: 0, next: 0)
            try d.publish(0)
            return .bufferOutOfRange(address: UInt64.max - 4, length: 16)
        case 6:  // buffer ends one byte past RAM
            try d.writeDescriptor(0, address: ramSize - 15, length: 16, flags: 0, next: 0)
            try d.publish(0)
            return .bufferOutOfRange(address: ramSize - 15, length: 16)
        case 7:  // readable after writable
            try d.writeDescriptor(0, address: d.dataBase, length: 1, flags: f | w, next: 1)
            try d.writeDescriptor(1, address: d.dataBase, length: 1, flags: 0, next: 0)
            try d.publish(0)
            return .readableAfterWritable
        case 8:  // indirect table with more than 65535 entries
            try d.writeDescriptor(0, address: d.dataBase, length: 16 * 65536, flags: ind, next: 0)
            try d.publish(0)
            return .invalidIndirect("table has 65536 entries")
        case 9:  // indirect with zero length
            try d.writeDescriptor(0, address: d.dataBase, length: 0, flags: ind, next: 0)
            try d.publish(0)
            return .invalidIndirect("table length 0 is not a non-zero multiple of 16")
        case 10:  // indirect not a multiple of 16
            try d.writeDescriptor(0, address: d.dataBase, length: 24, flags: ind, next: 0)
            try d.publish(0)
            return .invalidIndirect("table length 24 is not a non-zero multiple of 16")
        case 11:  // nested indirect
            let table = d.dataBase + 0x1000
            try d.writeDescriptor(table: table, 0, address: table, length: 16, flags: ind, next: 0)
            try d.writeDescriptor(0, address: table, length: 16, flags: ind, next: 0)
            try d.publish(0)
            return .invalidIndirect("nested indirect table")
        case 12:  // indirect when not negotiated
            q.indirect = false
            try d.writeDescriptor(0, address: d.dataBase, length: 16, flags: ind, next: 0)
            try d.publish(0)
            return .invalidIndirect("VIRTIO_F_INDIRECT_DESC was not negotiated")
        case 13:  // a valid chain of 4097 indirect entries, each the whole 1 MiB of RAM: 2^32 + 2^20 bytes
            let table = d.dataBase
            for i in 0..<4097 {
                try d.writeDescriptor(table: table, UInt16(i), address: 0, length: UInt32(ramSize), flags: i < 4096 ? f | w : w, next: UInt16(i + 1))
            }
            try d.writeDescriptor(0, address: table, length: 16 * 4097, flags: ind, next: 0)
            try d.publish(0)
            return .chainTooLong
        default:
            Issue.record("no case \(which)")
            return .descriptorLoop
        }
    }

    @Test func bufferEndingExactlyAtRAMEndIsAccepted() throws {
        let mem = try makeMemory()
        var d = MockDriver(memory: mem)
        var q = d.queue()
        try d.writeDescriptor(0, address: Self.ramSize - 16, length: 16, flags: 0, next: 0)
        try d.publish(0)
        let chain = try #require(try q.pop(memory: mem))
        #expect(chain.readable == [VirtioBuffer(address: Self.ramSize - 16, length: 16)])
    }

    @Test(arguments: [UInt16(0), 3, 12, 512])
    func invalidSizesAreRefused(_ size: UInt16) throws {
        let mem = try makeMemory()
        var q = SplitQueue(maxSize: 256)
        q.size = size
        q.descriptorTable = 0x1000
        q.availRing = 0x8000
        q.usedRing = 0x9000
        #expect(throws: VirtqueueError.invalidSize(size)) { try q.validate(memory: mem) }
    }

    @Test func ringsOutsideRAMOrMisalignedAreRefused() throws {
        let mem = try makeMemory()
        var q = SplitQueue(maxSize: 256)
        q.size = 16
        q.descriptorTable = Self.ramSize - 16
        q.availRing = 0x8000
        q.usedRing = 0x9000
        #expect(throws: VirtqueueError.self) { try q.validate(memory: mem) }
        q.descriptorTable = 0x1008
        #expect(throws: VirtqueueError.self) { try q.validate(memory: mem) }
        q.descriptorTable = 0x1000
        try q.validate(memory: mem)
    }

    @Test func eventIndexSuppressesInterruptsUntilUsedEventPasses() throws {
        let mem = try makeMemory()
        var d = MockDriver(memory: mem)
        var q = d.queue(eventIndex: true)
        for i in 0..<4 {
            try d.writeDescriptor(UInt16(i), address: d.dataBase, length: 1, flags: SplitQueue.flagWrite, next: 0)
            try d.publish(UInt16(i))
        }
        // used_event = 2: the driver wants an interrupt once used.idx passes 2.
        try mem.store(UInt16(2), at: d.avail + 4 + 2 * UInt64(d.size))
        var notifications: [Bool] = []
        for _ in 0..<4 {
            let c = try #require(try q.pop(memory: mem))
            try q.pushUsed(head: c.head, length: 1, memory: mem)
            notifications.append(q.needsNotification(memory: mem))
        }
        // First call always notifies; then only when crossing used_event (new idx 3 > 2).
        #expect(notifications == [true, false, true, false])
        // avail_event tracks the device position.
        #expect(try mem.load(UInt16.self, at: d.used + 4 + 8 * UInt64(d.size)) == 4)
    }

    @Test func chainReaderAndWriterCrossBuffers() throws {
        let mem = try makeMemory()
        var d = MockDriver(memory: mem)
        var q = d.queue()
        try mem.write(Array(0..<10) as [UInt8], at: d.dataBase)
        try d.writeDescriptor(0, address: d.dataBase, length: 4, flags: SplitQueue.flagNext, next: 1)
        try d.writeDescriptor(1, address: d.dataBase + 4, length: 6, flags: SplitQueue.flagNext, next: 2)
        try d.writeDescriptor(2, address: d.dataBase + 0x100, length: 3, flags: SplitQueue.flagWrite | SplitQueue.flagNext, next: 3)
        try d.writeDescriptor(3, address: d.dataBase + 0x200, length: 3, flags: SplitQueue.flagWrite, next: 0)
        try d.publish(0)
        let chain = try #require(try q.pop(memory: mem))
        var r = ChainReader(memory: mem, chain: chain)
        #expect(r.read(UInt16.self) == 0x0100)
        #expect(r.read(UInt32.self) == 0x0504_0302)
        #expect(r.remaining == 4)
        #expect(r.read(UInt64.self) == nil)
        var w = ChainWriter(memory: mem, chain: chain)
        let payload: [UInt8] = [9, 8, 7, 6, 5]
        #expect(payload.withUnsafeBytes { w.write($0) })
        #expect(w.written == 5)
        #expect(try mem.readBytes(at: d.dataBase + 0x100, count: 3) == [9, 8, 7])
        #expect(try mem.readBytes(at: d.dataBase + 0x200, count: 2) == [6, 5])
        #expect(!([1, 2] as [UInt8]).withUnsafeBytes { w.write($0) })
    }

    /// A chain of direct descriptors whose total is over 4 GiB (three of nearly 2 GiB each, in
    /// 2 GiB of sparse RAM) is refused as too long, and nothing before it is lost.
    @Test func directChainOver4GiBIsTooLong() throws {
        let ram: UInt64 = 2 << 30
        let mem = try GuestMemory(ranges: [(0, ram)])
        var d = MockDriver(memory: mem)
        var q = d.queue()
        let big = UInt32(ram - 0x10_0000)
        try d.writeDescriptor(0, address: 0x10_0000, length: big, flags: SplitQueue.flagNext, next: 1)
        try d.writeDescriptor(1, address: 0x10_0000, length: big, flags: SplitQueue.flagNext | SplitQueue.flagWrite, next: 2)
        try d.writeDescriptor(2, address: 0x10_0000, length: big, flags: SplitQueue.flagWrite, next: 0)
        try d.publish(0)
        #expect(throws: VirtqueueError.chainTooLong) { _ = try q.pop(memory: mem) }
        // Two of them (just under 4 GiB) are a valid chain.
        try d.writeDescriptor(4, address: 0x10_0000, length: big, flags: SplitQueue.flagNext, next: 5)
        try d.writeDescriptor(5, address: 0x10_0000, length: big, flags: SplitQueue.flagWrite, next: 0)
        try d.publish(4)
        var fresh = d.queue()
        fresh.setPosition(nextAvail: 1, nextUsed: 0)
        let chain = try #require(try fresh.pop(memory: mem))
        #expect(chain.readableLength + chain.writableLength == 2 * UInt64(big))
    }

    /// The guest rewrites each descriptor (and the avail slot) right after the device read it,
    /// through GuestMemory's read hook: the device must read each exactly once and build the
    /// chain from those first reads, never from the rewritten values.
    @Test(arguments: [false, true])
    func eachDescriptorIsReadOnceAndLaterRewritesAreNotSeen(indirect: Bool) throws {
        let mem = try makeMemory()
        var d = MockDriver(memory: mem)
        var q = d.queue()
        let f = SplitQueue.flagNext, w = SplitQueue.flagWrite
        let table = indirect ? d.dataBase + 0x8000 : d.desc
        try d.writeDescriptor(table: table, 0, address: d.dataBase, length: 16, flags: f, next: 1)
        try d.writeDescriptor(table: table, 1, address: d.dataBase + 0x100, length: 512, flags: f | w, next: 2)
        try d.writeDescriptor(table: table, 2, address: d.dataBase + 0x400, length: 1, flags: w, next: 0)
        let head: UInt16 = indirect ? 5 : 0
        if indirect { try d.writeDescriptor(head, address: table, length: 48, flags: SplitQueue.flagIndirect, next: 0) }
        try d.publish(head)
        let driver = d
        let slot = driver.avail + 4
        var reads: [UInt64: Int] = [:]
        mem.readObserver = { address, length in
            if address == slot && length == 2 {
                reads[slot, default: 0] += 1
                try? mem.store(UInt16(7), at: slot)  // another head, after the device took this one
                return
            }
            for base in Set([table, driver.desc]) where address >= base && address < base + 16 * 16 {
                let index = UInt16((address - base) / 16)
                reads[base + 16 * UInt64(index), default: 0] += 1
                // Hostile rewrite: outside RAM, looping to itself, indirect, readable.
                try? driver.writeDescriptor(table: base, index, address: UInt64.max - 1, length: 0xffff_ffff,
                                            flags: f | SplitQueue.flagIndirect, next: index)
            }
        }
        defer { mem.readObserver = nil }
        let chain = try #require(try q.pop(memory: mem))
        mem.readObserver = nil
        #expect(chain.head == head)
        #expect(chain.readable == [VirtioBuffer(address: d.dataBase, length: 16)])
        #expect(chain.writable == [VirtioBuffer(address: d.dataBase + 0x100, length: 512), VirtioBuffer(address: d.dataBase + 0x400, length: 1)])
        var expected: [UInt64: Int] = [slot: 1, table: 1, table + 16: 1, table + 32: 1]
        if indirect { expected[d.desc + 16 * UInt64(head)] = 1 }
        #expect(reads == expected, "reads per descriptor: \(reads)")
    }

    /// Random descriptor tables (seeded, so a failure reproduces): every outcome is a chain that
    /// obeys the rules or a VirtqueueError that leaves the position alone, and both are common.
    @Test func randomDescriptorTablesGiveValidChainsOrErrors() throws {
        let mem = try makeMemory()
        var rng = SeededRandom(seed: 0x5EED_0001)
        var popped = 0, refused = 0
        for _ in 0..<3000 {
            var d = MockDriver(memory: mem)
            var q = d.queue(eventIndex: rng.next() & 1 == 0, indirect: rng.next() & 1 == 0)
            for i in 0..<UInt16(16) {
                // Mostly buffers in RAM, some anywhere; lengths of every magnitude.
                let addr = rng.next() % 4 != 0 ? rng.next() % (Self.ramSize / 2) : rng.next()
                try d.writeDescriptor(i, address: addr, length: UInt32(truncatingIfNeeded: rng.next()) >> UInt32(12 + rng.next() % 20),
                                      flags: UInt16(rng.next() % 8), next: UInt16(rng.next() % 20))
            }
            try d.publish(UInt16(rng.next() % 18))
            do {
                guard let chain = try q.pop(memory: mem) else {
                    Issue.record("a published head gave no chain")
                    continue
                }
                popped += 1
                #expect(q.nextAvail == 1)
                #expect(chain.head < q.size)
                #expect(!(chain.readable.isEmpty && chain.writable.isEmpty))
                for b in chain.readable + chain.writable {
                    #expect(mem.contains(b.address, length: UInt64(b.length)), "buffer \(b) outside RAM")
                }
                #expect(chain.readableLength + chain.writableLength <= UInt64(UInt32.max))
            } catch {
                refused += 1
                #expect(q.nextAvail == 0, "a refused chain moved the position")
            }
        }
        #expect(popped > 300 && refused > 300, "popped \(popped), refused \(refused)")
    }

    // MARK: Ring indices past 65535

    /// 70,000 requests through a queue of 4: avail.idx, used.idx and the device's positions wrap
    /// at 65536 and every chain still comes back in order in the right used slot.
    @Test(arguments: [false, true])
    func indicesWrapAround(eventIndex: Bool) throws {
        let mem = try makeMemory()
        var d = MockDriver(memory: mem, size: 4)
        var q = d.queue(eventIndex: eventIndex)
        for i in 0..<UInt16(4) {
            try d.writeDescriptor(i, address: d.dataBase + 0x100 * UInt64(i), length: 8, flags: SplitQueue.flagWrite, next: 0)
        }
        for n in 0..<70_000 {
            let head = UInt16(n % 4)
            try d.publish(head)
            let chain = try #require(try q.pop(memory: mem), "request \(n)")
            #expect(chain.head == head)
            try q.pushUsed(head: head, length: UInt32(n & 0xff), memory: mem)
            if n % 9973 == 0 || (65_530...65_540).contains(n) {
                let used = try d.usedIndex()
                #expect(used == UInt16(truncatingIfNeeded: n + 1), "used.idx after \(n + 1)")
                #expect(try d.usedElement(used &- 1) == (UInt32(head), UInt32(n & 0xff)))
                #expect(q.nextAvail == UInt16(truncatingIfNeeded: n + 1))
            }
        }
        #expect(try d.usedIndex() == UInt16(70_000 % 65_536))
        #expect(try q.pop(memory: mem) == nil)
    }

    /// Across the wrap, "pending" is avail.idx − next_avail modulo 2^16, and a jump of more than
    /// the queue size is still refused.
    @Test func pendingCountsAcrossTheWrap() throws {
        let mem = try makeMemory()
        let d = MockDriver(memory: mem)
        var q = d.queue()
        q.setPosition(nextAvail: 65_534, nextUsed: 65_534)
        try d.setAvailIndex(2)  // 4 ahead of 65534
        #expect(try q.hasPending(memory: mem))
        for i in 0..<UInt16(16) { try d.writeDescriptor(i, address: d.dataBase, length: 1, flags: 0, next: 0) }
        for (k, slot) in [65_534, 65_535, 0, 1].enumerated() {
            try mem.store(UInt16(k), at: d.avail + 4 + 2 * UInt64(slot % 16))
        }
        var heads: [UInt16] = []
        while let c = try q.pop(memory: mem) { heads.append(c.head) }
        #expect(heads == [0, 1, 2, 3])
        #expect(q.nextAvail == 2)
        try d.setAvailIndex(2 &+ 17)  // 17 ahead of a queue of 16
        #expect(throws: VirtqueueError.availIndexJump(available: 19, next: 2)) { _ = try q.pop(memory: mem) }
    }

    /// EVENT_IDX across the wrap: used_event = 65535 asks for an interrupt when used.idx moves
    /// from 65535 to 0, and only then.
    @Test func eventIndexNotificationAcrossTheWrap() throws {
        let mem = try makeMemory()
        var d = MockDriver(memory: mem, size: 4)
        var q = d.queue(eventIndex: true)
        q.setPosition(nextAvail: 65_533, nextUsed: 65_533)
        try d.setAvailIndex(65_533)
        d.availIdx = 65_533
        for i in 0..<UInt16(4) { try d.writeDescriptor(i, address: d.dataBase, length: 1, flags: SplitQueue.flagWrite, next: 0) }
        try mem.store(UInt16(65_535), at: d.avail + 4 + 2 * 4)  // used_event
        var notified: [Bool] = []
        for n in 0..<5 {
            try d.publish(UInt16(n % 4))
            let c = try #require(try q.pop(memory: mem))
            try q.pushUsed(head: c.head, length: 1, memory: mem)
            notified.append(q.needsNotification(memory: mem))
        }
        // used.idx goes 65534, 65535, 0, 1, 2: the first call always notifies; then only 65535 → 0 crosses used_event + 1.
        #expect(notified == [true, false, true, false, false])
    }
}

/// xorshift64*: deterministic, so a failing random test reproduces.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
