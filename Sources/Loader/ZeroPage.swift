import ArchX86

/// The Linux zero page (`struct boot_params`, 4096 bytes) for the 64-bit boot protocol.
///
/// Offsets from Documentation/arch/x86/zero-page.rst and boot.rst: acpi_rsdp_addr 0x070,
/// ext_ramdisk_image 0x0C0, ext_ramdisk_size 0x0C4, ext_cmd_line_ptr 0x0C8, e820_entries 0x1E8,
/// the setup header from 0x1F1, e820_table 0x2D0 (128 entries of 20 bytes).
public struct ZeroPage: Sendable {
    /// Size of `struct boot_params`.
    public static let size = 4096
    /// `e820_table` holds 0xA00 bytes: 128 entries of 20 bytes.
    public static let maximumE820Entries = 128
    /// `type_of_loader` for a loader without an assigned id.
    public static let undefinedLoader: UInt8 = 0xFF
    /// `vid_mode` "normal" (boot.rst, "vga=normal" means 0xFFFF).
    public static let normalVideoMode: UInt16 = 0xFFFF
    /// `loadflags` bit 7, CAN_USE_HEAP: Skiff runs no real-mode setup code and gives no heap.
    public static let canUseHeap: UInt8 = 0x80

    /// The image's setup header, copied to 0x1F1.
    public var setupHeader: SetupHeader
    /// Where the command line is (`cmd_line_ptr`, `ext_cmd_line_ptr`).
    public var commandLineAddress: UInt64
    /// The initrd, if any (`ramdisk_image`, `ramdisk_size` and their `ext_` high halves).
    public var initrd: AddressRange?
    /// The memory map (`e820_entries`, `e820_table`).
    public var e820: [E820Entry]
    /// The ACPI RSDP (`acpi_rsdp_addr`), if the VM has ACPI tables.
    public var rsdpAddress: UInt64?

    public init(
        setupHeader: SetupHeader, commandLineAddress: UInt64 = Layout.commandLineAddress, initrd: AddressRange?,
        e820: [E820Entry], rsdpAddress: UInt64?
    ) {
        self.setupHeader = setupHeader
        self.commandLineAddress = commandLineAddress
        self.initrd = initrd
        self.e820 = e820
        self.rsdpAddress = rsdpAddress
    }

    /// The 4096 bytes to write at `Layout.zeroPageAddress`.
    public func encode() throws(LoaderError) -> [UInt8] {
        guard e820.count <= Self.maximumE820Entries else {
            throw .tooManyEntries(
                "e820 map has \(e820.count) entries; the zero page holds at most \(Self.maximumE820Entries)")
        }
        var page = StructureWriter(size: Self.size)
        page.put(bytes: setupHeader.rawBytes, at: SetupHeader.offset)
        page.put(Self.normalVideoMode, at: 0x1FA)  // vid_mode
        page.put(Self.undefinedLoader, at: 0x210)  // type_of_loader
        page.put(setupHeader.loadFlags & ~Self.canUseHeap, at: 0x211)  // loadflags
        page.put(UInt16(0), at: 0x224)  // heap_end_ptr
        page.put(UInt8(0), at: 0x226)  // ext_loader_ver
        page.put(UInt8(0), at: 0x227)  // ext_loader_type
        page.put(UInt32(truncatingIfNeeded: commandLineAddress), at: 0x228)  // cmd_line_ptr
        page.put(UInt32(truncatingIfNeeded: commandLineAddress >> 32), at: 0x0C8)  // ext_cmd_line_ptr
        let ramdiskAddress = initrd?.start ?? 0
        let ramdiskSize = initrd?.size ?? 0
        page.put(UInt32(truncatingIfNeeded: ramdiskAddress), at: 0x218)  // ramdisk_image
        page.put(UInt32(truncatingIfNeeded: ramdiskSize), at: 0x21C)  // ramdisk_size
        page.put(UInt32(truncatingIfNeeded: ramdiskAddress >> 32), at: 0x0C0)  // ext_ramdisk_image
        page.put(UInt32(truncatingIfNeeded: ramdiskSize >> 32), at: 0x0C4)  // ext_ramdisk_size
        page.put(UInt32(0), at: 0x23C)  // hardware_subarch: default x86/PC
        page.put(UInt64(0), at: 0x240)  // hardware_subarch_data
        page.put(UInt64(0), at: 0x250)  // setup_data: Skiff passes none
        page.put(rsdpAddress ?? 0, at: 0x070)  // acpi_rsdp_addr
        page.put(UInt8(e820.count), at: 0x1E8)  // e820_entries
        for (i, entry) in e820.enumerated() {
            let at = 0x2D0 + i * 20
            page.put(entry.address, at: at)
            page.put(entry.size, at: at + 8)
            page.put(entry.kind.rawValue, at: at + 16)
        }
        return page.bytes
    }
}
