import ArchX86
import Testing

@testable import Loader

@Suite struct PVHLoaderTests {
    let ram: MemoryMap

    init() throws { ram = try memoryMap(256 << 20) }

    private func parse(_ image: [UInt8], _ format: KernelFormat = .automatic) -> LoaderError? {
        let map = ram
        return loaderError { () throws(LoaderError) in try KernelImage.parse(image, memoryMap: map, format: format) }
    }

    @Test(arguments: [(true, 8), (true, 4), (false, 4), (false, 8)])
    func parsesPVHKernel(is64: Bool, descriptorSize: Int) throws {
        let builder = ELFBuilder.pvhKernel(is64: is64, entry: 0x0100_0040, descriptorSize: descriptorSize)
        let image = builder.build()
        let kernel = try KernelImage.parse(image, memoryMap: ram)
        #expect(kernel.bootProtocol == .pvh(phys32Entry: 0x0100_0040))
        #expect(kernel.entry == 0x0100_0040)
        #expect(kernel.segments.count == 2)
        #expect(kernel.segments[0].address == 0x0100_0000)
        #expect(Array(kernel.segments[0].bytes) == builder.segments[0].bytes)
        #expect(kernel.segments[0].zeroFill == 0)
        #expect(kernel.segments[1].address == 0x0120_0000)
        #expect(Array(kernel.segments[1].bytes) == builder.segments[1].bytes)
        #expect(kernel.segments[1].zeroFill == 0x5000 - 0x200)
        #expect(kernel.end == 0x0120_5000)
        #expect(kernel.reservedRange == AddressRange(start: 0x0100_0000, end: 0x0120_5000))
    }

