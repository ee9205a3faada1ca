import ArchX86
import Loader

/// The kernel loaders (bzImage, PVH ELF, multiboot ELF and a.out kludge) and the boot plan built
/// on them: the input is a choice of format, RAM size, initrd, modules and command line, followed
/// by the kernel image.
///
/// Checks: parsing and planning end in a kernel or a `LoaderError`; every write of a plan lies in
/// RAM (ranges that fit in 64 bits), kernel segments at or above 1 MiB, and no two writes overlap;
/// the entry point lies in RAM.
public enum LoaderHarness {
    static let ramSizes: [UInt64] = [16 << 20, 64 << 20, 256 << 20, 3 << 30, 5 << 30]

    public static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        var input = FuzzInput(data)
        let choice = input.u8()
        let format = KernelFormat.allCases[Int(choice & 3) % KernelFormat.allCases.count]
        let memoryMap: MemoryMap
        do {
            memoryMap = try MemoryMap(ramSize: ramSizes[Int(choice >> 2) % ramSizes.count])
        } catch {
            throw FuzzInvariantViolation("memory map: \(error)")
        }
        let initrd: [UInt8]? = choice & 0x40 != 0 ? [UInt8](repeating: 0x42, count: 1 + input.below(1 << 16)) : nil
        var modules: [BootModule] = []
        if choice & 0x80 != 0 {
            for i in 0..<input.below(3) {
                modules.append(BootModule(bytes: [UInt8](repeating: UInt8(i), count: input.below(9000))[...], commandLine: "module\(i) arg"))
            }
        }
        let commandLineText = String(decoding: input.bytes(input.below(64)).map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        let image = input.rest()

        let kernel: KernelImage
        do {
            kernel = try KernelImage.parse(image, memoryMap: memoryMap, format: format)
        } catch {
            return  // LoaderError: the typed throw admits nothing else
        }
        for segment in kernel.segments {
            guard let range = segment.range else { throw FuzzInvariantViolation("segment at \(segment.address) wraps") }
            try require(range.start >= 1 << 20 || range.isEmpty, "segment \(range) below 1 MiB")
            try require(inRAM(range, memoryMap), "segment \(range) outside RAM")
        }
        try require(inRAM(AddressRange(start: kernel.entry, size: 1), memoryMap), "entry \(kernel.entry) outside RAM")

        let plan: BootPlan
        do {
            let commandLine = try KernelCommandLine(commandLineText)
            plan = try BootPlan(kernel: kernel, initrd: initrd?[...], modules: modules, commandLine: commandLine,
                                memoryMap: memoryMap, rsdpAddress: choice & 0x20 != 0 ? 0xe0000 : nil)
        } catch {
            return
        }
        var ranges: [(String, AddressRange)] = []
        for write in plan.writes {
            guard let range = write.range else { throw FuzzInvariantViolation("\(write.label) wraps") }
            try require(inRAM(range, memoryMap), "\(write.label) \(range) outside RAM")
            for (label, other) in ranges where other.overlaps(range) {
                throw FuzzInvariantViolation("\(write.label) \(range) overlaps \(label) \(other)")
            }
            ranges.append((write.label, range))
        }
    }

    /// Whether `range` (or its first byte, for an empty range) lies inside one RAM range of the map.
    static func inRAM(_ range: AddressRange?, _ map: MemoryMap) -> Bool {
        guard let range else { return false }
        return map.ramRanges.contains { ram in
            range.start >= ram.address && range.end <= ram.address &+ ram.size && ram.address &+ ram.size >= ram.address
        }
    }
}
