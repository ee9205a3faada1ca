import ArchX86

/// The PVH start-of-day structures: `struct hvm_start_info` (version 1), the `hvm_modlist_entry`
/// array and the `hvm_memmap_table_entry` array, as laid out in Xen's
/// public/arch-x86/hvm/start_info.h (also include/xen/interface/hvm/start_info.h in Linux).
///
/// hvm_start_info: magic 0, version 4, flags 8, nr_modules 12, modlist_paddr 16, cmdline_paddr 24,
/// rsdp_paddr 32, memmap_paddr 40, memmap_entries 48, reserved 52; 56 bytes.
/// hvm_modlist_entry: paddr 0, size 8, cmdline_paddr 16, reserved 24; 32 bytes.
/// hvm_memmap_table_entry: addr 0, size 8, type 16, reserved 20; 24 bytes.
public struct PVHStartInfo: Sendable {
    /// One module (the initrd is module 0).
    public struct Module: Sendable, Equatable {
        public var address: UInt64
        public var size: UInt64
        /// Address of the module's NUL-terminated command line, 0 for none.
        public var commandLineAddress: UInt64

        public init(address: UInt64, size: UInt64, commandLineAddress: UInt64 = 0) {
            self.address = address
            self.size = size
            self.commandLineAddress = commandLineAddress
        }
    }

    /// `XEN_HVM_START_MAGIC_VALUE`.
    public static let magic: UInt32 = 0x336E_C578
    /// Version 1 has the memory map fields.
    public static let version: UInt32 = 1
    public static let size = 56
    public static let moduleEntrySize = 32
    public static let memoryMapEntrySize = 24
    /// Modules that fit between `Layout.pvhModuleListAddress` and `Layout.pvhMemoryMapAddress`.
    public static var maximumModules: Int {
        Int((Layout.pvhMemoryMapAddress - Layout.pvhModuleListAddress) / UInt64(moduleEntrySize))
    }
    /// Memory map entries that fit between `Layout.pvhMemoryMapAddress` and `Layout.zeroPageAddress`.
    public static var maximumMemoryMapEntries: Int {
        Int((Layout.zeroPageAddress - Layout.pvhMemoryMapAddress) / UInt64(memoryMapEntrySize))
    }

    public var commandLineAddress: UInt64
    public var rsdpAddress: UInt64?
    public var modules: [Module]
    public var memoryMap: [E820Entry]

    public init(
        commandLineAddress: UInt64 = Layout.commandLineAddress, rsdpAddress: UInt64?, modules: [Module],
        memoryMap: [E820Entry]
    ) {
        self.commandLineAddress = commandLineAddress
        self.rsdpAddress = rsdpAddress
        self.modules = modules
        self.memoryMap = memoryMap
    }

    /// The start info at `Layout.pvhStartInfoAddress`, the module list at
    /// `Layout.pvhModuleListAddress` (when there are modules) and the memory map at
    /// `Layout.pvhMemoryMapAddress`.
    public func encode() throws(LoaderError) -> [GuestWrite] {
        guard modules.count <= Self.maximumModules else {
            throw .tooManyEntries(
                "PVH module list has \(modules.count) entries; there is room for \(Self.maximumModules)")
        }
        guard memoryMap.count <= Self.maximumMemoryMapEntries else {
            throw .tooManyEntries(
                "PVH memory map has \(memoryMap.count) entries; there is room for \(Self.maximumMemoryMapEntries)")
        }
        var info = StructureWriter(size: Self.size)
        info.put(Self.magic, at: 0)
        info.put(Self.version, at: 4)
        info.put(UInt32(0), at: 8)  // flags
        info.put(UInt32(modules.count), at: 12)  // nr_modules
        info.put(modules.isEmpty ? 0 : Layout.pvhModuleListAddress, at: 16)  // modlist_paddr
        info.put(commandLineAddress, at: 24)  // cmdline_paddr
        info.put(rsdpAddress ?? 0, at: 32)  // rsdp_paddr
        info.put(Layout.pvhMemoryMapAddress, at: 40)  // memmap_paddr
        info.put(UInt32(memoryMap.count), at: 48)  // memmap_entries
        var writes = [GuestWrite(label: "PVH start info", address: Layout.pvhStartInfoAddress, bytes: info.bytes[...])]

        if !modules.isEmpty {
            var list = StructureWriter(size: modules.count * Self.moduleEntrySize)
            for (i, module) in modules.enumerated() {
                let at = i * Self.moduleEntrySize
                list.put(module.address, at: at)
                list.put(module.size, at: at + 8)
                list.put(module.commandLineAddress, at: at + 16)
            }
            writes.append(
                GuestWrite(label: "PVH module list", address: Layout.pvhModuleListAddress, bytes: list.bytes[...]))
        }

        var map = StructureWriter(size: memoryMap.count * Self.memoryMapEntrySize)
        for (i, entry) in memoryMap.enumerated() {
            let at = i * Self.memoryMapEntrySize
            map.put(entry.address, at: at)
            map.put(entry.size, at: at + 8)
            map.put(entry.kind.rawValue, at: at + 16)
        }
        writes.append(GuestWrite(label: "PVH memory map", address: Layout.pvhMemoryMapAddress, bytes: map.bytes[...]))
        return writes
    }
}
