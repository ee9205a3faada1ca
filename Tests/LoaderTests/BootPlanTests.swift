import ArchX86
import Testing

@testable import Loader

/// Independent check of a plan: every write inside one RAM range, no two writes sharing a byte.
func expectSound(_ plan: BootPlan, _ map: MemoryMap, sourceLocation: SourceLocation = #_sourceLocation) {
    let ranges = plan.writes.map { ($0.label, $0.address, $0.address + UInt64($0.bytes.count) + $0.zeroFill) }
    for (label, start, end) in ranges {
        let inRAM = map.ramRanges.contains { start >= $0.address && end <= $0.address + $0.size }
        #expect(inRAM, "\(label) [\(hex(start)), \(hex(end))) outside RAM", sourceLocation: sourceLocation)
    }
    for i in ranges.indices {
        for j in ranges.indices where j > i {
            let a = ranges[i]
            let b = ranges[j]
            let overlap = a.1 < a.2 && b.1 < b.2 && a.1 < b.2 && b.1 < a.2
            #expect(!overlap, "\(a.0) overlaps \(b.0)", sourceLocation: sourceLocation)
        }
    }
}

extension BootPlan {
    func write(_ label: String) -> GuestWrite? { writes.first { $0.label == label } }
}

@Suite struct BootPlanTests {
    @Test func bzImageWithInitrd() throws {
        let map = try memoryMap(256 << 20)
        var builder = BzImageBuilder()
        builder.initrdAddressMax = 0x0800_0000 - 1  // initrd must end at or below 128 MiB
        let image = builder.build()
        let initrd = pattern(0x12345, seed: 9)
        let line = try KernelCommandLine("console=ttyS0 panic=1")
        let plan = try BootPlan(
            kernelImage: image, initrd: initrd[...], commandLine: line, memoryMap: map, rsdpAddress: 0xE0000)
        #expect(plan.entryState == .longMode(rip: 0x100200, rsi: 0x7000))
        #expect(plan.entry == 0x100200)
        expectSound(plan, map)

        let kernel = try #require(plan.write("kernel segment 0"))
        #expect(kernel.address == 0x100000)
        #expect(kernel.bytes.count == builder.kernelSize)

        // Highest 4 KiB-aligned address ending at or below initrd_addr_max + 1.
        let placed = try #require(plan.initrd)
        #expect(placed.start == (0x0800_0000 - 0x12345) & ~0xFFF)
        #expect(placed.size == 0x12345)
        let initrdWrite = try #require(plan.write("initrd"))
        #expect(initrdWrite.address == placed.start)
        #expect(Array(initrdWrite.bytes) == initrd)

        let zeroPage = Array(try #require(plan.write("zero page")).bytes)
        #expect(try #require(plan.write("zero page")).address == 0x7000)
        #expect(readLE(UInt32.self, zeroPage, at: 0x218) == UInt32(placed.start))  // ramdisk_image
        #expect(readLE(UInt32.self, zeroPage, at: 0x21C) == 0x12345)  // ramdisk_size
        #expect(readLE(UInt32.self, zeroPage, at: 0x228) == 0x20000)  // cmd_line_ptr
        #expect(readLE(UInt64.self, zeroPage, at: 0x070) == 0xE0000)  // acpi_rsdp_addr
        #expect(zeroPage[0x1E8] == UInt8(map.e820.count))  // e820_entries

        let commandLine = try #require(plan.write("command line"))
        #expect(commandLine.address == 0x20000)
        #expect(Array(commandLine.bytes) == Array("console=ttyS0 panic=1".utf8) + [0])
    }

    @Test func initrdGoesAboveTheDecompressionArea() throws {
        let map = try memoryMap(64 << 20)
        var builder = BzImageBuilder()
        builder.initSize = 0x200_0000  // kernel needs 16 MiB .. 48 MiB
        let kernel = try KernelImage.parse(builder.build(), memoryMap: map)
        #expect(kernel.end == 0x300_0000)
        let fits = try BootPlan(
            kernel: kernel, initrd: [UInt8](repeating: 0xAB, count: 0x100_0000)[...], commandLine: KernelCommandLine(),
            memoryMap: map)
        #expect(fits.initrd?.start == 0x300_0000)
        let error = loaderError { () throws(LoaderError) in
            try BootPlan(
                kernel: kernel, initrd: [UInt8](repeating: 0xAB, count: 0x100_0001)[...],
                commandLine: KernelCommandLine(), memoryMap: map)
        }
        #expect(error?.kind == "doesNotFit")
        #expect(error?.message.contains("initrd") == true)
    }

    @Test func commandLineTooLongForTheKernel() throws {
        var builder = BzImageBuilder()
        builder.commandLineSize = 10
        let map = try memoryMap(256 << 20)
        let error = loaderError { () throws(LoaderError) in
            try BootPlan(kernelImage: builder.build(), commandLine: KernelCommandLine("console=ttyS0"), memoryMap: map)
        }
        #expect(error?.kind == "invalidCommandLine")
        _ = try BootPlan(kernelImage: builder.build(), commandLine: KernelCommandLine("0123456789"), memoryMap: map)
    }

    @Test func pvhWithInitrd() throws {
        let map = try memoryMap(256 << 20)
        let initrd = pattern(0x3000)
        let plan = try BootPlan(
            kernelImage: ELFBuilder.pvhKernel().build(), initrd: initrd[...], commandLine: KernelCommandLine("quiet"),
            memoryMap: map, rsdpAddress: 0xE0000)
        #expect(plan.entryState == .protectedMode(eip: 0x0100_0040, eax: 0, ebx: 0x6000))
        expectSound(plan, map)
        let placed = try #require(plan.initrd)
        #expect(placed.end <= 256 << 20 && placed.start % 4096 == 0)
        #expect(placed.start == (256 << 20) - 0x3000)
        let start = Array(try #require(plan.write("PVH start info")).bytes)
        #expect(readLE(UInt32.self, start, at: 0) == 0x336E_C578)
        #expect(readLE(UInt32.self, start, at: 12) == 1)  // nr_modules: the initrd
        #expect(readLE(UInt64.self, start, at: 24) == 0x20000)  // cmdline_paddr
        #expect(readLE(UInt64.self, start, at: 32) == 0xE0000)  // rsdp_paddr
        let modules = Array(try #require(plan.write("PVH module list")).bytes)
        #expect(readLE(UInt64.self, modules, at: 0) == placed.start)
        #expect(readLE(UInt64.self, modules, at: 8) == 0x3000)
        #expect(plan.write("zero page") == nil)
    }

    @Test func multibootWithModules() throws {
        let map = try memoryMap(256 << 20)
        let kernelImage = AoutKludgeBuilder().build()  // occupies 0x100000 ..< 0x103000 with bss
        let plan = try BootPlan(
            kernelImage: kernelImage, initrd: pattern(0x1800)[...],
            modules: [
                BootModule(bytes: pattern(0x10)[...], commandLine: "mod1 arg"),
                BootModule(bytes: [][...], commandLine: "empty"),
            ],
            commandLine: KernelCommandLine("kernel args"), memoryMap: map)
        #expect(plan.entryState == .protectedMode(eip: 0x10_0010, eax: 0x2BAD_B002, ebx: 0x10000))
        expectSound(plan, map)
        #expect(plan.initrd == nil)
        #expect(plan.modules.map(\.start) == [0x10_3000, 0x10_5000, 0x10_6000])
        #expect(plan.modules.map(\.size) == [0x1800, 0x10, 0])
        let info = Array(try #require(plan.write("multiboot information")).bytes)
        #expect(readLE(UInt32.self, info, at: 20) == 3)  // mods_count
        #expect(readLE(UInt32.self, info, at: 16) == 0x20000)  // cmdline
        let mods = Int(readLE(UInt32.self, info, at: 24)) - 0x10000
        #expect(readLE(UInt32.self, info, at: mods) == 0x10_3000)
        #expect(readLE(UInt32.self, info, at: mods + 4) == 0x10_4800)
        #expect(readLE(UInt32.self, info, at: mods + 16) == 0x10_5000)
    }

    /// The bytes of the NUL-terminated string the multiboot information points at from `offset`.
    static func string(at guestAddress: UInt32, in plan: BootPlan) throws -> String {
        for write in plan.writes where UInt64(guestAddress) >= write.address && UInt64(guestAddress) < write.address + UInt64(write.bytes.count) {
            let bytes = Array(write.bytes.dropFirst(Int(UInt64(guestAddress) - write.address)))
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        Issue.record("no write holds 0x\(String(guestAddress, radix: 16))")
        return ""
    }

    /// Multiboot command lines begin with the file name as the user gave it, as GRUB and QEMU
    /// pass them: "k.elf a b" for the kernel (a trailing space when there are no arguments),
    /// "file args" (or "file") for modules, the initrd included.
    @Test func multibootCommandLinesStartWithTheFileName() throws {
        let map = try memoryMap(256 << 20)
        let image = AoutKludgeBuilder().build()
        let modules = [BootModule(bytes: pattern(0x10)[...], commandLine: "mod-arg  two", fileName: "/tmp/m1.bin"),
                       BootModule(bytes: pattern(0x10)[...], commandLine: "", fileName: "m2.bin"),
                       BootModule(bytes: pattern(0x10)[...], commandLine: "raw")]
        let plan = try BootPlan(kernelImage: image, initrd: pattern(0x100)[...], modules: modules,
                                commandLine: KernelCommandLine("a b=2"), memoryMap: map,
                                kernelFileName: "guests/k.elf", initrdFileName: "initrd.img")
        #expect(plan.commandLine.text == "guests/k.elf a b=2")
        #expect(Array(try #require(plan.write("command line")).bytes) == Array("guests/k.elf a b=2\0".utf8))
        let info = Array(try #require(plan.write("multiboot information")).bytes)
        let base = UInt32(0x10000)
        #expect(try Self.string(at: readLE(UInt32.self, info, at: 16), in: plan) == "guests/k.elf a b=2")
        let mods = Int(readLE(UInt32.self, info, at: 24) - base)
        let names = try (0..<4).map { try Self.string(at: readLE(UInt32.self, info, at: mods + 16 * $0 + 8), in: plan) }
        #expect(names == ["initrd.img", "/tmp/m1.bin mod-arg  two", "m2.bin", "raw"])

        let bare = try BootPlan(kernelImage: image, commandLine: KernelCommandLine(), memoryMap: map, kernelFileName: "/k")
        #expect(bare.commandLine.text == "/k ")
        // Without a file name (library callers), the command line is passed as it is.
        let plain = try BootPlan(kernelImage: image, commandLine: KernelCommandLine("a"), memoryMap: map)
        #expect(plain.commandLine.text == "a")
    }

    /// Linux's protocols never see the file name.
    @Test func linuxCommandLinesIgnoreTheFileName() throws {
        let map = try memoryMap(256 << 20)
        for image in [BzImageBuilder().build(), ELFBuilder.pvhKernel().build()] {
            let plan = try BootPlan(kernelImage: image, commandLine: KernelCommandLine("console=ttyS0"), memoryMap: map,
                                    kernelFileName: "vmlinux", initrdFileName: "initrd")
            #expect(plan.commandLine.text == "console=ttyS0")
        }
    }

    @Test func modulesOnlyForMultiboot() throws {
        let map = try memoryMap(256 << 20)
        let module = BootModule(bytes: pattern(8)[...])
        for image in [BzImageBuilder().build(), ELFBuilder.pvhKernel().build()] {
            let error = loaderError { () throws(LoaderError) in
                try BootPlan(kernelImage: image, modules: [module], commandLine: KernelCommandLine(), memoryMap: map)
            }
            #expect(error?.kind == "unsupported")
        }
    }

    @Test func modulesThatDoNotFit() throws {
        let map = try memoryMap(16 << 20)
        let error = loaderError { () throws(LoaderError) in
            try BootPlan(
                kernelImage: AoutKludgeBuilder().build(),
                modules: [BootModule(bytes: [UInt8](repeating: 0xAB, count: 16 << 20)[...])],
                commandLine: KernelCommandLine(), memoryMap: map)
        }
        #expect(error?.kind == "doesNotFit")
    }

    @Test func emptyInitrdIsRefused() throws {
        let map = try memoryMap(256 << 20)
        let error = loaderError { () throws(LoaderError) in
            try BootPlan(
                kernelImage: BzImageBuilder().build(), initrd: [][...], commandLine: KernelCommandLine(), memoryMap: map
            )
        }
        #expect(error?.kind == "doesNotFit")
        #expect(error?.message.contains("empty") == true)
    }

    @Test func overlappingWritesAreRefused() throws {
        let map = try memoryMap(256 << 20)
        var kernel = try KernelImage.parse(ELFBuilder.pvhKernel().build(), memoryMap: map)
        // A caller-modified image whose segment lands on the command line.
        kernel.segments[0].address = Layout.commandLineAddress
        let error = loaderError { () throws(LoaderError) in
            try BootPlan(kernel: kernel, commandLine: KernelCommandLine("x"), memoryMap: map)
        }
        #expect(error?.kind == "overlap")
        #expect(error?.message.contains("command line") == true)
    }

    @Test func writesOutsideRAMAreRefused() throws {
        let map = try memoryMap(256 << 20)
        var kernel = try KernelImage.parse(ELFBuilder.pvhKernel().build(), memoryMap: map)
        kernel.segments[1].address = (256 << 20) - 0x10
        let error = loaderError { () throws(LoaderError) in
            try BootPlan(kernel: kernel, commandLine: KernelCommandLine(), memoryMap: map)
        }
        #expect(error?.kind == "outsideRAM")
    }

    @Test func checkWritesWithTheVMMsOwn() throws {
        let map = try memoryMap(256 << 20)
        let plan = try BootPlan(kernelImage: BzImageBuilder().build(), commandLine: KernelCommandLine(), memoryMap: map)
        let pageTables = GuestWrite(label: "PML4", address: 0x9000, bytes: [UInt8](repeating: 0, count: 0x1000)[...])
        #expect(
            loaderError { () throws(LoaderError) in try BootPlan.checkWrites(plan.writes + [pageTables], memoryMap: map)
            } == nil)
        let clash = GuestWrite(label: "GDT", address: 0x7FF8, bytes: [UInt8](repeating: 0, count: 0x10)[...])
        let error = loaderError { () throws(LoaderError) in
            try BootPlan.checkWrites(plan.writes + [clash], memoryMap: map)
        }
        #expect(error?.kind == "overlap")
        #expect(error?.message.contains("zero page") == true)
        let outside = GuestWrite(label: "far", address: 256 << 20, bytes: [1][...])
        #expect(
            loaderError { () throws(LoaderError) in try BootPlan.checkWrites([outside], memoryMap: map) }?.kind
                == "outsideRAM")
        let wrapping = GuestWrite(label: "wrap", address: UInt64.max, bytes: [1, 2][...])
        #expect(
            loaderError { () throws(LoaderError) in try BootPlan.checkWrites([wrapping], memoryMap: map) }?.kind
                == "overflow")
    }

    @Test func writesInsideTheDecompressionAreaAreRefused() throws {
        let map = try memoryMap(256 << 20)
        let kernel = try KernelImage.parse(BzImageBuilder().build(), memoryMap: map)
        // The kernel's file bytes end at 0x103000 but it decompresses up to 0x1400000.
        #expect(kernel.reservedRange == AddressRange(start: 0x100000, end: 0x140_0000))
        var writes = kernel.segments.map { GuestWrite(label: "kernel segment 0", address: $0.address, bytes: $0.bytes) }
        writes.append(GuestWrite(label: "initrd", address: 0x80_0000, bytes: pattern(0x1000)[...]))
        let error = loaderError { () throws(LoaderError) in try BootPlan.check(writes, kernel: kernel, memoryMap: map) }
        #expect(error?.kind == "overlap")
        #expect(error?.message.contains("kernel's memory") == true)
        writes[1].address = 0x140_0000
        #expect(
            loaderError { () throws(LoaderError) in try BootPlan.check(writes, kernel: kernel, memoryMap: map) } == nil)
    }
}

/// Tests against a real Debian kernel when the environment points at one.
@Suite struct RealKernelTests {
    static let bzImagePath = Environment.variable("SKIFF_TEST_BZIMAGE")
    static let vmlinuxPath = Environment.variable("SKIFF_TEST_VMLINUX")

    @Test(.enabled(if: bzImagePath != nil, "SKIFF_TEST_BZIMAGE is not set: no real bzImage to parse"))
    func realBzImage() throws {
        let path = try #require(Self.bzImagePath)
        let image = try #require(readFile(path), "cannot read \(path)")
        let map = try memoryMap(512 << 20)
        let kernel = try KernelImage.parse(image, memoryMap: map)
        guard case .linux64(let header) = kernel.bootProtocol else {
            Issue.record("\(path) parsed as \(kernel.bootProtocol.name), expected bzImage")
            return
        }
        #expect(kernel.entry == 0x100200)
        #expect(header.version >= 0x020C)
        #expect(header.extendedLoadFlags & 1 == 1)
        // The protected-mode kernel is the file from (setup_sects + 1) * 512, setup_sects read independently.
        let setupSectors = image[0x1F1] == 0 ? 4 : Int(image[0x1F1])
        #expect(kernel.segments[0].bytes.count == image.count - (setupSectors + 1) * 512)
        #expect(header.kernelVersion != nil)
        let plan = try BootPlan(
            kernel: kernel, initrd: [UInt8](repeating: 0xAB, count: 1 << 20)[...],
            commandLine: KernelCommandLine("console=ttyS0 noxsave"),
            memoryMap: map, rsdpAddress: 0xE0000)
        expectSound(plan, map)
        let initrd = try #require(plan.initrd)
        #expect(initrd.start >= kernel.end)
    }

    @Test(.enabled(if: vmlinuxPath != nil, "SKIFF_TEST_VMLINUX is not set: no real PVH vmlinux to parse"))
    func realVmlinux() throws {
        let path = try #require(Self.vmlinuxPath)
        let image = try #require(readFile(path), "cannot read \(path)")
        let map = try memoryMap(512 << 20)
        let kernel = try KernelImage.parse(image, memoryMap: map)
        // The entry found by a plain byte search for the note: namesz 4, descsz 8, type 18, "Xen\0".
        let needle: [UInt8] = [4, 0, 0, 0, 8, 0, 0, 0, 18, 0, 0, 0] + Array("Xen".utf8) + [0]
        let at = try #require(firstIndex(of: needle, in: image), "no 64-bit PVH note bytes in \(path)")
        let expected = readLE(UInt64.self, image, at: at + needle.count)
        #expect(kernel.bootProtocol == .pvh(phys32Entry: expected))
        #expect(kernel.entry == expected)
        #expect(kernel.entry >= 0x100000)
        let plan = try BootPlan(
            kernel: kernel, initrd: [UInt8](repeating: 0xAB, count: 1 << 20)[...],
            commandLine: KernelCommandLine("console=ttyS0 noxsave"),
            memoryMap: map, rsdpAddress: 0xE0000)
        expectSound(plan, map)
        #expect(plan.entryState == .protectedMode(eip: UInt32(expected), eax: 0, ebx: 0x6000))
    }
}
