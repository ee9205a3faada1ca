import ArchX86

/// Loads a multiboot v1 kernel: the a.out kludge when flags bit 16 is set (the address fields then
/// override any executable header, as the specification says), an ELF32 image otherwise.
///
/// Flags: bit 0 (page-aligned modules) and bit 1 (memory information) are always honoured. Bit 2
/// (video mode) is accepted with a warning and no video information, as QEMU does
/// (hw/i386/multiboot.c prints "multiboot knows VBE. we don't." and boots). Any other bit of 3–15
/// is a requirement Skiff does not know, and the specification says the loader must then fail.
enum MultibootLoader {
    static func load(_ image: [UInt8], header: MultibootHeader, memoryMap: MemoryMap) throws(LoaderError)
        -> KernelImage
    {
        let unknown = header.flags & MultibootHeader.unknownRequiredFlags
        guard unknown == 0 else {
            throw .unsupported(
                "multiboot header at \(hex(header.fileOffset)) requires features Skiff does not know (flags \(hex(header.flags)), unknown required bits \(hex(unknown)))"
            )
        }
        var warnings: [String] = []
        if header.flags & MultibootHeader.videoModeFlag != 0 {
            warnings.append(
                "multiboot kernel asks for a video mode (flags bit 2); Skiff has no framebuffer and passes no video information"
            )
        }
        let segments: [LoadSegment]
        let entry: UInt64
        let format: String
        if let fields = header.addresses {
            (segments, entry) = try aoutKludge(image, header: header, fields: fields)
            format = "multiboot a.out kludge"
        } else {
            guard ELFFile.hasMagic(image) else {
                throw .unsupported(
                    "multiboot header at \(hex(header.fileOffset)) has no address fields (flags bit 16) and the file is not ELF, so there is no way to know where to load it"
                )
            }
            let elf = try ELFFile(image)
            guard elf.elfClass == .elf32 else {
                throw .unsupported(
                    "multiboot ELF64 kernels are not supported (as in QEMU); link the kernel as ELF32 or set the address fields (flags bit 16)"
                )
            }
            segments = try elf.loadSegments(image)
            entry = elf.physicalEntry
            format = "multiboot ELF32"
        }
        try SegmentValidation.validate(segments, memoryMap: memoryMap, below4GiB: true, format: format)
        var kernel = try KernelImage(
            validatedSegments: segments, entry: entry, bootProtocol: .multiboot(header: header), format: format)
        kernel.warnings = warnings
        return kernel
    }

    /// Multiboot 0.6.96 §3.1.3: the file offset of the text is the header's offset minus
    /// (header_addr − load_addr); load_end_addr 0 means "to the end of the file"; bss_end_addr 0
    /// means "no bss".
    static func aoutKludge(_ image: [UInt8], header: MultibootHeader, fields: MultibootHeader.AddressFields)
        throws(LoaderError) -> ([LoadSegment], UInt64)
    {
        let headerAddress = UInt64(fields.headerAddress)
        let loadAddress = UInt64(fields.loadAddress)
        guard loadAddress <= headerAddress else {
            throw .malformed(
                "multiboot load_addr \(hex(loadAddress)) is above header_addr \(hex(headerAddress)); it must be at or below it"
            )
        }
        let headerDelta = headerAddress - loadAddress
        guard headerDelta <= header.fileOffset else {
            throw .malformed(
                "multiboot header_addr − load_addr is \(hex(headerDelta)) but the header is at file offset \(hex(header.fileOffset)), so the text would start before the file"
            )
        }
        let textOffset = header.fileOffset - headerDelta
        let loadSize: UInt64
        if fields.loadEndAddress == 0 {
            loadSize = UInt64(image.count) - textOffset
        } else {
            let loadEnd = UInt64(fields.loadEndAddress)
            guard loadEnd >= loadAddress else {
                throw .malformed("multiboot load_end_addr \(hex(loadEnd)) is below load_addr \(hex(loadAddress))")
            }
            loadSize = loadEnd - loadAddress
        }
        guard headerDelta + 12 <= loadSize else {
            throw .malformed(
                "multiboot header_addr \(hex(headerAddress)) is outside the loaded image [\(hex(loadAddress)), \(hex(loadAddress + loadSize))); the header must be loaded where header_addr says"
            )
        }
        let bytes = try image.bytes(
            at: textOffset, count: loadSize, "multiboot a.out kludge image (load_addr to load_end_addr)")
        let loadEnd = loadAddress + loadSize
        var zeroFill: UInt64 = 0
        if fields.bssEndAddress != 0 {
            let bssEnd = UInt64(fields.bssEndAddress)
            guard bssEnd >= loadEnd else {
                throw .malformed(
                    "multiboot bss_end_addr \(hex(bssEnd)) is below the end of the loaded image \(hex(loadEnd))")
            }
            zeroFill = bssEnd - loadEnd
        }
        let segment = LoadSegment(address: loadAddress, bytes: bytes, zeroFill: zeroFill)
        return ([segment], UInt64(fields.entryAddress))
    }
}
