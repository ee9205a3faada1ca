import ArchX86
import Testing

@testable import Loader

/// Deterministic pseudo-random generator (SplitMix64), so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Corrupts valid images at random and checks the loader never traps: every mutant either parses
/// into a plan whose writes are sound, or is refused with a LoaderError.
@Suite struct MutationTests {
    static let interesting: [UInt64] = [
        0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF,
    ]

    static func mutate(_ image: [UInt8], region: Int, rng: inout SplitMix64) -> [UInt8] {
        var copy = image
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let limit = min(region, copy.count)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0:
                copy[Int.random(in: 0..<limit, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 1:
                let at = Int.random(in: 0..<max(1, limit - 8), using: &rng) & ~3
                let value = interesting.randomElement(using: &rng) ?? 0
                for i in 0..<8 where at + i < copy.count { copy[at + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
            case 2:
                copy.removeLast(Int.random(in: 0...min(copy.count, 64), using: &rng))
            default:
                let at = Int.random(in: 0..<max(1, limit - 4), using: &rng) & ~3
                let value = UInt32.random(in: 0...UInt32.max, using: &rng)
                for i in 0..<4 where at + i < copy.count { copy[at + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
            }
            if copy.isEmpty { break }
        }
        return copy
    }

    static let seeds: [(String, [UInt8], Int)] = {
        var bz = BzImageBuilder()
        bz.kernelSize = 0x200
        var mbElf = ELFBuilder()
        mbElf.is64 = false
        mbElf.entry = 0x10_0000
        mbElf.prefix = multibootHeader(flags: 0x0000_0003)
        mbElf.segments = [
            ELFBuilder.Segment(
                physicalAddress: 0x10_0000, virtualAddress: 0x10_0000, bytes: pattern(0x100), memorySize: 0x400)
        ]
        var pvhSection = ELFBuilder.pvhKernel(is64: false, descriptorSize: 4)
        pvhSection.notesInSectionOnly = true
        return [
            ("bzImage", bz.build(), 0x280),
            ("PVH ELF64", ELFBuilder.pvhKernel().build(), 0x400),
            ("PVH ELF32 section note", pvhSection.build(), 0x1000),
            ("multiboot a.out", AoutKludgeBuilder().build(), 0x80),
            ("multiboot ELF32", mbElf.build(), 0x200),
        ]
    }()

    @Test(arguments: 0..<5)
    func mutantsNeverTrap(seedIndex: Int) throws {
        let (name, image, region) = Self.seeds[seedIndex]
        let map = try memoryMap(128 << 20)
        var rng = SplitMix64(state: UInt64(seedIndex) &* 0x1234_5678 &+ 1)
        let initrd = pattern(0x1000)[...]
        let commandLine = try KernelCommandLine("console=ttyS0")
        var parsed = 0
        var refused = 0
        for _ in 0..<2000 {
            let mutant = Self.mutate(image, region: region, rng: &rng)
            for format in KernelFormat.allCases {
                do throws(LoaderError) {
                    let plan = try BootPlan(
                        kernelImage: mutant, format: format, initrd: initrd, commandLine: commandLine, memoryMap: map)
                    expectSound(plan, map)
                    parsed += 1
                } catch {
                    #expect(!error.message.isEmpty)
                    refused += 1
                }
            }
        }
        // Both outcomes occur, so the mutations are neither all fatal nor all harmless.
        #expect(parsed > 0, "\(name): no mutant parsed")
        #expect(refused > 0, "\(name): no mutant refused")
    }
}
