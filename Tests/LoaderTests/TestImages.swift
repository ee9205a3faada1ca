import ArchX86

@testable import Loader

// Builders for synthetic kernel images. Offsets are written out from the format documents
// (Linux Documentation/arch/x86/boot.rst, the System V ELF gABI, Multiboot 0.6.96), not taken
// from the Loader's constants, so the tests check the Loader against the documents.

func putLE<T: FixedWidthInteger & UnsignedInteger>(_ value: T, into bytes: inout [UInt8], at offset: Int) {
    for i in 0..<MemoryLayout<T>.size {
        bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i))
    }
}

func readLE<T: FixedWidthInteger & UnsignedInteger>(_: T.Type, _ bytes: [UInt8], at offset: Int) -> T {
    var value: T = 0
    for i in 0..<MemoryLayout<T>.size {
        value |= T(bytes[offset + i]) << (8 * i)
    }
    return value
}

/// Recognisable filler bytes.
func pattern(_ count: Int, seed: UInt8 = 0x5A) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7) ^ seed }
}

func memoryMap(_ size: UInt64) throws -> MemoryMap {
    try MemoryMap(ramSize: size)
}

/// A minimal bzImage: boot sector + setup sectors with the setup header, then the
/// "protected-mode kernel" bytes.
struct BzImageBuilder {
    var setupSectors: UInt8 = 4
    var version: UInt16 = 0x020F
    var loadFlags: UInt8 = 0x01
    var xloadFlags: UInt16 = 0x0003
    var kernelSize = 0x3000
    var initSize: UInt32 = 0x0040_0000
    var preferredAddress: UInt64 = 0x0100_0000
    var relocatable: UInt8 = 1
    var kernelAlignment: UInt32 = 0x0020_0000
    var commandLineSize: UInt32 = 2047
    var initrdAddressMax: UInt32 = 0x7FFF_FFFF
    var jumpOffset: UInt8 = 0x6A  // header ends at 0x202 + 0x6A = 0x26C, as in Linux 6.1
    var syssize: UInt32?  // default: kernelSize / 16 rounded up
    var kernelVersionPointer: UInt16 = 0
    var kernelVersion = ""

    var setupBytes: Int { (Int(setupSectors == 0 ? 4 : setupSectors) + 1) * 512 }

    func build() -> [UInt8] {
        var image = [UInt8](repeating: 0, count: setupBytes)
        image[0x1F1] = setupSectors  // setup_sects
        putLE(syssize ?? UInt32((kernelSize + 15) / 16), into: &image, at: 0x1F4)  // syssize
        putLE(UInt16(0xAA55), into: &image, at: 0x1FE)  // boot_flag
        image[0x200] = 0xEB  // jump
        image[0x201] = jumpOffset
        image[0x202] = UInt8(ascii: "H")  // header "HdrS"
        image[0x203] = UInt8(ascii: "d")
        image[0x204] = UInt8(ascii: "r")
        image[0x205] = UInt8(ascii: "S")
        putLE(version, into: &image, at: 0x206)  // version
        putLE(kernelVersionPointer, into: &image, at: 0x20E)  // kernel_version
        image[0x211] = loadFlags  // loadflags
        putLE(UInt32(0x0010_0000), into: &image, at: 0x214)  // code32_start
        putLE(initrdAddressMax, into: &image, at: 0x22C)  // initrd_addr_max
        putLE(kernelAlignment, into: &image, at: 0x230)  // kernel_alignment
        image[0x234] = relocatable  // relocatable_kernel
        image[0x235] = 21  // min_alignment
        putLE(xloadFlags, into: &image, at: 0x236)  // xloadflags
        putLE(commandLineSize, into: &image, at: 0x238)  // cmdline_size
        putLE(preferredAddress, into: &image, at: 0x258)  // pref_address
        putLE(initSize, into: &image, at: 0x260)  // init_size
        if kernelVersionPointer != 0 {
            let at = Int(kernelVersionPointer) + 0x200
            for (i, byte) in kernelVersion.utf8.enumerated() { image[at + i] = byte }
        }
        return image + pattern(kernelSize)
    }
}

/// A minimal ELF executable: header, program headers, segment data, optional note data and
/// optional section headers.
struct ELFBuilder {
    struct Segment {
        var physicalAddress: UInt64
        var virtualAddress: UInt64
        var bytes: [UInt8]
        var memorySize: UInt64
    }

