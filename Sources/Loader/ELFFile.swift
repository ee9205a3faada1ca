/// The parts of an ELF executable that the loaders need, read from untrusted bytes.
///
/// Accepts little-endian ELF32 for i386 (`EM_386` = 3) and ELF64 for x86-64 (`EM_X86_64` = 62),
/// `ET_EXEC` only. Field offsets follow the System V gABI (`Elf32_Ehdr`/`Elf64_Ehdr`,
/// `Elf32_Phdr`/`Elf64_Phdr`, `Elf32_Shdr`/`Elf64_Shdr`).
struct ELFFile {
    enum Class: Equatable {
        case elf32, elf64

        var name: String { self == .elf32 ? "ELF32" : "ELF64" }
    }

    struct ProgramHeader: Equatable {
        var type: UInt32
        var offset: UInt64
        var virtualAddress: UInt64
        var physicalAddress: UInt64
        var fileSize: UInt64
        var memorySize: UInt64
        var alignment: UInt64
    }

    struct SectionHeader: Equatable {
        var type: UInt32
        var offset: UInt64
        var size: UInt64
        var alignment: UInt64
    }

    static let magic: [UInt8] = [0x7F, 0x45, 0x4C, 0x46]
    static let typeExecutable: UInt16 = 2
    static let machine386: UInt16 = 3
    static let machineX86_64: UInt16 = 62
    static let programLoad: UInt32 = 1
    static let programNote: UInt32 = 4
    static let sectionNote: UInt32 = 7

    let elfClass: Class
    let entry: UInt64
    let programHeaders: [ProgramHeader]
    let sectionHeaderOffset: UInt64
    let sectionHeaderSize: UInt64
    let sectionCount: UInt64

    /// Whether the bytes start with the ELF magic.
    static func hasMagic(_ image: [UInt8]) -> Bool {
        image.count >= 4 && Array(image[0..<4]) == magic
    }

    /// "ELF32" / "ELF64" / "ELF" from the class byte alone, for detection messages.
    static func className(_ image: [UInt8]) -> String {
        guard image.count > 4 else { return "ELF" }
        switch image[4] {
        case 1: return "ELF32"
        case 2: return "ELF64"
        default: return "ELF"
        }
    }

    init(_ image: [UInt8]) throws(LoaderError) {
        guard Self.hasMagic(image) else { throw .badMagic("not an ELF file: no \\x7fELF magic at offset 0") }
        guard image.count >= 16 else {
            throw .truncated("ELF identification needs 16 bytes but the file is \(image.count) bytes long")
        }
        switch image[4] {
        case 1: elfClass = .elf32
        case 2: elfClass = .elf64
        default: throw .malformed("ELF class byte is \(image[4]), expected 1 (ELF32) or 2 (ELF64)")
        }
        guard image[5] == 1 else {
            throw .unsupported("ELF data encoding is \(image[5]); only little-endian (1) x86 images are supported")
        }
        guard image[6] == 1 else { throw .malformed("ELF identification version is \(image[6]), expected 1") }

        let is64 = elfClass == .elf64
        let headerSize: UInt64 = is64 ? 64 : 52
        let name = elfClass.name
        _ = try image.bytes(at: 0, count: headerSize, "\(name) file header")
        let type = image.loadLE(UInt16.self, at: 16)
        let machine = image.loadLE(UInt16.self, at: 18)
        guard type == Self.typeExecutable else {
            throw .unsupported("\(name) type is \(type); only executables (ET_EXEC = 2) can be loaded")
        }
        let expectedMachine = is64 ? Self.machineX86_64 : Self.machine386
        guard machine == expectedMachine else {
            throw .unsupported(
                "\(name) machine is \(machine), expected \(expectedMachine) (\(is64 ? "x86-64" : "i386"))")
        }
        let phOffset: UInt64
        let phEntrySize: UInt64
        let phCount: UInt64
        if is64 {
            entry = image.loadLE(UInt64.self, at: 24)
            phOffset = image.loadLE(UInt64.self, at: 32)
            sectionHeaderOffset = image.loadLE(UInt64.self, at: 40)
            phEntrySize = UInt64(image.loadLE(UInt16.self, at: 54))
            phCount = UInt64(image.loadLE(UInt16.self, at: 56))
            sectionHeaderSize = UInt64(image.loadLE(UInt16.self, at: 58))
            sectionCount = UInt64(image.loadLE(UInt16.self, at: 60))
        } else {
            entry = UInt64(image.loadLE(UInt32.self, at: 24))
            phOffset = UInt64(image.loadLE(UInt32.self, at: 28))
            sectionHeaderOffset = UInt64(image.loadLE(UInt32.self, at: 32))
            phEntrySize = UInt64(image.loadLE(UInt16.self, at: 42))
            phCount = UInt64(image.loadLE(UInt16.self, at: 44))
            sectionHeaderSize = UInt64(image.loadLE(UInt16.self, at: 46))
            sectionCount = UInt64(image.loadLE(UInt16.self, at: 48))
        }
        guard phCount != 0 else { throw .malformed("\(name) has no program headers (e_phnum = 0)") }
        guard phCount != 0xFFFF else {
            throw .unsupported("\(name) uses extended program header numbering (e_phnum = 0xffff)")
        }
        let minimumEntry: UInt64 = is64 ? 56 : 32
        guard phEntrySize >= minimumEntry else {
            throw .malformed("\(name) program header size e_phentsize is \(phEntrySize), smaller than \(minimumEntry)")
        }
        let tableSize = try checkedMultiply(phCount, phEntrySize, "\(name) program header table size")
        _ = try image.bytes(at: phOffset, count: tableSize, "\(name) program header table (\(phCount) entries)")

        // The table lies inside the file, so its entry count is bounded by the file size.
        var headers: [ProgramHeader] = []
        headers.reserveCapacity(Int(phCount))
        for i in 0..<phCount {
            let at = Int(phOffset + i * phEntrySize)
            if is64 {
                headers.append(
                    ProgramHeader(
                        type: image.loadLE(UInt32.self, at: at),
                        offset: image.loadLE(UInt64.self, at: at + 8),
                        virtualAddress: image.loadLE(UInt64.self, at: at + 16),
                        physicalAddress: image.loadLE(UInt64.self, at: at + 24),
                        fileSize: image.loadLE(UInt64.self, at: at + 32),
                        memorySize: image.loadLE(UInt64.self, at: at + 40),
                        alignment: image.loadLE(UInt64.self, at: at + 48)))
            } else {
                headers.append(
                    ProgramHeader(
                        type: image.loadLE(UInt32.self, at: at),
                        offset: UInt64(image.loadLE(UInt32.self, at: at + 4)),
                        virtualAddress: UInt64(image.loadLE(UInt32.self, at: at + 8)),
                        physicalAddress: UInt64(image.loadLE(UInt32.self, at: at + 12)),
                        fileSize: UInt64(image.loadLE(UInt32.self, at: at + 16)),
                        memorySize: UInt64(image.loadLE(UInt32.self, at: at + 20)),
                        alignment: UInt64(image.loadLE(UInt32.self, at: at + 28))))
            }
        }
        programHeaders = headers
    }

