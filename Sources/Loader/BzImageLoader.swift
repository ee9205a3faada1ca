import ArchX86

/// Loads a bzImage per Documentation/arch/x86/boot.rst.
///
/// Placement: the protected-mode kernel (file offset `(setup_sects + 1) * 512` to the end of the
/// file) is copied to 0x100000 ("It should be loaded at address … 0x100000 for bzImage kernels"),
/// the standard address every loader uses; `pref_address` is not used as the load address. The
/// 64-bit entry is that address + 0x200 ("the start address of loaded 64-bit kernel plus 0x200").
///
/// The kernel then decompresses itself. A relocatable kernel runs from
/// `align_up(load address, kernel_alignment)`, but the x86 decompressor
/// (arch/x86/boot/compressed/head_64.S) never goes below `LOAD_PHYSICAL_ADDR`, which the header
/// publishes as `pref_address`; a non-relocatable kernel runs at `pref_address`. The kernel needs
/// `init_size` bytes from that runtime start, so the image's `end` (where an initrd may begin) is
/// the larger of the loaded file's end and `runtime start + init_size`, and all of it must be RAM.
enum BzImageLoader {
    static let loadAddress = Layout.highMemoryStart
    static let entryOffset: UInt64 = 0x200

    static func load(_ image: [UInt8], memoryMap: MemoryMap) throws(LoaderError) -> KernelImage {
        let header = try SetupHeader(parsing: image)
        guard header.loadFlags & SetupHeader.loadedHigh != 0 else {
            throw .unsupported(
                "zImage (loadflags.LOADED_HIGH clear): only bzImage kernels that load at 1 MiB are supported")
        }
        guard header.extendedLoadFlags & SetupHeader.kernel64 != 0 else {
            throw .unsupported(
                "bzImage has no 64-bit entry point (xloadflags \(hex(header.extendedLoadFlags)) lacks XLF_KERNEL_64); a 32-bit kernel cannot be booted"
            )
        }
        let kernelOffset = UInt64(header.protectedModeOffset)
        guard kernelOffset < UInt64(image.count) else {
            throw .truncated(
                "bzImage setup is \(header.setupSectors) sectors, so the protected-mode kernel starts at \(hex(kernelOffset)), but the file is only \(hex(image.count)) bytes long"
            )
        }
        let kernelSize = UInt64(image.count) - kernelOffset
        let declaredSize = UInt64(header.systemSize) * 16
        // syssize counts 16-byte paragraphs rounded up (the build tool rounds the payload
        // plus its CRC), so the file may end up to 15 bytes short of it.
        guard declaredSize <= kernelSize + 15 else {
            throw .truncated(
                "bzImage syssize says the protected-mode kernel is \(hex(declaredSize)) bytes but only \(hex(kernelSize)) follow the setup code"
            )
        }
        let bytes = try image.bytes(at: kernelOffset, count: kernelSize, "bzImage protected-mode kernel")
        let loaded = try AddressRange.checked(start: loadAddress, size: kernelSize, "bzImage kernel")

        let runtimeStart = try runtimeStart(header)
        guard runtimeStart >= loadAddress else {
            throw .reservedMemory(
                "bzImage would run at \(hex(runtimeStart)) (pref_address of a non-relocatable kernel), below \(hex(loadAddress)) where the VMM keeps its boot structures"
            )
        }
        let initEnd = try checkedAdd(runtimeStart, UInt64(header.initSize), "bzImage runtime start + init_size")
        let reserved = AddressRange(start: loadAddress, clampedEnd: max(loaded.end, initEnd))
        do {
            try SegmentValidation.checkInRAM(reserved, what: "bzImage kernel", memoryMap: memoryMap)
        } catch {
            throw .doesNotFit(
                "bzImage kernel needs \(reserved) (loaded at \(hex(loadAddress)), decompressing at \(hex(runtimeStart)) with init_size \(hex(header.initSize))) but low RAM ends at \(hex(memoryMap.lowRAMEnd))"
            )
        }

        return KernelImage(
            segments: [LoadSegment(address: loadAddress, bytes: bytes)],
            entry: loadAddress + entryOffset,
            bootProtocol: .linux64(setupHeader: header),
            end: reserved.end,
            warnings: [])
    }

    /// Where the kernel decompresses to (see the type's comment).
    static func runtimeStart(_ header: SetupHeader) throws(LoaderError) -> UInt64 {
        guard header.isRelocatable else { return header.preferredAddress }
        let alignment = UInt64(header.kernelAlignment)
        guard isPowerOfTwo(alignment) else {
            throw .malformed("bzImage kernel_alignment \(hex(alignment)) is not a power of two")
        }
        guard let aligned = alignUp(loadAddress, alignment) else {
            throw .overflow("bzImage load address aligned to kernel_alignment \(hex(alignment)) overflows")
        }
        return max(aligned, header.preferredAddress)
    }
}
