import ArchX86
import Testing

@testable import Loader

@Suite struct MultibootLoaderTests {
    let ram: MemoryMap

    init() throws { ram = try memoryMap(256 << 20) }

    private func parse(_ image: [UInt8], _ format: KernelFormat = .automatic) -> LoaderError? {
        let map = ram
        return loaderError { () throws(LoaderError) in try KernelImage.parse(image, memoryMap: map, format: format) }
    }

    @Test func aoutKludge() throws {
        let builder = AoutKludgeBuilder()
        let image = builder.build()
        let kernel = try KernelImage.parse(image, memoryMap: ram)
        guard case .multiboot(let header) = kernel.bootProtocol else {
            Issue.record("expected multiboot, got \(kernel.bootProtocol)")
            return
        }
        #expect(header.fileOffset == 0x40)
        #expect(header.flags == 0x0001_0003)
        #expect(header.addresses?.loadAddress == 0x10_0000)
        #expect(kernel.entry == 0x10_0010)
        #expect(kernel.segments.count == 1)
        #expect(kernel.segments[0].address == 0x10_0000)
        #expect(Array(kernel.segments[0].bytes) == image)
        #expect(kernel.segments[0].zeroFill == 0x2000)
        #expect(kernel.end == 0x10_0000 + 0x1000 + 0x2000)
        #expect(kernel.warnings.isEmpty)
    }

    @Test func textOffsetIsHeaderOffsetMinusHeaderDelta() throws {
        // Header at file offset 0x80 but only 0x40 bytes after load_addr: the text starts at 0x40.
        var builder = AoutKludgeBuilder()
        builder.headerOffset = 0x80
        builder.headerAddress = 0x10_0040
        builder.loadEndAddress = 0x10_0100
        builder.bssEndAddress = 0
        let image = builder.build()
        let kernel = try KernelImage.parse(image, memoryMap: ram)
        #expect(kernel.segments[0].bytes.startIndex == 0x40)
        #expect(Array(kernel.segments[0].bytes) == Array(image[0x40..<0x140]))
        #expect(kernel.segments[0].zeroFill == 0)
        #expect(kernel.end == 0x10_0100)
    }

    @Test func loadEndZeroMeansEndOfFile() throws {
        var builder = AoutKludgeBuilder()
        builder.loadEndAddress = 0
        builder.bssEndAddress = 0
        let image = builder.build()
        let kernel = try KernelImage.parse(image, memoryMap: ram)
        #expect(kernel.segments[0].bytes.count == image.count)
        #expect(kernel.segments[0].zeroFill == 0)
    }

    @Test func elf32Multiboot() throws {
        var elf = ELFBuilder()
        elf.is64 = false
        elf.entry = 0xC010_0020  // virtual; translated through the segment to 0x100020
        elf.prefix = multibootHeader(flags: 0x0000_0003)
        elf.segments = [
            ELFBuilder.Segment(
                physicalAddress: 0x10_0000, virtualAddress: 0xC010_0000, bytes: pattern(0x400), memorySize: 0x3000)
        ]
        let image = elf.build()
        let kernel = try KernelImage.parse(image, memoryMap: ram)
        guard case .multiboot(let header) = kernel.bootProtocol else {
            Issue.record("expected multiboot, got \(kernel.bootProtocol)")
            return
        }
        #expect(header.fileOffset == 52)
        #expect(header.addresses == nil)
        #expect(kernel.entry == 0x10_0020)
        #expect(kernel.segments[0].address == 0x10_0000)
        #expect(kernel.segments[0].zeroFill == 0x3000 - 0x400)
    }

    @Test func elf64WithoutAddressFieldsIsRefused() throws {
        var elf = ELFBuilder()
        elf.prefix = multibootHeader(flags: 0x0000_0003)
        elf.segments = [
            ELFBuilder.Segment(
                physicalAddress: 0x10_0000, virtualAddress: 0x10_0000, bytes: pattern(0x100), memorySize: 0x100)
        ]
        elf.entry = 0x10_0000
        let error = parse(elf.build())
        #expect(error?.kind == "unsupported")
        #expect(error?.message.contains("ELF64") == true)
    }

