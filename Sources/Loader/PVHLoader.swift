import ArchX86

/// Loads an ELF kernel with a PVH note: `PT_LOAD` segments at `p_paddr`, entry from the note.
enum PVHLoader {
    static func load(_ image: [UInt8], elf: ELFFile, entry: UInt64, memoryMap: MemoryMap) throws(LoaderError)
        -> KernelImage
    {
        let segments = try elf.loadSegments(image)
        let format = "PVH \(elf.elfClass.name)"
        try SegmentValidation.validate(segments, memoryMap: memoryMap, below4GiB: true, format: format)
        var kernel = try KernelImage(
            validatedSegments: segments, entry: entry, bootProtocol: .pvh(phys32Entry: entry), format: format)
        kernel.guestOS = PVHNote.guestOS(in: elf, image: image)
        return kernel
    }
}
