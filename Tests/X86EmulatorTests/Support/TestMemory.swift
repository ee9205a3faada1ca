import X86Emulator

/// Flat guest RAM starting at guest-physical 0, with a bump allocator for page tables.
final class TestMemory: GuestPhysicalMemory {
    var bytes: [UInt8]
    /// Next free page for `allocatePage`.
    var nextFree: UInt64
    /// Number of `write` calls (to check that faulting instructions write nothing).
    var writes = 0

    init(size: Int = 8 << 20, firstFree: UInt64 = 0x10_0000) {
        bytes = [UInt8](repeating: 0, count: size)
        nextFree = firstFree
    }

    var size: UInt64 { UInt64(bytes.count) }

    func read(_ address: UInt64, _ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        guard address <= size, UInt64(buffer.count) <= size - address else { return false }
        let start = Int(address)
        for i in 0..<buffer.count { buffer[i] = bytes[start + i] }
        return true
    }

    func write(_ address: UInt64, _ buffer: UnsafeRawBufferPointer) -> Bool {
        guard address <= size, UInt64(buffer.count) <= size - address else { return false }
        writes += 1
        let start = Int(address)
        for i in 0..<buffer.count { bytes[start + i] = buffer[i] }
        return true
    }

    /// A zeroed, page-aligned page.
    func allocatePage() -> UInt64 {
        let p = nextFree
        nextFree += 0x1000
        for i in 0..<0x1000 { bytes[Int(p) + i] = 0 }
        return p
    }

    func store(_ bytes: [UInt8], at address: UInt64) {
        for (i, b) in bytes.enumerated() { self.bytes[Int(address) + i] = b }
    }

    func load(_ address: UInt64, count: Int) -> [UInt8] {
        Array(bytes[Int(address)..<(Int(address) + count)])
    }

    func store64(_ value: UInt64, at address: UInt64) {
        for i in 0..<8 { bytes[Int(address) + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }

    func load64(_ address: UInt64) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[Int(address) + i]) << (8 * UInt64(i)) }
        return v
    }

    func store32(_ value: UInt32, at address: UInt64) {
        for i in 0..<4 { bytes[Int(address) + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }

    func load32(_ address: UInt64) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[Int(address) + i]) << (8 * UInt32(i)) }
        return v
    }
}

/// MSRs in a dictionary and a settable TSC.
final class TestPlatform: EmulatorPlatform {
    var msrs: [UInt32: UInt64] = [:]
    var tsc: UInt64 = 0x1122_3344_5566_7788

    func readMSR(_ index: UInt32) -> UInt64? {
        if index == MSRIndex.tsc { return tsc }
        return msrs[index]
    }

    func writeMSR(_ index: UInt32, _ value: UInt64) -> Bool {
        msrs[index] = value
        return true
    }
}
