import ArchX86
import Testing

@testable import Loader

/// Offsets in these tests are copied from the specifications, not from the Loader:
/// Linux Documentation/arch/x86/zero-page.rst and boot.rst for the zero page, Xen's
/// public/arch-x86/hvm/start_info.h for PVH, Multiboot 0.6.96 §3.3 for multiboot.
@Suite struct ZeroPageTests {
    func header(_ builder: BzImageBuilder = BzImageBuilder()) throws -> SetupHeader {
        try SetupHeader(parsing: builder.build())
    }

    @Test func fieldOffsets() throws {
        let map = try memoryMap(256 << 20)
        let setup = try header()
        let page = try ZeroPage(
            setupHeader: setup, commandLineAddress: 0x20000,
            initrd: AddressRange(start: 0x0F00_0000, size: 0x12345), e820: map.e820, rsdpAddress: 0xE0000
        ).encode()
        #expect(page.count == 4096)
        // boot.rst "The Real-Mode Kernel Header", copied from the image at 0x1F1.
        #expect(page[0x1F1] == 4)  // setup_sects
        #expect(readLE(UInt16.self, page, at: 0x1FE) == 0xAA55)  // boot_flag
        #expect(readLE(UInt32.self, page, at: 0x202) == 0x5372_6448)  // header "HdrS"
        #expect(readLE(UInt16.self, page, at: 0x206) == 0x020F)  // version
        #expect(readLE(UInt32.self, page, at: 0x238) == 2047)  // cmdline_size
        #expect(readLE(UInt32.self, page, at: 0x260) == 0x40_0000)  // init_size
        // Written by the loader.
        #expect(readLE(UInt16.self, page, at: 0x1FA) == 0xFFFF)  // vid_mode "normal"
        #expect(page[0x210] == 0xFF)  // type_of_loader: undefined
        #expect(page[0x211] & 0x01 == 0x01)  // loadflags: LOADED_HIGH kept
        #expect(page[0x211] & 0x80 == 0)  // loadflags: no CAN_USE_HEAP without a heap
        #expect(readLE(UInt32.self, page, at: 0x218) == 0x0F00_0000)  // ramdisk_image
        #expect(readLE(UInt32.self, page, at: 0x21C) == 0x12345)  // ramdisk_size
        #expect(readLE(UInt32.self, page, at: 0x228) == 0x20000)  // cmd_line_ptr
        #expect(readLE(UInt64.self, page, at: 0x250) == 0)  // setup_data
        // zero-page.rst
        #expect(readLE(UInt64.self, page, at: 0x070) == 0xE0000)  // acpi_rsdp_addr
        #expect(readLE(UInt32.self, page, at: 0x0C0) == 0)  // ext_ramdisk_image
        #expect(readLE(UInt32.self, page, at: 0x0C4) == 0)  // ext_ramdisk_size
        #expect(readLE(UInt32.self, page, at: 0x0C8) == 0)  // ext_cmd_line_ptr
        #expect(page[0x1E8] == UInt8(map.e820.count))  // e820_entries
        #expect(page[0x1EF] == 0)  // sentinel
        for (i, entry) in map.e820.enumerated() {
            let at = 0x2D0 + i * 20  // e820_table: struct boot_e820_entry { u64 addr; u64 size; u32 type; } packed
            #expect(readLE(UInt64.self, page, at: at) == entry.address)
            #expect(readLE(UInt64.self, page, at: at + 8) == entry.size)
            #expect(readLE(UInt32.self, page, at: at + 16) == entry.kind.rawValue)
        }
        // Nothing past the table.
        let tableEnd = 0x2D0 + map.e820.count * 20
        #expect(page[tableEnd..<4096].allSatisfy { $0 == 0 })
    }

    @Test func headerFieldsFromTheImageAreOverridden() throws {
        // A hostile header carrying a setup_data pointer, ramdisk and heap settings.
        var image = BzImageBuilder().build()
        putLE(UInt64(0xDEAD_0000), into: &image, at: 0x250)  // setup_data
        putLE(UInt32(0x1234), into: &image, at: 0x218)  // ramdisk_image
        image[0x211] |= 0x80  // CAN_USE_HEAP
        let setup = try SetupHeader(parsing: image)
        let page = try ZeroPage(setupHeader: setup, initrd: nil, e820: [], rsdpAddress: nil).encode()
        #expect(readLE(UInt64.self, page, at: 0x250) == 0)
        #expect(readLE(UInt32.self, page, at: 0x218) == 0)
        #expect(readLE(UInt32.self, page, at: 0x21C) == 0)
        #expect(page[0x211] == 0x01)
        #expect(readLE(UInt64.self, page, at: 0x070) == 0)
        #expect(readLE(UInt32.self, page, at: 0x228) == UInt32(Layout.commandLineAddress))
    }