    struct Note {
        var name: [UInt8]  // without padding; include the NUL if wanted
        var type: UInt32
        var descriptor: [UInt8]
    }

    var is64 = true
    var machine: UInt16?  // default: 62 for ELF64, 3 for ELF32
    var type: UInt16 = 2
    var entry: UInt64 = 0x0100_0000
    var segments: [Segment] = []
    var notes: [Note] = []
    var noteAlignment: UInt64 = 4
    /// Put the notes in an SHT_NOTE section instead of a PT_NOTE segment.
    var notesInSectionOnly = false
    /// Extra bytes after the header, e.g. to hold a multiboot header early in the file.
    var prefix: [UInt8] = []

    var headerSize: Int { is64 ? 64 : 52 }
    var programHeaderSize: Int { is64 ? 56 : 32 }
    var programHeaderCount: Int { segments.count + (notes.isEmpty || notesInSectionOnly ? 0 : 1) }
    var programHeaderOffset: Int { headerSize + prefix.count }

    static func noteBytes(_ notes: [Note], alignment: Int) -> [UInt8] {
        var out: [UInt8] = []
        func pad() { while out.count % alignment != 0 { out.append(0) } }
        for note in notes {
            var header = [UInt8](repeating: 0, count: 12)
            putLE(UInt32(note.name.count), into: &header, at: 0)
            putLE(UInt32(note.descriptor.count), into: &header, at: 4)
            putLE(note.type, into: &header, at: 8)
            out += header + note.name
            pad()
            out += note.descriptor
            pad()
        }
        return out
    }

    func build() -> [UInt8] {
        var image = [UInt8](repeating: 0, count: headerSize)
        image[0] = 0x7F
        image[1] = UInt8(ascii: "E")
        image[2] = UInt8(ascii: "L")
        image[3] = UInt8(ascii: "F")
        image[4] = is64 ? 2 : 1  // EI_CLASS
        image[5] = 1  // EI_DATA: little-endian
        image[6] = 1  // EI_VERSION
        putLE(type, into: &image, at: 16)  // e_type
        putLE(machine ?? (is64 ? 62 : 3), into: &image, at: 18)  // e_machine
        putLE(UInt32(1), into: &image, at: 20)  // e_version
        image += prefix

        let tableSize = programHeaderCount * programHeaderSize
        var data: [UInt8] = []
        var dataOffset = programHeaderOffset + tableSize
        var table: [UInt8] = []
        func align(_ n: Int) { while (dataOffset + data.count) % n != 0 { data.append(0) } }
        for segment in segments {
            align(16)
            let offset = UInt64(dataOffset + data.count)
            data += segment.bytes
            table += programHeader(
                type: 1, offset: offset, vaddr: segment.virtualAddress, paddr: segment.physicalAddress,
                filesz: UInt64(segment.bytes.count), memsz: segment.memorySize, align: 16)
        }
        var noteOffset: UInt64 = 0
        var noteSize: UInt64 = 0
        if !notes.isEmpty {
            align(Int(noteAlignment))
            noteOffset = UInt64(dataOffset + data.count)
            let bytes = Self.noteBytes(notes, alignment: Int(noteAlignment))
            noteSize = UInt64(bytes.count)
            data += bytes
            if !notesInSectionOnly {
                table += programHeader(
                    type: 4, offset: noteOffset, vaddr: 0, paddr: 0, filesz: noteSize, memsz: noteSize,
                    align: noteAlignment)
            }
        }
        image += table + data
        dataOffset = image.count

        var sectionOffset = 0
        var sectionCount: UInt16 = 0
        if notesInSectionOnly && !notes.isEmpty {
            while image.count % 8 != 0 { image.append(0) }
            sectionOffset = image.count
            sectionCount = 2
            image += sectionHeader(type: 0, offset: 0, size: 0, align: 0)  // SHT_NULL
            image += sectionHeader(type: 7, offset: noteOffset, size: noteSize, align: noteAlignment)  // SHT_NOTE
        }

        if is64 {
            putLE(entry, into: &image, at: 24)  // e_entry
            putLE(UInt64(programHeaderOffset), into: &image, at: 32)  // e_phoff
            putLE(UInt64(sectionOffset), into: &image, at: 40)  // e_shoff
            putLE(UInt16(64), into: &image, at: 52)  // e_ehsize
            putLE(UInt16(56), into: &image, at: 54)  // e_phentsize
            putLE(UInt16(programHeaderCount), into: &image, at: 56)  // e_phnum
            putLE(UInt16(64), into: &image, at: 58)  // e_shentsize
            putLE(sectionCount, into: &image, at: 60)  // e_shnum
        } else {
            putLE(UInt32(entry), into: &image, at: 24)  // e_entry
            putLE(UInt32(programHeaderOffset), into: &image, at: 28)  // e_phoff
            putLE(UInt32(sectionOffset), into: &image, at: 32)  // e_shoff
            putLE(UInt16(52), into: &image, at: 40)  // e_ehsize
            putLE(UInt16(32), into: &image, at: 42)  // e_phentsize
            putLE(UInt16(programHeaderCount), into: &image, at: 44)  // e_phnum
            putLE(UInt16(40), into: &image, at: 46)  // e_shentsize
            putLE(sectionCount, into: &image, at: 48)  // e_shnum
        }
        return image
    }