    @Test func noteFoundInSectionWithoutPTNote() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.notesInSectionOnly = true
        let kernel = try KernelImage.parse(builder.build(), memoryMap: ram)
        #expect(kernel.entry == 0x0100_0040)
    }

    @Test func eightByteAlignedNotes() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.noteAlignment = 8
        builder.notes.insert(ELFBuilder.Note(name: Array("GNU".utf8) + [0], type: 3, descriptor: pattern(5)), at: 0)
        let kernel = try KernelImage.parse(builder.build(), memoryMap: ram, format: .pvh)
        #expect(kernel.entry == 0x0100_0040)
    }

    @Test func nameWithoutNULMatches() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.notes = [ELFBuilder.Note(name: Array("Xen".utf8), type: 18, descriptor: [0x40, 0, 0, 1])]
        let kernel = try KernelImage.parse(builder.build(), memoryMap: ram)
        #expect(kernel.entry == 0x0100_0040)
    }

    @Test func otherXenNotesAreSkipped() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.notes = [
            ELFBuilder.Note(name: Array("Xen".utf8) + [0], type: 17, descriptor: [1, 0x88, 0, 0]),
            ELFBuilder.Note(name: Array("Xenx".utf8) + [0], type: 18, descriptor: [0, 0, 0, 2]),
            ELFBuilder.pvhNote(entry: 0x0100_0100),
        ]
        let kernel = try KernelImage.parse(builder.build(), memoryMap: ram)
        #expect(kernel.entry == 0x0100_0100)
    }

    @Test func elf64WithoutPVHNoteIsNamed() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.notes = []
        let error = parse(builder.build())
        #expect(error?.kind == "unrecognizedFormat")
        #expect(error?.message.contains("ELF64 without a PVH note") == true)
        let forced = parse(builder.build(), .pvh)
        #expect(forced?.kind == "unsupported")
        #expect(forced?.message.contains("PVH note") == true)
    }

    @Test func forcedPVHOnNonELF() throws {
        let error = parse(BzImageBuilder().build(), .pvh)
        #expect(error?.kind == "badMagic")
    }

    @Test func everyTruncationIsAnError() throws {
        let image = ELFBuilder.pvhKernel().build()
        #expect(parse(image) == nil)
        for length in 0..<image.count {
            let prefix = Array(image[0..<length])
            #expect(parse(prefix) != nil, "prefix of \(length) bytes parsed")
            #expect(parse(prefix, .pvh) != nil, "prefix of \(length) bytes parsed as PVH")
        }
    }

    @Test func segmentOffsetPastEndOfFile() throws {
        let builder = ELFBuilder.pvhKernel()
        var image = builder.build()
        putLE(UInt64(image.count - 0x10), into: &image, at: builder.programHeaderAt(0) + 8)  // p_offset
        #expect(parse(image)?.kind == "truncated")
        putLE(UInt64.max - 4, into: &image, at: builder.programHeaderAt(0) + 8)
        #expect(parse(image)?.kind == "truncated")
    }

    @Test func fileSizeLargerThanMemorySize() throws {
        let builder = ELFBuilder.pvhKernel()
        var image = builder.build()
        putLE(UInt64(0x100), into: &image, at: builder.programHeaderAt(1) + 40)  // p_memsz < p_filesz 0x200
        let error = parse(image)
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("p_filesz") == true)
    }

    @Test func physicalAddressPlusMemorySizeOverflows() throws {
        let builder = ELFBuilder.pvhKernel()
        var image = builder.build()
        putLE(UInt64.max - 0x100, into: &image, at: builder.programHeaderAt(1) + 24)  // p_paddr
        #expect(parse(image)?.kind == "overflow")
    }

    @Test func overlappingSegments() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.segments[1].physicalAddress = 0x0100_0400
        let error = parse(builder.build())
        #expect(error?.kind == "overlap")
        // Zero fill counts: segment 0's bss runs into segment 1.
        var bss = ELFBuilder.pvhKernel()
        bss.segments[0].memorySize = 0x20_0001
        #expect(parse(bss.build())?.kind == "overlap")
    }

    @Test func segmentInBootArea() throws {
        var builder = ELFBuilder.pvhKernel(entry: 0x7000)
        builder.segments[0].physicalAddress = 0x7000
        let error = parse(builder.build())
        #expect(error?.kind == "reservedMemory")
        var straddling = ELFBuilder.pvhKernel(entry: 0xFFF00)
        straddling.segments[0].physicalAddress = 0xFFF00
        #expect(parse(straddling.build())?.kind == "reservedMemory")
    }

    @Test func segmentOutsideRAM() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.segments[1].physicalAddress = (256 << 20) - 0x100
        let error = parse(builder.build())
        #expect(error?.kind == "outsideRAM")
        // In the 3–4 GiB hole.
        var hole = ELFBuilder.pvhKernel()
        hole.segments[1].physicalAddress = 0xD000_0000
        let big = try memoryMap(8 << 30)
        let holeError = loaderError { () throws(LoaderError) in try KernelImage.parse(hole.build(), memoryMap: big) }
        #expect(holeError?.kind == "outsideRAM")
    }

    @Test func segmentAbove4GiBForA32BitEntry() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.segments[1].physicalAddress = 0x1_2000_0000
        let big = try memoryMap(8 << 30)
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: big) }
        #expect(error?.kind == "outsideRAM")
        #expect(error?.message.contains("4 GiB") == true)
    }

    @Test func entryOutsideSegments() throws {
        let builder = ELFBuilder.pvhKernel(entry: 0x0300_0000)
        let error = parse(builder.build())
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("entry point") == true)
    }

    @Test func entryAbove4GiB() throws {
        let builder = ELFBuilder.pvhKernel(entry: 0x1_0000_0000)
        #expect(parse(builder.build())?.kind == "unsupported")
    }

    @Test(arguments: [0, 2, 6, 16])
    func badDescriptorSize(size: Int) throws {
        var builder = ELFBuilder.pvhKernel()
        builder.notes = [ELFBuilder.Note(name: Array("Xen".utf8) + [0], type: 18, descriptor: pattern(size))]
        let error = parse(builder.build())
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("descsz") == true)
    }

    /// Offset of the first note header in the PT_NOTE segment.
    private func firstNoteOffset(_ builder: ELFBuilder, _ image: [UInt8]) -> Int {
        let noteHeader = builder.programHeaderAt(builder.segments.count)
        return Int(readLE(UInt64.self, image, at: noteHeader + 8))
    }

    @Test func hugeNameSize() throws {
        let builder = ELFBuilder.pvhKernel()
        var image = builder.build()
        let note = firstNoteOffset(builder, image)
        putLE(UInt32.max, into: &image, at: note)  // namesz
        let error = parse(image)
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("namesz") == true)
    }

    @Test func hugeDescriptorSize() throws {
        let builder = ELFBuilder.pvhKernel()
        var image = builder.build()
        let note = firstNoteOffset(builder, image)
        putLE(UInt32.max, into: &image, at: note + 4)  // descsz
        let error = parse(image)
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("descsz") == true)
    }

    @Test func truncatedNoteHeader() throws {
        let builder = ELFBuilder.pvhKernel()
        var image = builder.build()
        let noteHeader = builder.programHeaderAt(builder.segments.count)
        let size = readLE(UInt64.self, image, at: noteHeader + 32)
        putLE(size + 8, into: &image, at: noteHeader + 32)  // p_filesz: 8 stray bytes after the last note
        image += [UInt8](repeating: 0, count: 8)
        #expect(parse(image)?.kind == "truncated")
    }

    @Test func noteSegmentPastEndOfFile() throws {
        let builder = ELFBuilder.pvhKernel()
        var image = builder.build()
        let noteHeader = builder.programHeaderAt(builder.segments.count)
        putLE(UInt64(1) << 40, into: &image, at: noteHeader + 32)  // p_filesz
        #expect(parse(image)?.kind == "truncated")
    }

    @Test func badSectionTable() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.notesInSectionOnly = true
        var image = builder.build()
        putLE(UInt16(0xFFFF), into: &image, at: 60)  // e_shnum: table runs past the file
        #expect(parse(image)?.kind == "truncated")
        putLE(UInt16(2), into: &image, at: 60)
        putLE(UInt16(8), into: &image, at: 58)  // e_shentsize too small
        #expect(parse(image)?.kind == "malformed")
    }

    @Test func headerChecks() throws {
        let good = ELFBuilder.pvhKernel().build()
        var image = good
        image[4] = 3  // EI_CLASS
        #expect(parse(image)?.kind == "malformed")
        image = good
        image[5] = 2  // big-endian
        #expect(parse(image)?.kind == "unsupported")
        image = good
        putLE(UInt16(3), into: &image, at: 16)  // ET_DYN
        #expect(parse(image)?.kind == "unsupported")
        image = good
        putLE(UInt16(183), into: &image, at: 18)  // EM_AARCH64
        #expect(parse(image)?.message.contains("machine") == true)
        image = good
        putLE(UInt16(0), into: &image, at: 56)  // e_phnum
        #expect(parse(image)?.kind == "malformed")
        image = good
        putLE(UInt16(0xFFFF), into: &image, at: 56)  // PN_XNUM
        #expect(parse(image)?.kind == "unsupported")
        image = good
        putLE(UInt16(20), into: &image, at: 54)  // e_phentsize
        #expect(parse(image)?.kind == "malformed")
        image = good
        putLE(UInt64.max - 8, into: &image, at: 32)  // e_phoff
        #expect(parse(image)?.kind == "truncated")
    }

    @Test func bssOnlySegmentIgnoresItsOffset() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.segments.append(
            ELFBuilder.Segment(physicalAddress: 0x0130_0000, virtualAddress: 0, bytes: [], memorySize: 0x4000))
        var image = builder.build()
        putLE(UInt64.max, into: &image, at: builder.programHeaderAt(2) + 8)  // p_offset of the bss-only segment
        let kernel = try KernelImage.parse(image, memoryMap: ram)
        #expect(kernel.segments.count == 3)
        #expect(kernel.segments[2].bytes.isEmpty)
        #expect(kernel.segments[2].zeroFill == 0x4000)
        #expect(kernel.end == 0x0130_4000)
    }

    @Test func noLoadableSegments() throws {
        var builder = ELFBuilder.pvhKernel()
        builder.segments = [
            ELFBuilder.Segment(physicalAddress: 0x100_0000, virtualAddress: 0, bytes: [], memorySize: 0)
        ]
        #expect(parse(builder.build())?.kind == "malformed")
    }
}