    @Test func addressFieldsOverrideELF() throws {
        // An ELF64 file with flags bit 16 loads through the address fields, as the spec says.
        var elf = ELFBuilder()
        elf.segments = [
            ELFBuilder.Segment(
                physicalAddress: 0x10_0000, virtualAddress: 0x10_0000, bytes: pattern(0x100), memorySize: 0x100)
        ]
        elf.prefix = multibootHeader(
            flags: 0x0001_0000, headerAddress: 0x20_0000 + 64, loadAddress: 0x20_0000, loadEndAddress: 0,
            bssEndAddress: 0,
            entryAddress: 0x20_0000 + 64 + 48)
        let image = elf.build()
        let kernel = try KernelImage.parse(image, memoryMap: ram, format: .multiboot)
        #expect(kernel.segments[0].address == 0x20_0000)
        #expect(kernel.segments[0].bytes.count == image.count)
        #expect(kernel.entry == 0x20_0070)
    }

    @Test func videoModeIsIgnoredWithAWarning() throws {
        var builder = AoutKludgeBuilder()
        builder.flags = 0x0001_0007
        let kernel = try KernelImage.parse(builder.build(), memoryMap: ram)
        guard case .multiboot(let header) = kernel.bootProtocol else {
            Issue.record("expected multiboot")
            return
        }
        #expect(header.video != nil)
        #expect(kernel.warnings.count == 1)
        #expect(kernel.warnings.first?.contains("video") == true)
    }

    @Test(arguments: [UInt32(1 << 3), 1 << 4, 1 << 8, 1 << 15])
    func unknownRequiredFlag(bit: UInt32) throws {
        var builder = AoutKludgeBuilder()
        builder.flags = 0x0001_0003 | bit
        let error = parse(builder.build())
        #expect(error?.kind == "unsupported")
        #expect(error?.message.contains(hex(bit)) == true)
    }

    @Test func unknownOptionalFlagsAreIgnored() throws {
        var builder = AoutKludgeBuilder()
        builder.flags = 0x8001_0003
        #expect(parse(builder.build()) == nil)
    }

    @Test func badChecksumIsNotAHeader() throws {
        var builder = AoutKludgeBuilder()
        builder.checksumDelta = 1
        let image = builder.build()
        #expect(parse(image)?.kind == "unrecognizedFormat")
        #expect(parse(image, .multiboot)?.kind == "badMagic")
    }

    @Test func unalignedHeaderIsNotFound() throws {
        var image = pattern(0x200)
        let header = multibootHeader(
            flags: 0x0001_0000, headerAddress: 0x10_0042, loadAddress: 0x10_0000, entryAddress: 0x10_0000)
        for (i, byte) in header.enumerated() { image[0x42 + i] = byte }
        #expect(parse(image, .multiboot)?.kind == "badMagic")
    }

    @Test func headerBeyond8KiBIsNotFound() throws {
        var builder = AoutKludgeBuilder()
        builder.bodySize = 0x3000
        builder.headerOffset = 8192
        #expect(parse(builder.build(), .multiboot)?.kind == "badMagic")
        // The last place a 12-byte header fits.
        builder.headerOffset = 8192 - 12
        builder.flags = 0x0000_0003
        var image = builder.build()
        // Without flag 16 the file must be ELF; the header itself is found.
        #expect(parse(image, .multiboot)?.message.contains("not ELF") == true)
        // With flag 16 the header is 32 bytes and would cross the 8 KiB limit.
        builder.flags = 0x0001_0003
        image = builder.build()
        let error = parse(image, .multiboot)
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("8192") == true)
    }

    @Test func headerTruncatedByEndOfFile() throws {
        var builder = AoutKludgeBuilder()
        builder.bodySize = 0x50
        builder.headerOffset = 0x40  // 16 bytes left: enough for magic/flags/checksum, not the address fields
        let image = Array(builder.build()[0..<0x50])
        #expect(parse(image, .multiboot)?.kind == "truncated")
    }

    @Test func everyTruncationIsAnError() throws {
        var builder = AoutKludgeBuilder()
        builder.bodySize = 0x200
        let image = builder.build()
        #expect(parse(image) == nil)
        for length in 0..<image.count {
            let prefix = Array(image[0..<length])
            #expect(parse(prefix, .multiboot) != nil, "prefix of \(length) bytes parsed as multiboot")
        }
    }

    @Test func loadEndBelowLoadAddress() throws {
        var builder = AoutKludgeBuilder()
        builder.loadEndAddress = 0x0F_FF00
        let error = parse(builder.build())
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("load_end_addr") == true)
    }

    @Test func headerAddressBelowLoadAddress() throws {
        var builder = AoutKludgeBuilder()
        builder.headerAddress = 0x0F_0000
        let error = parse(builder.build())
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("header_addr") == true)
    }

    @Test func headerDeltaLargerThanHeaderOffset() throws {
        var builder = AoutKludgeBuilder()
        builder.headerAddress = 0x10_0000 + 0x41  // header at file offset 0x40
        let error = parse(builder.build())
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("before the file") == true)
    }

    @Test func headerOutsideLoadedImage() throws {
        var builder = AoutKludgeBuilder()
        builder.loadEndAddress = 0x10_0020  // loads 0x20 bytes; the header is at 0x40
        builder.bssEndAddress = 0
        let error = parse(builder.build())
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("outside the loaded image") == true)
    }

    @Test func loadEndPastEndOfFile() throws {
        var builder = AoutKludgeBuilder()
        builder.loadEndAddress = 0x10_0000 + 0x2000  // file is 0x1000 bytes
        #expect(parse(builder.build())?.kind == "truncated")
    }

    @Test func bssEndBelowLoadEnd() throws {
        var builder = AoutKludgeBuilder()
        builder.bssEndAddress = 0x10_0800
        let error = parse(builder.build())
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("bss_end_addr") == true)
    }

    @Test func bssBeyondRAM() throws {
        var builder = AoutKludgeBuilder()
        builder.bssEndAddress = 0xFFFF_F000
        #expect(parse(builder.build())?.kind == "outsideRAM")
    }

    @Test func loadBelowOneMiB() throws {
        var builder = AoutKludgeBuilder()
        builder.loadAddress = 0x8000
        let error = parse(builder.build())
        #expect(error?.kind == "reservedMemory")
    }

    @Test func entryOutsideImage() throws {
        var builder = AoutKludgeBuilder()
        builder.entryAddress = 0x20_0000
        let error = parse(builder.build())
        #expect(error?.kind == "malformed")
        #expect(error?.message.contains("entry") == true)
    }

    @Test func nonELFWithoutAddressFields() throws {
        var builder = AoutKludgeBuilder()
        builder.flags = 0x0000_0003
        let error = parse(builder.build())
        #expect(error?.kind == "unsupported")
        #expect(error?.message.contains("flags bit 16") == true)
    }
}