    func programHeader(
        type: UInt32, offset: UInt64, vaddr: UInt64, paddr: UInt64, filesz: UInt64, memsz: UInt64, align: UInt64
    )
        -> [UInt8]
    {
        var h = [UInt8](repeating: 0, count: programHeaderSize)
        if is64 {
            putLE(type, into: &h, at: 0)  // p_type
            putLE(UInt32(5), into: &h, at: 4)  // p_flags
            putLE(offset, into: &h, at: 8)  // p_offset
            putLE(vaddr, into: &h, at: 16)  // p_vaddr
            putLE(paddr, into: &h, at: 24)  // p_paddr
            putLE(filesz, into: &h, at: 32)  // p_filesz
            putLE(memsz, into: &h, at: 40)  // p_memsz
            putLE(align, into: &h, at: 48)  // p_align
        } else {
            putLE(type, into: &h, at: 0)  // p_type
            putLE(UInt32(offset), into: &h, at: 4)  // p_offset
            putLE(UInt32(truncatingIfNeeded: vaddr), into: &h, at: 8)  // p_vaddr
            putLE(UInt32(truncatingIfNeeded: paddr), into: &h, at: 12)  // p_paddr
            putLE(UInt32(truncatingIfNeeded: filesz), into: &h, at: 16)  // p_filesz
            putLE(UInt32(truncatingIfNeeded: memsz), into: &h, at: 20)  // p_memsz
            putLE(UInt32(5), into: &h, at: 24)  // p_flags
            putLE(UInt32(align), into: &h, at: 28)  // p_align
        }
        return h
    }

    func sectionHeader(type: UInt32, offset: UInt64, size: UInt64, align: UInt64) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: is64 ? 64 : 40)
        putLE(type, into: &h, at: 4)  // sh_type
        if is64 {
            putLE(offset, into: &h, at: 24)  // sh_offset
            putLE(size, into: &h, at: 32)  // sh_size
            putLE(align, into: &h, at: 48)  // sh_addralign
        } else {
            putLE(UInt32(offset), into: &h, at: 16)  // sh_offset
            putLE(UInt32(size), into: &h, at: 20)  // sh_size
            putLE(UInt32(align), into: &h, at: 32)  // sh_addralign
        }
        return h
    }

    /// File offset of program header `index`.
    func programHeaderAt(_ index: Int) -> Int { programHeaderOffset + index * programHeaderSize }

    /// The PVH note: name "Xen\0", type 18, entry as a 4- or 8-byte descriptor.
    static func pvhNote(entry: UInt64, descriptorSize: Int = 8) -> Note {
        var d = [UInt8](repeating: 0, count: descriptorSize)
        for i in 0..<min(descriptorSize, 8) { d[i] = UInt8(truncatingIfNeeded: entry >> (8 * i)) }
        return Note(name: Array("Xen".utf8) + [0], type: 18, descriptor: d)
    }

    /// A typical PVH kernel: text at 16 MiB, data with bss, a PVH note.
    static func pvhKernel(is64: Bool = true, entry: UInt64 = 0x0100_0040, descriptorSize: Int = 8) -> ELFBuilder {
        var b = ELFBuilder()
        b.is64 = is64
        b.entry = is64 ? 0xFFFF_FFFF_8100_0000 : 0xC100_0000
        b.segments = [
            Segment(physicalAddress: 0x0100_0000, virtualAddress: b.entry, bytes: pattern(0x800), memorySize: 0x800),
            Segment(
                physicalAddress: 0x0120_0000, virtualAddress: b.entry &+ 0x20_0000, bytes: pattern(0x200, seed: 3),
                memorySize: 0x5000),
        ]
        b.notes = [
            Note(name: Array("Linux".utf8) + [0], type: 6, descriptor: Array("linux\0".utf8)),
            pvhNote(entry: entry, descriptorSize: descriptorSize),
        ]
        return b
    }
}

