#if canImport(Glibc)
import Glibc
#endif
import GuestMemory
import Virtio

/// virtio-balloon requests (`VirtioBalloon`'s queue service): inflate and deflate arrays of page
/// numbers, statistics buffers and free-page reports of any shape, with the host changing the
/// target and asking for statistics in between.
///
/// Checks: the device changes guest memory only by discarding whole pages (which then read as
/// zeros) and by completing requests in the used rings; `actual` is what the guest wrote.
public enum VirtioBalloonHarness {
    nonisolated(unsafe) static var ram: FuzzGuestRAM?

    public static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        let ram = unsafe Self.ram ?? FuzzGuestRAM()
        unsafe Self.ram = ram
        ram.clear()
        let memory = ram.memory
        var input = FuzzInput(data)
        let flags = input.u8()
        let options = VirtioBalloon.Options(statistics: flags & 1 == 0, freePageReporting: flags & 2 == 0, deflateOnOOM: flags & 4 != 0)
        let balloon = VirtioBalloon(guestMemorySize: memory.totalSize, options: options)
        var features = balloon.deviceFeatures & UInt64(input.u8()) | VirtioFeature.version1
        if flags & 8 != 0 { features |= VirtioFeature.indirectDescriptors }
        if flags & 16 != 0 { features |= VirtioFeature.eventIndex }
        let queueCount = balloon.queueMaxSizes.count
        var driver = FuzzDriver(memory: memory, queues: queueCount)
        let interrupt = FuzzInterrupt()
        let activation = try fuzzActivation(memory: memory, driver: driver, queues: queueCount, features: features, interrupt: interrupt)
        do {
            try balloon.activate(activation)
        } catch {
            throw FuzzInvariantViolation("activation failed: \(error)")
        }
        defer { balloon.reset() }
        // Some memory that is not zero, to see what the device changes.
        for page in stride(from: UInt64(0x2_0000), to: 0x4_0000, by: 0x1000) { try? memory.store(UInt64(page | 0xa5), at: page + 8) }

        var steps = 0
        while !input.isAtEnd && steps < 64 {
            steps += 1
            let q = input.below(queueCount)
            switch input.u8() % 8 {
            case 0:
                ram.scribble(&input, sparing: FuzzDriver.isUsedRing)
            case 1, 2:
                // Page numbers, mostly of RAM pages in the data area, sometimes anything.
                var pfns: [UInt8] = []
                for _ in 0..<input.below(24) {
                    let pfn: UInt32 = input.u8() & 7 == 0 ? input.u32() : 0x20 + UInt32(input.below(0x20))
                    pfns += (0..<4).map { UInt8(truncatingIfNeeded: pfn >> (8 * $0)) }
                }
                let parts = [FuzzDriver.Part(address: FuzzDriver.dataStart + 0x1_0000 + UInt64(input.below(64)) * 64,
                                             length: input.u8() & 7 == 0 ? FuzzDriver.bufferLength(&input) : UInt32(pfns.count), writable: false)]
                driver.publish(queue: q, parts: parts, contents: pfns, indirect: input.u8() & 3 == 0, input: &input)
            case 3:
                // A free-page report or statistics buffer: buffers that may or may not be whole pages.
                var parts = FuzzDriver.randomParts(&input, maxCount: 4)
                for i in parts.indices where input.bool() {
                    parts[i].address = FuzzDriver.dataStart + UInt64(input.below(0x20)) * 0x1000
                    parts[i].length = UInt32(1 + input.below(4)) * 0x1000
                }
                driver.publish(queue: q, parts: parts, contents: input.bytes(Int(input.u8())), indirect: input.u8() & 3 == 0, input: &input)
            case 4:
                try? balloon.setTarget(pages: input.bool() ? UInt64(input.u16()) : input.u64())
            case 5:
                _ = balloon.requestStatistics()
            case 6:
                var value = input.u64()
                let offset = input.below(12)
                unsafe withUnsafeBytes(of: &value) { unsafe balloon.writeConfig(offset: offset, from: UnsafeRawBufferPointer(rebasing: $0[0..<(1 + offset % 8)])) }
                var out = [UInt8](repeating: 0, count: 8)
                unsafe out.withUnsafeMutableBytes { unsafe balloon.readConfig(offset: input.below(16), into: $0) }
            default:
                let before = snapshot(memory)
                balloon.serve(queue: q)
                try checkOnlyDiscards(before: before, memory: memory)
            }
        }
        let before = snapshot(memory)
        for q in 0..<queueCount { balloon.serve(queue: q) }
        try checkOnlyDiscards(before: before, memory: memory)
    }

    static func snapshot(_ memory: GuestMemory) -> [[UInt8]] {
        [(try? memory.readBytes(at: FuzzGuestRAM.low.address, count: Int(FuzzGuestRAM.low.size))) ?? [],
         (try? memory.readBytes(at: FuzzGuestRAM.high.address, count: Int(FuzzGuestRAM.high.size))) ?? []]
    }

    static let zeroPage = [UInt8](repeating: 0, count: 0x1000)

    /// Whether `a[at ..< at + length]` equals `b[otherAt ..< otherAt + length]` (memcmp; ranges in bounds).
    static func same(_ a: [UInt8], _ b: [UInt8], at: Int, length: Int, otherAt: Int? = nil) -> Bool {
        unsafe a.withUnsafeBytes { x in
            unsafe b.withUnsafeBytes { y in
                guard let p = x.baseAddress, let q = y.baseAddress else { return length == 0 }
                return unsafe memcmp(p + at, q + (otherAt ?? at), length) == 0
            }
        }
    }

    /// Outside the used rings, a page the device changed is now all zeros. (Pages are compared
    /// with memcmp: byte loops would be instrumented comparison by comparison.)
    static func checkOnlyDiscards(before: [[UInt8]], memory: GuestMemory) throws(FuzzInvariantViolation) {
        let after = snapshot(memory)
        for (region, base) in [(0, FuzzGuestRAM.low.address), (1, FuzzGuestRAM.high.address)] {
            let old = before[region], new = after[region]
            guard old.count == new.count else { throw FuzzInvariantViolation("guest RAM became unreadable") }
            var page = 0
            while page < old.count {
                let length = min(0x1000, old.count - page)
                let address = base + UInt64(page)
                if !same(old, new, at: page, length: length) && !FuzzDriver.isUsedRing(address, 0x1000) {
                    try require(same(new, zeroPage, at: page, length: length, otherAt: 0), "page 0x\(String(address, radix: 16)) changed but is not all zeros")
                }
                page += length
            }
        }
    }
}