    @Test func highAddressesUseExtendedFields() throws {
        let page = try ZeroPage(
            setupHeader: try header(), commandLineAddress: 0x1_0002_0000,
            initrd: AddressRange(start: 0x2_0000_1000, size: 0x1_0000_0005), e820: [], rsdpAddress: nil
        ).encode()
        #expect(readLE(UInt32.self, page, at: 0x218) == 0x0000_1000)  // ramdisk_image
        #expect(readLE(UInt32.self, page, at: 0x0C0) == 0x2)  // ext_ramdisk_image
        #expect(readLE(UInt32.self, page, at: 0x21C) == 0x5)  // ramdisk_size
        #expect(readLE(UInt32.self, page, at: 0x0C4) == 0x1)  // ext_ramdisk_size
        #expect(readLE(UInt32.self, page, at: 0x228) == 0x0002_0000)  // cmd_line_ptr
        #expect(readLE(UInt32.self, page, at: 0x0C8) == 0x1)  // ext_cmd_line_ptr
    }

    @Test func e820TableLimit() throws {
        let entry = E820Entry(address: 0x100000, size: 0x1000, kind: .ram)
        let full = try ZeroPage(
            setupHeader: try header(), initrd: nil, e820: Array(repeating: entry, count: 128), rsdpAddress: nil
        ).encode()
        #expect(full[0x1E8] == 128)
        #expect(full.count == 4096)
        let setup = try header()
        let error = loaderError { () throws(LoaderError) in
            try ZeroPage(setupHeader: setup, initrd: nil, e820: Array(repeating: entry, count: 129), rsdpAddress: nil)
                .encode()
        }
        #expect(error?.kind == "tooManyEntries")
    }
}

@Suite struct PVHStartInfoTests {
    @Test func layout() throws {
        let map = try memoryMap(4 << 30)
        let info = PVHStartInfo(
            commandLineAddress: 0x20000, rsdpAddress: 0xE0000,
            modules: [
                PVHStartInfo.Module(address: 0x0800_0000, size: 0x1234),
                PVHStartInfo.Module(address: 0x0900_0000, size: 7, commandLineAddress: 0x21000),
            ],
            memoryMap: map.e820)
        let writes = try info.encode()
        #expect(writes.map(\.address) == [0x6000, 0x6040, 0x6400])
        let start = Array(writes[0].bytes)
        #expect(start.count == 56)  // version 1 size
        #expect(readLE(UInt32.self, start, at: 0) == 0x336E_C578)  // magic
        #expect(readLE(UInt32.self, start, at: 4) == 1)  // version
        #expect(readLE(UInt32.self, start, at: 8) == 0)  // flags
        #expect(readLE(UInt32.self, start, at: 12) == 2)  // nr_modules
        #expect(readLE(UInt64.self, start, at: 16) == 0x6040)  // modlist_paddr
        #expect(readLE(UInt64.self, start, at: 24) == 0x20000)  // cmdline_paddr
        #expect(readLE(UInt64.self, start, at: 32) == 0xE0000)  // rsdp_paddr
        #expect(readLE(UInt64.self, start, at: 40) == 0x6400)  // memmap_paddr
        #expect(readLE(UInt32.self, start, at: 48) == UInt32(map.e820.count))  // memmap_entries
        #expect(readLE(UInt32.self, start, at: 52) == 0)  // reserved

        let modules = Array(writes[1].bytes)
        #expect(modules.count == 2 * 32)
        #expect(readLE(UInt64.self, modules, at: 0) == 0x0800_0000)  // paddr
        #expect(readLE(UInt64.self, modules, at: 8) == 0x1234)  // size
        #expect(readLE(UInt64.self, modules, at: 16) == 0)  // cmdline_paddr
        #expect(readLE(UInt64.self, modules, at: 24) == 0)  // reserved
        #expect(readLE(UInt64.self, modules, at: 32) == 0x0900_0000)
        #expect(readLE(UInt64.self, modules, at: 40) == 7)
        #expect(readLE(UInt64.self, modules, at: 48) == 0x21000)

        let memmap = Array(writes[2].bytes)
        #expect(memmap.count == map.e820.count * 24)
        for (i, entry) in map.e820.enumerated() {
            #expect(readLE(UInt64.self, memmap, at: i * 24) == entry.address)  // addr
            #expect(readLE(UInt64.self, memmap, at: i * 24 + 8) == entry.size)  // size
            #expect(readLE(UInt32.self, memmap, at: i * 24 + 16) == entry.kind.rawValue)  // type
            #expect(readLE(UInt32.self, memmap, at: i * 24 + 20) == 0)  // reserved
        }
    }

