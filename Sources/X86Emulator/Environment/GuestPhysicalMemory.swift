/// Guest-physical memory as the emulator sees it: page-table entries, instruction bytes and data
/// operands are read and written through this. Both calls report failure (an address outside
/// guest RAM, an MMIO hole) with `false`; the emulator then stops with `.unsupported`.
public protocol GuestPhysicalMemory {
    /// Copies `buffer.count` bytes at guest-physical `address` into `buffer`.
    func read(_ address: UInt64, _ buffer: UnsafeMutableRawBufferPointer) -> Bool
    /// Copies `buffer` to guest-physical `address`.
    func write(_ address: UInt64, _ buffer: UnsafeRawBufferPointer) -> Bool
    /// Atomically ORs `bits` into the byte at `address`. Used to set the accessed and dirty bits
    /// of page-table entries (they live in the low byte of every entry).
    ///
    /// The default implementation reads and writes the byte non-atomically; a VMM whose guests run
    /// several vCPUs should implement it with an atomic OR on the host mapping.
    func atomicOr(_ address: UInt64, _ bits: UInt8) -> Bool
}

extension GuestPhysicalMemory {
    public func atomicOr(_ address: UInt64, _ bits: UInt8) -> Bool {
        var byte: UInt8 = 0
        let ok = unsafe withUnsafeMutableBytes(of: &byte) { unsafe read(address, $0) }
        guard ok else { return false }
        if byte & bits == bits { return true }
        byte |= bits
        return unsafe withUnsafeBytes(of: &byte) { unsafe write(address, $0) }
    }

    /// Reads a little-endian 64-bit value.
    func readUInt64(_ address: UInt64) -> UInt64? {
        var v: UInt64 = 0
        let ok = unsafe withUnsafeMutableBytes(of: &v) { unsafe read(address, $0) }
        return ok ? UInt64(littleEndian: v) : nil
    }

    /// Reads a little-endian 32-bit value.
    func readUInt32(_ address: UInt64) -> UInt32? {
        var v: UInt32 = 0
        let ok = unsafe withUnsafeMutableBytes(of: &v) { unsafe read(address, $0) }
        return ok ? UInt32(littleEndian: v) : nil
    }
}