@Suite struct FormatDetectionTests {
    let ram: MemoryMap

    init() throws { ram = try memoryMap(256 << 20) }

    private func parse(_ image: [UInt8], _ format: KernelFormat = .automatic) -> LoaderError? {
        let map = ram
        return loaderError { () throws(LoaderError) in try KernelImage.parse(image, memoryMap: map, format: format) }
    }

    @Test func pvhBeatsMultiboot() throws {
        var elf = ELFBuilder.pvhKernel(is64: false)
        elf.prefix = multibootHeader(flags: 0x0000_0003)
        let kernel = try KernelImage.parse(elf.build(), memoryMap: ram)
        #expect(kernel.bootProtocol.name == "PVH")
        let forced = try KernelImage.parse(elf.build(), memoryMap: ram, format: .multiboot)
        #expect(forced.bootProtocol.name == "multiboot")
    }

    @Test func multibootBeatsBzImage() throws {
        var image = BzImageBuilder().build()
        let header = multibootHeader(
            flags: 0x0001_0000, headerAddress: 0x10_0000 + 0x400, loadAddress: 0x10_0000, entryAddress: 0x10_0000)
        for (i, byte) in header.enumerated() { image[0x400 + i] = byte }
        let kernel = try KernelImage.parse(image, memoryMap: ram)
        #expect(kernel.bootProtocol.name == "multiboot")
        let forced = try KernelImage.parse(image, memoryMap: ram, format: .bzImage)
        #expect(forced.bootProtocol.name == "bzImage")
    }

    @Test func describesUnknownFiles() throws {
        #expect(parse([])?.message.contains("the file is empty") == true)
        #expect(parse([0x1F, 0x8B, 8, 0, 0, 0])?.message.contains("gzip") == true)
        #expect(parse([0x4D, 0x5A] + [UInt8](repeating: 0, count: 0x300))?.message.contains("'MZ'") == true)
        let unknown = parse([0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4, 5])
        #expect(unknown?.kind == "unrecognizedFormat")
        #expect(unknown?.message.contains("de ad be ef 01 02 03 04") == true)
        var elf32 = ELFBuilder.pvhKernel(is64: false)
        elf32.notes = []
        #expect(parse(elf32.build())?.message.contains("ELF32 without a PVH note or multiboot header") == true)
    }

    @Test func forcedFormatsCheckTheirOwnMagic() throws {
        let pvh = ELFBuilder.pvhKernel().build()
        #expect(parse(pvh, .bzImage)?.kind == "truncated" || parse(pvh, .bzImage)?.kind == "badMagic")
        #expect(parse(pvh, .multiboot)?.kind == "badMagic")
        #expect(parse(AoutKludgeBuilder().build(), .pvh)?.kind == "badMagic")
    }
}