    @Test func noModulesMeansNoList() throws {
        let writes = try PVHStartInfo(rsdpAddress: nil, modules: [], memoryMap: []).encode()
        #expect(writes.map(\.label) == ["PVH start info", "PVH memory map"])
        let start = Array(writes[0].bytes)
        #expect(readLE(UInt32.self, start, at: 12) == 0)
        #expect(readLE(UInt64.self, start, at: 16) == 0)
        #expect(readLE(UInt64.self, start, at: 32) == 0)
    }

    @Test func capacity() throws {
        // 0x6040..0x6400 holds 30 module entries; 0x6400..0x7000 holds 128 memory map entries.
        #expect(PVHStartInfo.maximumModules == 30)
        #expect(PVHStartInfo.maximumMemoryMapEntries == 128)
        let module = PVHStartInfo.Module(address: 0x100_0000, size: 1)
        let tooMany = loaderError { () throws(LoaderError) in
            try PVHStartInfo(rsdpAddress: nil, modules: Array(repeating: module, count: 31), memoryMap: []).encode()
        }
        #expect(tooMany?.kind == "tooManyEntries")
        let entry = E820Entry(address: 0, size: 0x1000, kind: .ram)
        let bigMap = loaderError { () throws(LoaderError) in
            try PVHStartInfo(rsdpAddress: nil, modules: [], memoryMap: Array(repeating: entry, count: 129)).encode()
        }
        #expect(bigMap?.kind == "tooManyEntries")
    }
}