/// A multiboot v1 header: magic, flags, checksum, then (flags bit 16) the address fields and
/// (flags bit 2) the video fields.
func multibootHeader(
    flags: UInt32, headerAddress: UInt32 = 0, loadAddress: UInt32 = 0, loadEndAddress: UInt32 = 0,
    bssEndAddress: UInt32 = 0, entryAddress: UInt32 = 0, checksumDelta: UInt32 = 0
) -> [UInt8] {
    var h = [UInt8](repeating: 0, count: 48)
    putLE(UInt32(0x1BAD_B002), into: &h, at: 0)  // magic
    putLE(flags, into: &h, at: 4)  // flags
    putLE((0 &- (0x1BAD_B002 &+ flags)) &+ checksumDelta, into: &h, at: 8)  // checksum
    putLE(headerAddress, into: &h, at: 12)  // header_addr
    putLE(loadAddress, into: &h, at: 16)  // load_addr
    putLE(loadEndAddress, into: &h, at: 20)  // load_end_addr
    putLE(bssEndAddress, into: &h, at: 24)  // bss_end_addr
    putLE(entryAddress, into: &h, at: 28)  // entry_addr
    return h
}

/// An a.out-kludge multiboot kernel: `headerOffset` bytes of code, the header, more code; loaded
/// from file offset 0 at 1 MiB, with 0x2000 bytes of bss and the entry 0x10 bytes in.
struct AoutKludgeBuilder {
    var headerOffset = 0x40
    var flags: UInt32 = 0x0001_0003
    var loadAddress: UInt32 = 0x0010_0000
    var headerAddress: UInt32?  // default: loadAddress + headerOffset
    var loadEndAddress: UInt32?  // default: loadAddress + file size
    var bssEndAddress: UInt32?  // default: load end + 0x2000
    var entryAddress: UInt32?  // default: loadAddress + 0x10
    var bodySize = 0x1000
    var checksumDelta: UInt32 = 0

    var fileSize: Int { bodySize }

    func build() -> [UInt8] {
        var image = pattern(bodySize, seed: 0x33)
        let loadEnd = loadEndAddress ?? (loadAddress + UInt32(bodySize))
        let header = multibootHeader(
            flags: flags, headerAddress: headerAddress ?? (loadAddress + UInt32(headerOffset)),
            loadAddress: loadAddress,
            loadEndAddress: loadEnd, bssEndAddress: bssEndAddress ?? (loadEnd &+ 0x2000),
            entryAddress: entryAddress ?? (loadAddress + 0x10), checksumDelta: checksumDelta)
        if image.count < headerOffset + header.count {
            image += [UInt8](repeating: 0, count: headerOffset + header.count - image.count)
        }
        for (i, byte) in header.enumerated() { image[headerOffset + i] = byte }
        return image
    }
}

/// Runs `body` and returns the LoaderError it throws, or nil when it does not throw.
func loaderError<T>(_ body: () throws(LoaderError) -> T) -> LoaderError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

extension LoaderError {
    /// The case name, for `#expect(error?.kind == "truncated")`.
    var kind: String {
        switch self {
        case .truncated: return "truncated"
        case .badMagic: return "badMagic"
        case .unsupported: return "unsupported"
        case .malformed: return "malformed"
        case .overflow: return "overflow"
        case .unrecognizedFormat: return "unrecognizedFormat"
        case .outsideRAM: return "outsideRAM"
        case .reservedMemory: return "reservedMemory"
        case .overlap: return "overlap"
        case .invalidCommandLine: return "invalidCommandLine"
        case .doesNotFit: return "doesNotFit"
        case .tooManyEntries: return "tooManyEntries"
        }
    }
}
