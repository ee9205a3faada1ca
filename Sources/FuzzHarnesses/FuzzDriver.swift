import GuestMemory
import SystemExtras
import Virtio

/// A guest virtio driver the device harnesses use: lays out up to four split queues in
/// `FuzzGuestRAM` and publishes chains built from the input, valid ones mostly and broken ones
/// often, with buffer contents from the input.
struct FuzzDriver {
    static let queueSize: UInt16 = 64
    /// Buffers the chains point at: the low region after the rings, and the high region.
    static let dataStart: UInt64 = 0x2_0000

    let memory: GuestMemory
    private(set) var availIndex: [UInt16]
    private var nextDescriptor: [UInt16]
    /// Whether a published buffer overlaps a used ring: the device may then write frames or
    /// packets there, and used elements no longer say what the device completed.
    private(set) var usedRingsExposed = false

    init(memory: GuestMemory, queues: Int) {
        self.memory = memory
        availIndex = Array(repeating: 0, count: queues)
        nextDescriptor = Array(repeating: 0, count: queues)
    }

    static func table(_ q: Int) -> UInt64 { 0x1000 + UInt64(q) * 0x4000 }
    static func avail(_ q: Int) -> UInt64 { table(q) + 0x1000 }
    static func used(_ q: Int) -> UInt64 { table(q) + 0x2000 }

    /// Whether `address ..< address + length` touches one of the used rings.
    static func isUsedRing(_ address: UInt64, _ length: UInt64) -> Bool {
        (0..<4).contains { q in address < used(q) + 0x1000 && used(q) < address &+ length }
    }

    /// Queue `q` as the driver configured it.
    func queue(_ q: Int, features: UInt64) -> SplitQueue {
        var queue = SplitQueue(maxSize: Self.queueSize)
        queue.descriptorTable = Self.table(q)
        queue.availRing = Self.avail(q)
        queue.usedRing = Self.used(q)
        queue.eventIndex = features & VirtioFeature.eventIndex != 0
        queue.indirect = features & VirtioFeature.indirectDescriptors != 0
        queue.ready = true
        return queue
    }

    /// A buffer address: mostly in the data area, sometimes at RAM's edges or anywhere.
    static func bufferAddress(_ input: inout FuzzInput) -> UInt64 {
        switch input.u8() % 16 {
        case 0: return FuzzGuestRAM.address(&input)
        case 1: return FuzzGuestRAM.high.address + UInt64(input.u16())
        default: return dataStart + UInt64(input.u16()) * 2
        }
    }

    /// A buffer length: small, sector multiples, or anything.
    static func bufferLength(_ input: inout FuzzInput) -> UInt32 {
        switch input.u8() % 8 {
        case 0: return input.u32()
        case 1, 2: return UInt32(input.u8() % 9) * 512
        case 3: return UInt32(input.u8())
        default: return UInt32(input.u16() % 0x2000)
        }
    }

    private func storeDescriptor(table: UInt64, _ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        let base = table &+ 16 &* UInt64(index)
        try? memory.store(address, at: base)
        try? memory.store(length, at: base &+ 8)
        try? memory.store(flags, at: base &+ 12)
        try? memory.store(next, at: base &+ 14)
    }

    /// One buffer of a chain described by the input: `header` bytes first (readable), then
    /// input bytes; the caller decides which parts are device-writable.
    struct Part {
        var address: UInt64
        var length: UInt32
        var writable: Bool
    }