    /// The `PT_LOAD` segments placed at their physical addresses (`p_paddr`), each checked:
    /// `p_filesz ≤ p_memsz` and file bytes inside the file. Segments with `p_memsz = 0` are skipped.
    /// Segment data is sliced from `image`, never copied.
    func loadSegments(_ image: [UInt8]) throws(LoaderError) -> [LoadSegment] {
        var segments: [LoadSegment] = []
        for (index, header) in programHeaders.enumerated() where header.type == Self.programLoad {
            guard header.memorySize != 0 else { continue }
            let what = "\(elfClass.name) program header \(index) (PT_LOAD at \(hex(header.physicalAddress)))"
            guard header.fileSize <= header.memorySize else {
                throw .malformed(
                    "\(what): p_filesz \(hex(header.fileSize)) is larger than p_memsz \(hex(header.memorySize))")
            }
            _ = try AddressRange.checked(start: header.physicalAddress, size: header.memorySize, what)
            // A bss-only segment (p_filesz 0) reads nothing, so its p_offset does not matter.
            let bytes =
                header.fileSize == 0 ? image[0..<0] : try image.bytes(at: header.offset, count: header.fileSize, what)
            segments.append(
                LoadSegment(
                    address: header.physicalAddress, bytes: bytes, zeroFill: header.memorySize - header.fileSize))
        }
        guard !segments.isEmpty else {
            throw .malformed("\(elfClass.name) has no PT_LOAD segment with a non-zero size")
        }
        return segments
    }

    /// `e_entry` as a physical address: translated through the `PT_LOAD` segment whose virtual
    /// range holds it (as GRUB does for multiboot ELF kernels), else taken as is.
    var physicalEntry: UInt64 {
        for header in programHeaders where header.type == Self.programLoad {
            let (end, overflow) = header.virtualAddress.addingReportingOverflow(header.memorySize)
            if !overflow, entry >= header.virtualAddress, entry < end {
                return header.physicalAddress &+ (entry - header.virtualAddress)
            }
        }
        return entry
    }

    /// Every section header of type `SHT_NOTE`; empty when the file has no section table.
    func noteSections(_ image: [UInt8]) throws(LoaderError) -> [SectionHeader] {
        guard sectionHeaderOffset != 0, sectionCount != 0 else { return [] }
        let is64 = elfClass == .elf64
        let name = elfClass.name
        let minimumEntry: UInt64 = is64 ? 64 : 40
        guard sectionHeaderSize >= minimumEntry else {
            throw .malformed(
                "\(name) section header size e_shentsize is \(sectionHeaderSize), smaller than \(minimumEntry)")
        }
        let tableSize = try checkedMultiply(sectionCount, sectionHeaderSize, "\(name) section header table size")
        _ = try image.bytes(
            at: sectionHeaderOffset, count: tableSize, "\(name) section header table (\(sectionCount) entries)")
        var notes: [SectionHeader] = []
        for i in 0..<sectionCount {
            let at = Int(sectionHeaderOffset + i * sectionHeaderSize)
            let type = image.loadLE(UInt32.self, at: at + 4)
            guard type == Self.sectionNote else { continue }
            if is64 {
                notes.append(
                    SectionHeader(
                        type: type, offset: image.loadLE(UInt64.self, at: at + 24),
                        size: image.loadLE(UInt64.self, at: at + 32), alignment: image.loadLE(UInt64.self, at: at + 48))
                )
            } else {
                notes.append(
                    SectionHeader(
                        type: type, offset: UInt64(image.loadLE(UInt32.self, at: at + 16)),
                        size: UInt64(image.loadLE(UInt32.self, at: at + 20)),
                        alignment: UInt64(image.loadLE(UInt32.self, at: at + 32))))
            }
        }
        return notes
    }
}
