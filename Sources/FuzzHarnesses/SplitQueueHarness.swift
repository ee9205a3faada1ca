import GuestMemory
import Virtio

/// Guest RAM for the virtio harnesses: 256 KiB at 0 and 64 KiB at 1 MiB (a hole between them and
/// past the end), zeroed before every input so each run starts from the same state.
final class FuzzGuestRAM {
    static let low: (address: UInt64, size: UInt64) = (0, 0x4_0000)
    static let high: (address: UInt64, size: UInt64) = (0x10_0000, 0x1_0000)
    let memory: GuestMemory

    init() {
        // Two small anonymous mappings: this cannot fail short of the host running out of memory.
        guard let m = try? GuestMemory(ranges: [Self.low, Self.high]) else { fatalError("cannot map fuzzing guest RAM") }
        memory = m
    }

    /// Zeroes both regions.
    func clear() {
        try? memory.zero(at: Self.low.address, length: Self.low.size)
        try? memory.zero(at: Self.high.address, length: Self.high.size)
    }

    /// An address chosen by the input: mostly inside RAM (near its edges too), sometimes anything.
    static func address(_ input: inout FuzzInput) -> UInt64 {
        switch input.u8() % 8 {
        case 0: return input.u64()
        case 1: return high.address + UInt64(input.u16())  // anywhere in the 64 KiB region
        case 2: return low.size &- UInt64(input.u8())  // just below the hole
        case 3: return high.address + high.size &- UInt64(input.u8())  // just below the end
        default: return UInt64(input.u32()) % low.size
        }
    }

    /// Writes input bytes somewhere (ignored if that is not RAM): the guest changing memory.
    /// Ranges for which `sparing` is true are left alone (the used rings a harness checks).
    func scribble(_ input: inout FuzzInput, sparing: (UInt64, UInt64) -> Bool = { _, _ in false }) {
        let address = Self.address(&input)
        let bytes = input.bytes(Int(input.u8()) + 1)
        guard !sparing(address, UInt64(bytes.count)) else { return }
        try? memory.write(bytes, at: address)
    }
}

/// Split virtqueue and descriptor chains (`SplitQueue`, `ChainReader`, `ChainWriter`): random ring
/// layouts and contents, with the guest rewriting memory between device operations.
///
/// Checks: a popped chain's buffers lie in RAM, readable before writable, at most 2^32 - 1 bytes
/// in total and at most queue size (or an indirect table's size) descriptors; reading and writing
/// a chain stays within it; pending counts never exceed the queue size.
public enum SplitQueueHarness {
    nonisolated(unsafe) static var ram: FuzzGuestRAM?

    public static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        let ram = unsafe Self.ram ?? FuzzGuestRAM()
        unsafe Self.ram = ram
        ram.clear()
        let memory = ram.memory
        var input = FuzzInput(data)

        var queue = SplitQueue(maxSize: 1 << (input.u8() % 16))
        if input.bool() { queue.size = input.u16() }
        let layout = input.u8()
        if layout & 0x80 == 0 {
            // A sane layout so most inputs get past validation: table, avail, used back to back.
            let n = UInt64(queue.size)
            queue.descriptorTable = 0x1000
            queue.availRing = (0x1000 + 16 * n + 1) & ~1
            queue.usedRing = (queue.availRing + 6 + 2 * n + 3) & ~3
        } else {
            queue.descriptorTable = FuzzGuestRAM.address(&input)
            queue.availRing = FuzzGuestRAM.address(&input)
            queue.usedRing = FuzzGuestRAM.address(&input)
        }
        queue.eventIndex = layout & 1 != 0
        queue.indirect = layout & 2 != 0
        queue.ready = true
        let valid: Bool
        do {
            try queue.validate(memory: memory)
            valid = true
        } catch {
            valid = false
        }
        // Devices never use a queue that failed validation (the transport refuses to enable it).
        guard valid else { return }