@Suite struct MultibootInfoTests {
    @Test func layout() throws {
        let map = try memoryMap(512 << 20)
        let modules = [
            MultibootInfo.Module(
                range: try #require(AddressRange(start: 0x20_0000, size: 0x1800)), commandLine: "initrd.img quiet"),
            MultibootInfo.Module(range: try #require(AddressRange(start: 0x20_2000, size: 0x10)), commandLine: ""),
        ]
        let bytes = try MultibootInfo(commandLineAddress: 0x20000, modules: modules, e820: map.e820).encode()
        let base = 0x10000
        #expect(bytes.count <= 0x10000)
        func at(_ address: UInt32) -> Int { Int(address) - base }
        func string(_ address: UInt32) -> String {
            let start = at(address)
            let end = bytes[start...].firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[start..<end], as: UTF8.self)
        }
        let flags = readLE(UInt32.self, bytes, at: 0)
        // MEM (0), CMDLINE (2), MODS (3), MMAP (6), BOOT_LOADER_NAME (9).
        #expect(flags == (1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9))
        #expect(readLE(UInt32.self, bytes, at: 4) == 0x9FC00 / 1024)  // mem_lower: 639 KiB
        #expect(readLE(UInt32.self, bytes, at: 8) == UInt32((512 << 20) - 0x100000) / 1024)  // mem_upper
        #expect(readLE(UInt32.self, bytes, at: 16) == 0x20000)  // cmdline
        #expect(readLE(UInt32.self, bytes, at: 20) == 2)  // mods_count
        let mods = readLE(UInt32.self, bytes, at: 24)  // mods_addr
        #expect(readLE(UInt32.self, bytes, at: at(mods)) == 0x20_0000)  // mod_start
        #expect(readLE(UInt32.self, bytes, at: at(mods) + 4) == 0x20_1800)  // mod_end
        #expect(string(readLE(UInt32.self, bytes, at: at(mods) + 8)) == "initrd.img quiet")  // string
        #expect(readLE(UInt32.self, bytes, at: at(mods) + 12) == 0)  // reserved
        #expect(readLE(UInt32.self, bytes, at: at(mods) + 16) == 0x20_2000)
        #expect(readLE(UInt32.self, bytes, at: at(mods) + 20) == 0x20_2010)
        #expect(string(readLE(UInt32.self, bytes, at: at(mods) + 24)) == "")
        let mmapLength = readLE(UInt32.self, bytes, at: 44)  // mmap_length
        let mmap = readLE(UInt32.self, bytes, at: 48)  // mmap_addr
        #expect(mmapLength == UInt32(map.e820.count * 24))
        var offset = at(mmap)
        for entry in map.e820 {
            let size = readLE(UInt32.self, bytes, at: offset)  // size, not counting itself
            #expect(size == 20)
            #expect(readLE(UInt64.self, bytes, at: offset + 4) == entry.address)  // base_addr
            #expect(readLE(UInt64.self, bytes, at: offset + 12) == entry.size)  // length
            #expect(readLE(UInt32.self, bytes, at: offset + 20) == entry.kind.rawValue)  // type
            offset += Int(size) + 4
        }
        #expect(offset == at(mmap) + Int(mmapLength))
        #expect(string(readLE(UInt32.self, bytes, at: 64)) == "skiff")  // boot_loader_name
        // Everything the info points to lies inside the area.
        for pointer in [mods, mmap, readLE(UInt32.self, bytes, at: 64)] {
            #expect(pointer >= 0x10000 && pointer < 0x20000)
        }
    }

    @Test func doesNotFitInTheArea() throws {
        let long = String(repeating: "x", count: 4000)
        let modules = (0..<20).map { i in
            let start = 0x20_0000 + UInt64(i) * 0x1000
            return MultibootInfo.Module(range: AddressRange(start: start, clampedEnd: start + 1), commandLine: long)
        }
        let error = loaderError { () throws(LoaderError) in try MultibootInfo(modules: modules, e820: []).encode() }
        #expect(error?.kind == "doesNotFit")
        let fits = try MultibootInfo(modules: Array(modules.prefix(10)), e820: []).encode()
        #expect(fits.count > 40_000 && fits.count <= 0x10000)
    }

    @Test func moduleCommandLineWithNUL() throws {
        let module = MultibootInfo.Module(
            range: try #require(AddressRange(start: 0x20_0000, size: 1)), commandLine: "a\u{0}b")
        let error = loaderError { () throws(LoaderError) in try MultibootInfo(modules: [module], e820: []).encode() }
        #expect(error?.kind == "invalidCommandLine")
    }

    @Test func moduleAbove4GiB() throws {
        let module = MultibootInfo.Module(
            range: try #require(AddressRange(start: 0xFFFF_F000, size: 0x1000)), commandLine: "")
        let error = loaderError { () throws(LoaderError) in try MultibootInfo(modules: [module], e820: []).encode() }
        #expect(error?.kind == "doesNotFit")
    }
}

@Suite struct KernelCommandLineTests {
    @Test func rejectsNUL() throws {
        let error = loaderError { () throws(LoaderError) in try KernelCommandLine("console=ttyS0\u{0}init=/bin/sh") }
        #expect(error?.kind == "invalidCommandLine")
        #expect(error?.message.contains("position 13") == true)
        var line = try KernelCommandLine("quiet")
        #expect(loaderError { () throws(LoaderError) in try line.append("a\u{0}") }?.kind == "invalidCommandLine")
    }

    @Test func encodesWithNUL() throws {
        let line = try KernelCommandLine("console=ttyS0 root=/dev/vda")
        #expect(try line.encoded(limit: 100) == Array("console=ttyS0 root=/dev/vda".utf8) + [0])
        #expect(try KernelCommandLine().encoded(limit: 0) == [0])
    }

    @Test func lengthLimit() throws {
        let line = try KernelCommandLine(String(repeating: "a", count: 2047))
        #expect(try line.encoded(limit: 2047).count == 2048)
        let error = loaderError { () throws(LoaderError) in try line.encoded(limit: 2046) }
        #expect(error?.kind == "invalidCommandLine")
        #expect(error?.message.contains("2047") == true)
    }

    @Test func limitPerProtocol() throws {
        var builder = BzImageBuilder()
        builder.commandLineSize = 255
        let setup = try SetupHeader(parsing: builder.build())
        #expect(KernelCommandLine.limit(for: .linux64(setupHeader: setup)) == 255)
        builder.commandLineSize = 0xFFFF_FFFF
        let huge = try SetupHeader(parsing: builder.build())
        #expect(KernelCommandLine.limit(for: .linux64(setupHeader: huge)) == 0x10000 - 1)
        #expect(KernelCommandLine.limit(for: .pvh(phys32Entry: 0x100_0000)) == 0x10000 - 1)
    }

    @Test func appendWithoutDuplicates() throws {
        var line = try KernelCommandLine("console=ttyS0 noxsave")
        try line.append("noxsave")
        #expect(line.text == "console=ttyS0 noxsave")
        try line.append("panic=1  noxsave reboot=k")
        #expect(line.text == "console=ttyS0 noxsave panic=1 reboot=k")
        #expect(line.options == ["console=ttyS0", "noxsave", "panic=1", "reboot=k"])
        var empty = try KernelCommandLine()
        try empty.append("noxsave")
        #expect(empty.text == "noxsave")
        // "noxsave" inside another option is not the option.
        var other = try KernelCommandLine("foo=noxsave")
        try other.append("noxsave")
        #expect(other.text == "foo=noxsave noxsave")
    }

    @Test func quotedValuesStayOneOption() throws {
        let line = try KernelCommandLine("init=/bin/sh dyndbg=\"file x.c +p\" quiet")
        #expect(line.options == ["init=/bin/sh", "dyndbg=\"file x.c +p\"", "quiet"])
        #expect(!line.contains(option: "+p\""))
    }

    @Test func parameterPresence() throws {
        var line = try KernelCommandLine("console=hvc0 quiet")
        #expect(line.hasParameter("console"))
        #expect(line.hasParameter("quiet"))
        #expect(!line.hasParameter("cons"))
        try line.appendIfParameterAbsent("console", option: "console=ttyS0")
        try line.appendIfParameterAbsent("earlyprintk", option: "earlyprintk=serial")
        #expect(line.text == "console=hvc0 quiet earlyprintk=serial")
    }
}

@Suite struct InitrdPlacementTests {
    @Test func highestAlignedAddress() throws {
        let address = try InitrdPlacement.highestAddress(size: 0x1234, lowest: 0x50_0000, limit: 0x1000_0000)
        #expect(address == 0x0FFF_E000)
        #expect(address % 4096 == 0)
        #expect(address + 0x1234 <= 0x1000_0000)
        // Exactly fits above the lowest address.
        #expect(
            try InitrdPlacement.highestAddress(size: 0x2000, lowest: 0x0FFF_E000, limit: 0x1000_0000) == 0x0FFF_E000)
        // The lower bound is rounded up to a page.
        #expect(
            try InitrdPlacement.highestAddress(size: 0x1000, lowest: 0x0FFF_E001, limit: 0x1000_0000) == 0x0FFF_F000)
    }

    @Test func doesNotFit() throws {
        let error = loaderError { () throws(LoaderError) in
            try InitrdPlacement.highestAddress(size: 0x2001, lowest: 0x0FFF_E000, limit: 0x1000_0000)
        }
        #expect(error?.kind == "doesNotFit")
        #expect(
            loaderError { () throws(LoaderError) in
                try InitrdPlacement.highestAddress(size: 0, lowest: 0, limit: 0x1000)
            }?.kind == "doesNotFit")
        #expect(
            loaderError { () throws(LoaderError) in
                try InitrdPlacement.highestAddress(size: UInt64.max, lowest: 0, limit: 0x1000)
            }?.kind == "doesNotFit")
        #expect(
            loaderError { () throws(LoaderError) in
                try InitrdPlacement.highestAddress(size: 1, lowest: UInt64.max, limit: 0x1000)
            }?.kind == "overflow")
    }

    @Test func limitFromInitrdAddressMax() throws {
        let map = try memoryMap(2 << 30)
        var builder = BzImageBuilder()
        builder.initrdAddressMax = 0x37FF_FFFF
        let kernel = try KernelImage.parse(builder.build(), memoryMap: map)
        #expect(InitrdPlacement.limit(for: kernel, memoryMap: map) == 0x3800_0000)
        builder.initrdAddressMax = 0xFFFF_FFFF
        let high = try KernelImage.parse(builder.build(), memoryMap: map)
        #expect(InitrdPlacement.limit(for: high, memoryMap: map) == 2 << 30)
        let big = try memoryMap(8 << 30)
        let pvh = try KernelImage.parse(ELFBuilder.pvhKernel().build(), memoryMap: big)
        #expect(InitrdPlacement.limit(for: pvh, memoryMap: big) == 0xC000_0000)
    }
}
