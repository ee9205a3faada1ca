import ArchX86

/// A parsed kernel: what to copy where, where to enter, and how.
public struct KernelImage: Sendable {
    /// Bytes to copy into guest RAM, each inside RAM, at or above 1 MiB, none overlapping.
    public var segments: [LoadSegment]
    /// Guest-physical entry point (64-bit entry for bzImage, 32-bit for PVH and multiboot).
    public var entry: UInt64
    /// How to enter the kernel.
    public var bootProtocol: BootProtocol
    /// One past the highest byte the kernel uses: loaded bytes and zero fill, and for a bzImage the
    /// decompression area up to its runtime start + `init_size`. Initrd and modules go above it.
    public var end: UInt64
    /// Things the loader accepted but the user may want to know (e.g. an ignored video request).
    public var warnings: [String]
    /// The guest OS a PVH kernel names in its Xen GUEST_OS note ("linux" for Linux).
    public var guestOS: String?

    /// Whether this is a Linux kernel: any bzImage, or a PVH ELF whose GUEST_OS note says "linux".
    public var isLinux: Bool {
        switch bootProtocol {
        case .linux64: return true
        case .pvh: return guestOS?.lowercased() == "linux"
        case .multiboot: return false
        }
    }

    init(segments: [LoadSegment], entry: UInt64, bootProtocol: BootProtocol, end: UInt64, warnings: [String]) {
        self.segments = segments
        self.entry = entry
        self.bootProtocol = bootProtocol
        self.end = end
        self.warnings = warnings
    }

    /// For ELF and a.out images whose segments passed `SegmentValidation`: checks that the entry
    /// lies inside a segment and takes `end` from the highest segment.
    init(validatedSegments segments: [LoadSegment], entry: UInt64, bootProtocol: BootProtocol, format: String)
        throws(LoaderError)
    {
        let ranges = segments.compactMap(\.range)
        guard ranges.contains(where: { $0.contains(entry) }) else {
            throw .malformed(
                "\(format) entry point \(hex(entry)) is not inside any loaded segment (\(ranges.map(\.description).joined(separator: ", ")))"
            )
        }
        self.init(
            segments: segments, entry: entry, bootProtocol: bootProtocol, end: ranges.map(\.end).max() ?? entry,
            warnings: [])
    }

    /// From the lowest segment address to `end`: memory the kernel owns while it boots.
    public var reservedRange: AddressRange {
        let start = segments.map(\.address).min() ?? end
        return AddressRange(start: min(start, end), clampedEnd: end)
    }

    /// Parses a kernel image and checks where its segments land in `memoryMap`.
    ///
    /// `.automatic` tries, in order: an ELF with a PVH note (→ PVH), a multiboot v1 header in the
    /// first 8192 bytes (→ multiboot), "HdrS" at 0x202 (→ bzImage); anything else is refused with a
    /// message naming what the file looks like. The other formats force one loader.
    public static func parse(_ image: [UInt8], memoryMap: MemoryMap, format: KernelFormat = .automatic)
        throws(LoaderError) -> KernelImage
    {
        switch format {
        case .bzImage:
            return try BzImageLoader.load(image, memoryMap: memoryMap)
        case .pvh:
            let elf = try ELFFile(image)
            guard let entry = try PVHNote.entry(in: elf, image: image) else {
                throw .unsupported(
                    "\(elf.elfClass.name) kernel has no PVH note (XEN_ELFNOTE_PHYS32_ENTRY, type 18, name \"Xen\")")
            }
            return try PVHLoader.load(image, elf: elf, entry: entry, memoryMap: memoryMap)
        case .multiboot:
            guard let header = try MultibootHeader.find(in: image) else {
                throw .badMagic(
                    "no multiboot header (magic 0x1badb002, 4-byte aligned, valid checksum) in the first 8192 bytes")
            }
            return try MultibootLoader.load(image, header: header, memoryMap: memoryMap)
        case .automatic:
            var elfDescription: String?
            if ELFFile.hasMagic(image) {
                let elf = try ELFFile(image)
                if let entry = try PVHNote.entry(in: elf, image: image) {
                    return try PVHLoader.load(image, elf: elf, entry: entry, memoryMap: memoryMap)
                }
                elfDescription = "\(elf.elfClass.name) without a PVH note or multiboot header"
            }
            if let header = try MultibootHeader.find(in: image) {
                return try MultibootLoader.load(image, header: header, memoryMap: memoryMap)
            }
            if SetupHeader.hasSignature(image) {
                return try BzImageLoader.load(image, memoryMap: memoryMap)
            }
            throw .unrecognizedFormat(
                "not a bzImage, PVH ELF or multiboot kernel (\(elfDescription ?? describe(image)))")
        }
    }

    /// What an unrecognised file looks like, for the error message.
    static func describe(_ image: [UInt8]) -> String {
        if image.isEmpty { return "the file is empty" }
        if image.count >= 2, image[0] == 0x4D, image[1] == 0x5A {
            return "a PE/DOS 'MZ' image without the bzImage 'HdrS' signature at 0x202"
        }
        if image.count >= 2, image[0] == 0x1F, image[1] == 0x8B { return "gzip-compressed data" }
        if image.count >= 4, image[0] == 0x28, image[1] == 0xB5, image[2] == 0x2F, image[3] == 0xFD {
            return "zstd-compressed data"
        }
        if image.count >= 4, image[0] == 0x02, image[1] == 0x21, image[2] == 0x4C, image[3] == 0x18 {
            return "LZ4-compressed data (a bare kernel payload?)"
        }
        let head = image.prefix(8).map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }
        return "unknown data starting with \(head.joined(separator: " ")), \(image.count) bytes"
    }
}
