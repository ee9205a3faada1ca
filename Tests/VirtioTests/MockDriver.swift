import GuestMemory
@testable import Virtio

/// A test driver that lays out a split queue in guest memory and publishes chains, as a
/// guest virtio driver would, including malformed ones.
struct MockDriver {
    let memory: GuestMemory
    let size: UInt16
    let desc: UInt64
    let avail: UInt64
    let used: UInt64
    var availIdx: UInt16 = 0
    /// Where test data buffers start.
    let dataBase: UInt64

    init(memory: GuestMemory, size: UInt16 = 16, base: UInt64 = 0x10000) {
        self.memory = memory
        self.size = size
        desc = base
        avail = base + 0x1000 * 4
        used = base + 0x1000 * 8
        dataBase = base + 0x1000 * 16
    }

    func queue(eventIndex: Bool = false, indirect: Bool = true) -> SplitQueue {
        var q = SplitQueue(maxSize: 256)
        q.size = size
        q.descriptorTable = desc
        q.availRing = avail
        q.usedRing = used
        q.eventIndex = eventIndex
        q.indirect = indirect
        q.ready = true
        return q
    }

    func writeDescriptor(table: UInt64? = nil, _ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) throws {
        let base = (table ?? desc) + 16 * UInt64(index)
        try memory.store(address, at: base)
        try memory.store(length, at: base + 8)
        try memory.store(flags, at: base + 12)
        try memory.store(next, at: base + 14)
    }

    /// Publishes `head` in the next avail slot and bumps avail.idx.
    mutating func publish(_ head: UInt16) throws {
        try memory.store(head, at: avail + 4 + 2 * UInt64(availIdx % size))
        availIdx &+= 1
        try memory.store(availIdx, at: avail + 2)
    }

    /// Sets avail.idx directly (to test jumps).
    func setAvailIndex(_ v: UInt16) throws {
        try memory.store(v, at: avail + 2)
    }

    func usedIndex() throws -> UInt16 { try memory.load(UInt16.self, at: used + 2) }

    func usedElement(_ i: UInt16) throws -> (id: UInt32, length: UInt32) {
        let slot = used + 4 + 8 * UInt64(i % size)
        return (try memory.load(UInt32.self, at: slot), try memory.load(UInt32.self, at: slot + 4))
    }
}