        var steps = 0
        while !input.isAtEnd && steps < 256 {
            steps += 1
            switch input.u8() % 10 {
            case 0, 1, 2:
                ram.scribble(&input)
            case 3:
                // A descriptor written in place: address, length, flags, next.
                let index = UInt64(input.below(Int(queue.size)))
                let table = input.bool() ? queue.descriptorTable : FuzzGuestRAM.address(&input)
                let base = table &+ 16 &* index
                try? memory.store(FuzzGuestRAM.address(&input), at: base)
                try? memory.store(input.u32() >> (input.u8() % 32), at: base &+ 8)
                try? memory.store(UInt16(input.u8() % 8), at: base &+ 12)
                try? memory.store(UInt16(truncatingIfNeeded: input.below(Int(queue.size) + 2)), at: base &+ 14)
            case 4:
                // The driver publishes a head and bumps avail.idx.
                let idx = (try? memory.load(UInt16.self, at: queue.availRing &+ 2)) ?? 0
                try? memory.store(UInt16(truncatingIfNeeded: input.below(Int(queue.size) + 1)), at: queue.availRing &+ 4 &+ 2 &* UInt64(idx % max(queue.size, 1)))
                try? memory.store(idx &+ UInt16(input.u8() % 3), at: queue.availRing &+ 2)
            case 5, 6:
                try pop(&queue, memory: memory, input: &input)
            case 7:
                try? queue.pushUsed(head: input.u16(), length: input.u32(), memory: memory)
            case 8:
                _ = queue.needsNotification(memory: memory)
                queue.setNotifications(input.bool(), memory: memory)
            default:
                if input.bool() {
                    queue.setPosition(nextAvail: input.u16(), nextUsed: input.u16())
                } else if let pending = try? queue.hasPending(memory: memory), pending {
                    let avail = (try? memory.load(UInt16.self, at: queue.availRing &+ 2)) ?? 0
                    try require(avail &- queue.nextAvail <= queue.size, "hasPending with avail.idx \(avail) next \(queue.nextAvail) size \(queue.size)")
                }
            }
        }
    }

    static func pop(_ queue: inout SplitQueue, memory: GuestMemory, input: inout FuzzInput) throws(FuzzInvariantViolation) {
        let before = queue.nextAvail
        let chain: DescriptorChain
        do {
            guard let c = try queue.pop(memory: memory) else {
                try require(queue.nextAvail == before, "pop returned nil but moved nextAvail")
                return
            }
            chain = c
        } catch {
            try require(queue.nextAvail == before, "a failed pop moved nextAvail")
            return
        }
        try require(queue.nextAvail == before &+ 1, "pop did not advance nextAvail by one")
        try require(chain.head < queue.size, "head \(chain.head) outside a queue of \(queue.size)")
        let count = chain.readable.count + chain.writable.count
        try require(count >= 1, "empty chain")
        try require(count <= Int(queue.size) + Int(SplitQueue.maxIndirectEntries), "\(count) descriptors")
        var total: UInt64 = 0
        for b in chain.readable + chain.writable {
            try require(memory.contains(b.address, length: UInt64(b.length)), "buffer 0x\(String(b.address, radix: 16)) + \(b.length) outside RAM")
            total += UInt64(b.length)
        }
        try require(total <= UInt64(UInt32.max), "chain of \(total) bytes")
        try require(chain.readableLength + chain.writableLength == total, "chain lengths disagree")

        // Use the chain as a device would: read some of it, write some of it.
        var reader = ChainReader(memory: memory, chain: chain)
        let readCount = min(Int(input.u16()), 4096)
        var scratch = [UInt8](repeating: 0, count: readCount)
        let fits = UInt64(readCount) <= reader.remaining
        let ok = unsafe scratch.withUnsafeMutableBytes { unsafe reader.read(into: $0) }
        try require(ok == fits, "read of \(readCount) with \(reader.remaining) left returned \(ok)")
        var writer = ChainWriter(memory: memory, chain: chain)
        let room = writer.remaining
        let payload = [UInt8](repeating: input.u8(), count: min(Int(input.u16()), 4096))
        let wrote = unsafe payload.withUnsafeBytes { unsafe writer.write($0) }
        try require(wrote == (UInt64(payload.count) <= room), "write of \(payload.count) with room \(room) returned \(wrote)")
        try require(UInt64(writer.written) == min(UInt64(payload.count), room), "wrote \(writer.written) of \(payload.count), room \(room)")
        if input.bool() {
            try? queue.pushUsed(head: chain.head, length: writer.written, memory: memory)
        }
    }
}