    /// Writes `parts` as a chain in queue `q` (through an indirect table when `indirect`), fills
    /// readable buffers with `contents`, publishes the head and bumps avail.idx.
    mutating func publish(queue q: Int, parts: [Part], contents: [UInt8], indirect: Bool, input: inout FuzzInput) {
        guard !parts.isEmpty else { return }
        if parts.contains(where: { Self.isUsedRing($0.address, UInt64($0.length)) }) { usedRingsExposed = true }
        var offset = 0
        for p in parts where !p.writable {
            let n = min(Int(p.length), contents.count - offset, 0x4000)
            if n > 0 {
                try? memory.write(contents[offset..<(offset + n)], at: p.address)
                offset += n
            }
        }
        let size = Self.queueSize
        let head = nextDescriptor[q] % size
        // Rarely, a broken link (a loop, an index past the table) or flags from the input.
        let corrupt = input.u8() == 0xff
        if indirect {
            let tableAddress = Self.dataStart + 0x1_0000 + UInt64(q) * 0x4000
            for (i, p) in parts.prefix(255).enumerated() {
                let last = i == min(parts.count, 255) - 1
                var flags: UInt16 = (last ? 0 : SplitQueue.flagNext) | (p.writable ? SplitQueue.flagWrite : 0)
                if corrupt && i == 0 { flags = UInt16(input.u8() % 8) }
                storeDescriptor(table: tableAddress, UInt16(i), address: p.address, length: p.length, flags: flags,
                                next: corrupt ? input.u16() : UInt16(i + 1))
            }
            storeDescriptor(table: Self.table(q), head, address: tableAddress, length: UInt32(min(parts.count, 255) * 16),
                            flags: SplitQueue.flagIndirect, next: 0)
            nextDescriptor[q] &+= 1
        } else {
            for (i, p) in parts.prefix(Int(size)).enumerated() {
                let index = (head &+ UInt16(i)) % size
                let last = i == min(parts.count, Int(size)) - 1
                var flags: UInt16 = (last ? 0 : SplitQueue.flagNext) | (p.writable ? SplitQueue.flagWrite : 0)
                if corrupt && i == 0 { flags = UInt16(input.u8() % 8) }
                storeDescriptor(table: Self.table(q), index, address: p.address, length: p.length, flags: flags,
                                next: corrupt ? input.u16() : (index &+ 1) % size)
            }
            nextDescriptor[q] &+= UInt16(min(parts.count, Int(size)))
        }
        let slot = Self.avail(q) + 4 + 2 * UInt64(availIndex[q] % size)
        try? memory.store(head, at: slot)
        availIndex[q] &+= 1
        try? memory.store(availIndex[q], at: Self.avail(q) + 2)
    }

    /// Random parts: `count` buffers whose writability the input picks (readable first usually).
    static func randomParts(_ input: inout FuzzInput, maxCount: Int) -> [Part] {
        let count = 1 + input.below(maxCount)
        let boundary = input.below(count + 1)
        let shuffle = input.u8() & 0xf == 0
        return (0..<count).map { i in
            Part(address: bufferAddress(&input), length: bufferLength(&input), writable: shuffle ? input.bool() : i >= boundary)
        }
    }

    /// used.idx of queue `q`.
    func usedIndex(_ q: Int) -> UInt16 { (try? memory.load(UInt16.self, at: Self.used(q) + 2)) ?? 0 }

    /// The used element at `slot`.
    func usedElement(_ q: Int, _ slot: UInt16) -> (id: UInt32, length: UInt32) {
        let base = Self.used(q) + 4 + 8 * UInt64(slot % Self.queueSize)
        return ((try? memory.load(UInt32.self, at: base)) ?? 0, (try? memory.load(UInt32.self, at: base + 4)) ?? 0)
    }
}

/// Interrupts the device harnesses count.
final class FuzzInterrupt: VirtioInterrupt, @unchecked Sendable {
    // @unchecked: a harness runs on one thread; the protocol asks for Sendable.
    var queueSignals = 0
    var configSignals = 0
    var broken = false
    func signalQueue(_ index: Int) { queueSignals += 1 }
    func signalConfigChange() { configSignals += 1 }
    func deviceBroken() { broken = true }
}

/// An activation for the harness driver's queues.
func fuzzActivation(memory: GuestMemory, driver: FuzzDriver, queues: Int, features: UInt64,
                    interrupt: FuzzInterrupt) throws(FuzzInvariantViolation) -> VirtioActivation {
    var notifiers: [EventFD] = []
    for _ in 0..<queues {
        do {
            notifiers.append(try EventFD())
        } catch {
            throw FuzzInvariantViolation("cannot create an eventfd: \(error)")
        }
    }
    return VirtioActivation(memory: memory, features: features, queues: (0..<queues).map { driver.queue($0, features: features) },
                            notifiers: notifiers, interrupt: interrupt)
}
