import ArchX86
import Testing

@testable import Loader

@Suite struct BzImageTests {
    let ram: MemoryMap

    init() throws { ram = try memoryMap(256 << 20) }

    @Test func parsesSyntheticBzImage() throws {
        let builder = BzImageBuilder()
        let image = builder.build()
        let kernel = try KernelImage.parse(image, memoryMap: ram)
        // boot.rst: "The 32-bit (non-real-mode) kernel starts at offset (setup_sects+1)*512" and
        // loads at 0x100000; the 64-bit entry is "the start address of loaded 64-bit kernel plus 0x200".
        #expect(kernel.entry == 0x100200)
        #expect(kernel.segments.count == 1)
        #expect(kernel.segments[0].address == 0x100000)
        let protectedModeStart: Int = (4 + 1) * 512
        let expected: [UInt8] = Array(image[protectedModeStart...])
        #expect(Array(kernel.segments[0].bytes) == expected)
        #expect(kernel.segments[0].zeroFill == 0)
        guard case .linux64(let header) = kernel.bootProtocol else {
            Issue.record("expected linux64, got \(kernel.bootProtocol)")
            return
        }
        #expect(header.version == 0x020F)
        #expect(header.setupSectors == 4)
        #expect(header.commandLineSize == 2047)
        #expect(header.initSize == 0x40_0000)
        #expect(header.preferredAddress == 0x100_0000)
        // Setup header bytes 0x1F1 ..< 0x202 + byte at 0x201.
        #expect(header.rawBytes == Array(image[0x1F1..<(0x202 + 0x6A)]))
        // Relocatable: runs from max(align_up(1 MiB, 2 MiB), pref_address) = 16 MiB; needs init_size from there.
        #expect(kernel.end == 0x100_0000 + 0x40_0000)
    }

    @Test func setupSectorsZeroMeansFour() throws {
        var builder = BzImageBuilder()
        builder.setupSectors = 0
        let image = builder.build()
        let kernel = try KernelImage.parse(image, memoryMap: ram, format: .bzImage)
        #expect(image.count == 5 * 512 + builder.kernelSize)
        #expect(kernel.segments[0].bytes.count == builder.kernelSize)
        let protectedModeStart: Int = (4 + 1) * 512
        let expected: [UInt8] = Array(image[protectedModeStart...])
        #expect(Array(kernel.segments[0].bytes) == expected)
    }

    @Test func largeSetupIsHonoured() throws {
        var builder = BzImageBuilder()
        builder.setupSectors = 39  // Debian 6.1 cloud kernel
        let image = builder.build()
        let kernel = try KernelImage.parse(image, memoryMap: ram)
        #expect(kernel.segments[0].bytes.count == builder.kernelSize)
        #expect(kernel.segments[0].bytes.startIndex == 40 * 512)
    }

    @Test func nonRelocatableRunsAtPreferredAddress() throws {
        var builder = BzImageBuilder()
        builder.relocatable = 0
        builder.preferredAddress = 0x200_0000
        let kernel = try KernelImage.parse(builder.build(), memoryMap: ram)
        #expect(kernel.end == 0x200_0000 + 0x40_0000)
    }

    @Test func relocatableAboveAlignedLoadAddress() throws {
        var builder = BzImageBuilder()
        builder.preferredAddress = 0x10_0000  // below align_up(1 MiB, 2 MiB)
        let kernel = try KernelImage.parse(builder.build(), memoryMap: ram)
        #expect(kernel.end == 0x20_0000 + 0x40_0000)
    }

    @Test func largeKernelEndsAtItsLoadedBytes() throws {
        var builder = BzImageBuilder()
        builder.kernelSize = 0x1_0000
        builder.initSize = 0x1000
        builder.preferredAddress = 0x10_0000
        let kernel = try KernelImage.parse(builder.build(), memoryMap: ram)
        // Loaded bytes end at 0x110000, below the runtime start align_up(1 MiB, 2 MiB) + init_size.
        #expect(kernel.end == 0x20_1000)
        builder.kernelSize = 0x20_0000
        let big = try KernelImage.parse(builder.build(), memoryMap: ram)
        #expect(big.end == 0x10_0000 + 0x20_0000)
    }

    @Test func readsKernelVersionString() throws {
        var builder = BzImageBuilder()
        builder.kernelVersionPointer = 0x300
        builder.kernelVersion = "6.1.0-test (builder@skiff) #1 SMP"
        let kernel = try KernelImage.parse(builder.build(), memoryMap: ram)
        guard case .linux64(let header) = kernel.bootProtocol else {
            Issue.record("not linux64")
            return
        }
        #expect(header.kernelVersion == "6.1.0-test (builder@skiff) #1 SMP")
    }

