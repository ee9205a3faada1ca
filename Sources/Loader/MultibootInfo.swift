import ArchX86

/// The multiboot v1 information structure and everything it points to, laid out inside
/// `Layout.multibootInfoAddress ..< + Layout.multibootInfoAreaSize`.
///
/// Multiboot 0.6.96 §3.3: flags 0, mem_lower 4, mem_upper 8, boot_device 12, cmdline 16,
/// mods_count 20, mods_addr 24, syms 28–40, mmap_length 44, mmap_addr 48, drives 52/56,
/// config_table 60, boot_loader_name 64, apm_table 68, vbe 72–86, framebuffer 88–115.
/// Module entries: mod_start 0, mod_end 4, string 8, reserved 12 (16 bytes). Memory map entries:
/// size 0 (= 20, the bytes after it), base_addr 4, length 12, type 20 (24 bytes); `mmap_addr`
/// points at the first `size` field.
///
/// Layout in the area: the info structure (116 bytes, padded to 120), the memory map, the module
/// list, then the strings (loader name, module command lines). The kernel command line itself
/// lives at `Layout.commandLineAddress` like for the other protocols.
public struct MultibootInfo: Sendable {
    /// One loaded module.
    public struct Module: Sendable, Equatable {
        public var range: AddressRange
        public var commandLine: String

        public init(range: AddressRange, commandLine: String) {
            self.range = range
            self.commandLine = commandLine
        }
    }

    public static let flagMemory: UInt32 = 1 << 0
    public static let flagCommandLine: UInt32 = 1 << 2
    public static let flagModules: UInt32 = 1 << 3
    public static let flagMemoryMap: UInt32 = 1 << 6
    public static let flagBootLoaderName: UInt32 = 1 << 9
    /// Size of the info structure up to and including `color_info`.
    public static let structureSize = 116
    public static let moduleEntrySize = 16
    public static let memoryMapEntrySize = 24
    /// The `boot_loader_name` string.
    public static let bootLoaderName = "skiff"

    public var commandLineAddress: UInt64
    public var modules: [Module]
    public var e820: [E820Entry]

    public init(commandLineAddress: UInt64 = Layout.commandLineAddress, modules: [Module], e820: [E820Entry]) {
        self.commandLineAddress = commandLineAddress
        self.modules = modules
        self.e820 = e820
    }

    /// KiB of RAM from address 0, at most 640 (the e820 RAM entry that starts at 0).
    public var memoryLowerKiB: UInt32 {
        let size = e820.first { $0.kind == .ram && $0.address == 0 }?.size ?? 0
        return UInt32(min(size, 640 * 1024) / 1024)
    }

    /// KiB of RAM from 1 MiB up to the first hole (the e820 RAM entry that starts at 1 MiB).
    public var memoryUpperKiB: UInt32 {
        let size = e820.first { $0.kind == .ram && $0.address == Layout.highMemoryStart }?.size ?? 0
        return UInt32(min(size / 1024, UInt64(UInt32.max)))
    }

    /// The bytes to write at `Layout.multibootInfoAddress`.
    public func encode() throws(LoaderError) -> [UInt8] {
        let base = Layout.multibootInfoAddress
        let areaSize = Int(Layout.multibootInfoAreaSize)
        let mapOffset = (Self.structureSize + 7) & ~7
        let mapSize = e820.count * Self.memoryMapEntrySize
        let modulesOffset = mapOffset + mapSize
        let stringsOffset = modulesOffset + modules.count * Self.moduleEntrySize
        var strings: [UInt8] = Array(Self.bootLoaderName.utf8) + [0]
        var moduleStringOffsets: [Int] = []
        for (i, module) in modules.enumerated() {
            try KernelCommandLine.checkNoNUL(module.commandLine, what: "multiboot module \(i) command line")
            guard module.range.end <= UInt64(UInt32.max) else {
                throw .doesNotFit(
                    "multiboot module \(i) at \(module.range) does not end below 4 GiB; mod_start/mod_end are 32-bit")
            }
            moduleStringOffsets.append(stringsOffset + strings.count)
            strings += Array(module.commandLine.utf8) + [0]
            guard stringsOffset + strings.count <= areaSize else { break }
        }
        let total = stringsOffset + strings.count
        guard total <= areaSize else {
            throw .doesNotFit(
                "multiboot information (\(e820.count) memory map entries, \(modules.count) modules and their command lines) needs \(total) bytes; the area at \(hex(base)) holds \(areaSize)"
            )
        }
        guard commandLineAddress <= UInt64(UInt32.max) else {
            throw .doesNotFit("multiboot command line at \(hex(commandLineAddress)) is above 4 GiB; cmdline is 32-bit")
        }

        var area = StructureWriter(size: total)
        let flags =
            Self.flagMemory | Self.flagCommandLine | Self.flagModules | Self.flagMemoryMap | Self.flagBootLoaderName
        area.put(flags, at: 0)
        area.put(memoryLowerKiB, at: 4)
        area.put(memoryUpperKiB, at: 8)
        area.put(UInt32(commandLineAddress), at: 16)
        area.put(UInt32(modules.count), at: 20)
        area.put(UInt32(base) + UInt32(modulesOffset), at: 24)
        area.put(UInt32(mapSize), at: 44)
        area.put(UInt32(base) + UInt32(mapOffset), at: 48)
        area.put(UInt32(base) + UInt32(stringsOffset), at: 64)
        for (i, entry) in e820.enumerated() {
            let at = mapOffset + i * Self.memoryMapEntrySize
            area.put(UInt32(Self.memoryMapEntrySize - 4), at: at)
            area.put(entry.address, at: at + 4)
            area.put(entry.size, at: at + 12)
            area.put(entry.kind.rawValue, at: at + 20)
        }
        for (i, module) in modules.enumerated() {
            let at = modulesOffset + i * Self.moduleEntrySize
            area.put(UInt32(module.range.start), at: at)
            area.put(UInt32(module.range.end), at: at + 4)
            area.put(UInt32(base) + UInt32(moduleStringOffsets[i]), at: at + 8)
        }
        area.put(bytes: strings, at: stringsOffset)
        return area.bytes
    }
}
