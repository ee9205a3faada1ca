import ArchX86

/// Where the initrd goes: the highest 4 KiB-aligned address at which it ends at or below the
/// kernel's limit and starts at or above the kernel's end.
///
/// The limit is `min(initrd_addr_max + 1, low RAM end)` for a bzImage (boot.rst: initrd_addr_max
/// is "the address of the highest safe byte", 0x37FFFFFF before protocol 2.03) and the low RAM end
/// (below 4 GiB) for PVH, whose entry runs in 32-bit mode.
public enum InitrdPlacement {
    /// One past the highest byte the initrd may occupy for `kernel`.
    public static func limit(for kernel: KernelImage, memoryMap: MemoryMap) -> UInt64 {
        let lowRAM = min(memoryMap.lowRAMEnd, SegmentValidation.fourGiB)
        switch kernel.bootProtocol {
        case .linux64(let header):
            return min(header.initrdHighestAddress + 1, lowRAM)
        case .pvh, .multiboot:
            return lowRAM
        }
    }

    /// The highest 4 KiB-aligned start for `size` bytes ending at or below `limit` and starting at
    /// or above `lowest` (rounded up to 4 KiB).
    public static func highestAddress(size: UInt64, lowest: UInt64, limit: UInt64) throws(LoaderError) -> UInt64 {
        guard size > 0 else { throw .doesNotFit("initrd is empty") }
        guard let floor = alignUp(lowest, pageSize) else {
            throw .overflow("initrd lower bound \(hex(lowest)) rounded up to 4 KiB overflows")
        }
        guard size <= limit, alignDown(limit - size, pageSize) >= floor else {
            throw .doesNotFit(
                "initrd of \(hex(size)) bytes does not fit between the kernel's end \(hex(floor)) and the initrd limit \(hex(limit)) (\(hex(limit > floor ? limit - floor : 0)) bytes free)"
            )
        }
        return alignDown(limit - size, pageSize)
    }
}