    @Test func everyTruncationIsAnError() throws {
        var builder = BzImageBuilder()
        builder.kernelSize = 0x100
        let image = builder.build()
        #expect(throws: Never.self) { try KernelImage.parse(image, memoryMap: ram) }
        // syssize is rounded up to 16-byte paragraphs, so up to 15 missing trailing bytes are tolerated.
        for length in (image.count - 15)..<image.count {
            #expect(throws: Never.self) { try KernelImage.parse(Array(image[0..<length]), memoryMap: ram) }
        }
        for length in 0..<(image.count - 15) {
            let prefix = Array(image[0..<length])
            let forced = loaderError { () throws(LoaderError) in
                try KernelImage.parse(prefix, memoryMap: ram, format: .bzImage)
            }
            #expect(forced != nil, "prefix of \(length) bytes parsed as bzImage")
            let detected = loaderError { () throws(LoaderError) in try KernelImage.parse(prefix, memoryMap: ram) }
            #expect(detected != nil, "prefix of \(length) bytes parsed")
            if length >= 0x206 {
                #expect(forced?.kind == "truncated", "prefix \(length): \(String(describing: forced))")
            }
        }
    }

    @Test func badSignature() throws {
        var image = BzImageBuilder().build()
        image[0x205] = UInt8(ascii: "s")
        let forced = loaderError { () throws(LoaderError) in
            try KernelImage.parse(image, memoryMap: ram, format: .bzImage)
        }
        #expect(forced?.kind == "badMagic")
        #expect(forced?.message.contains("HdrS") == true)
        let detected = loaderError { () throws(LoaderError) in try KernelImage.parse(image, memoryMap: ram) }
        #expect(detected?.kind == "unrecognizedFormat")
        #expect(detected?.message.contains("not a bzImage, PVH ELF or multiboot kernel") == true)
    }

    @Test func badBootFlag() throws {
        var image = BzImageBuilder().build()
        image[0x1FE] = 0x00
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(image, memoryMap: ram) }
        #expect(error?.kind == "badMagic")
        #expect(error?.message.contains("boot_flag") == true)
    }

    @Test(arguments: [UInt16(0x0200), 0x0206, 0x020A, 0x020B])
    func versionTooOld(version: UInt16) throws {
        var builder = BzImageBuilder()
        builder.version = version
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }
        #expect(error?.kind == "unsupported")
        #expect(error?.message.contains("2.12") == true)
    }

    @Test func versionTwelveIsAccepted() throws {
        var builder = BzImageBuilder()
        builder.version = 0x020C
        let kernel = try KernelImage.parse(builder.build(), memoryMap: ram)
        #expect(kernel.entry == 0x100200)
    }

    @Test func no64BitEntry() throws {
        var builder = BzImageBuilder()
        builder.xloadFlags = 0x0002
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }
        #expect(error?.kind == "unsupported")
        #expect(error?.message.contains("XLF_KERNEL_64") == true)
    }

    @Test func notLoadedHigh() throws {
        var builder = BzImageBuilder()
        builder.loadFlags = 0
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }
        #expect(error?.kind == "unsupported")
        #expect(error?.message.contains("LOADED_HIGH") == true)
    }

    @Test func jumpGivesTooShortHeader() throws {
        var builder = BzImageBuilder()
        builder.jumpOffset = 0x50
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }
        #expect(error?.kind == "malformed")
        builder.jumpOffset = 0x90
        let backwards = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }
        #expect(backwards?.kind == "malformed")
        var image = BzImageBuilder().build()
        image[0x200] = 0x90
        let notJump = loaderError { () throws(LoaderError) in try KernelImage.parse(image, memoryMap: ram) }
        #expect(notJump?.kind == "malformed")
    }

    @Test func hugeSetupSectorsPastEndOfFile() throws {
        var image = BzImageBuilder().build()
        image[0x1F1] = 0xFF  // (255 + 1) * 512 = 0x20000 > file size
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(image, memoryMap: ram) }
        #expect(error?.kind == "truncated")
        #expect(error?.message.contains("0x20000") == true)
    }

    @Test func syssizeLargerThanFile() throws {
        var builder = BzImageBuilder()
        builder.syssize = UInt32.max
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }
        #expect(error?.kind == "truncated")
        #expect(error?.message.contains("syssize") == true)
    }

    @Test func kernelAlignmentNotPowerOfTwo() throws {
        var builder = BzImageBuilder()
        builder.kernelAlignment = 0x30_0000
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }
        #expect(error?.kind == "malformed")
        builder.kernelAlignment = 0
        #expect(
            loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }?.kind
                == "malformed")
    }

    @Test func initSizeMustFitInRAM() throws {
        var builder = BzImageBuilder()
        builder.initSize = 0xFFFF_FFFF
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }
        #expect(error?.kind == "doesNotFit")
        #expect(error?.message.contains("init_size") == true)
        // 16 MiB of RAM cannot hold a kernel that decompresses at 16 MiB.
        let small = try memoryMap(16 << 20)
        let tooSmall = loaderError { () throws(LoaderError) in
            try KernelImage.parse(BzImageBuilder().build(), memoryMap: small)
        }
        #expect(tooSmall?.kind == "doesNotFit")
    }

    @Test func hugePreferredAddressOverflows() throws {
        var builder = BzImageBuilder()
        builder.preferredAddress = UInt64.max - 0x1000
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }
        #expect(error?.kind == "overflow")
    }

    @Test func nonRelocatableBelowOneMiBIsRefused() throws {
        var builder = BzImageBuilder()
        builder.relocatable = 0
        builder.preferredAddress = 0
        let error = loaderError { () throws(LoaderError) in try KernelImage.parse(builder.build(), memoryMap: ram) }
        #expect(error?.kind == "reservedMemory")
    }
}
