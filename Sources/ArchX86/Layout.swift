/// The guest-physical memory map of a Skiff x86-64 VM.
///
/// Low memory holds the boot structures (GDT, page tables, zero page, command line, MP and
/// ACPI tables); the kernel loads at 1 MiB; RAM stops at 3 GiB and resumes at 4 GiB so that
/// the 3–4 GiB hole can hold PCI BARs, the PCI MMCONFIG window, the IOAPIC and the LAPIC.
public enum Layout {
    /// Boot GDT (four 8-byte entries: null, code, data, TSS).
    public static let gdtAddress: UInt64 = 0x500
    /// Boot IDT (one zero entry).
    public static let idtAddress: UInt64 = 0x520
    /// PVH `hvm_start_info`.
    public static let pvhStartInfoAddress: UInt64 = 0x6000
    /// PVH module list (`hvm_modlist_entry` array) right after the start info.
    public static let pvhModuleListAddress: UInt64 = 0x6040
    /// PVH memory map (`hvm_memmap_table_entry` array).
    public static let pvhMemoryMapAddress: UInt64 = 0x6400
    /// Linux zero page (`struct boot_params`).
    public static let zeroPageAddress: UInt64 = 0x7000
    /// Initial stack pointer for the 64-bit and 32-bit entries.
    public static let bootStackPointer: UInt64 = 0x8ff0
    /// Level-4 page table (PML4) of the boot identity map.
    public static let pml4Address: UInt64 = 0x9000
    /// Page-directory-pointer table of the boot identity map.
    public static let pdptAddress: UInt64 = 0xa000
    /// Four page directories mapping 0–4 GiB with 2 MiB pages (0xb000–0xefff).
    public static let pageDirectoriesAddress: UInt64 = 0xb000
    /// Number of page directories in the boot identity map.
    public static let pageDirectoryCount = 4
    /// Multiboot information structure and everything it points to (0x10000–0x1ffff).
    public static let multibootInfoAddress: UInt64 = 0x10000
    /// Size of the multiboot information area.
    public static let multibootInfoAreaSize: UInt64 = 0x10000
    /// Kernel command line.
    public static let commandLineAddress: UInt64 = 0x20000
    /// Largest command line Skiff passes, including the terminating NUL.
    public static let commandLineMaxSize: UInt64 = 0x10000
    /// Start of the EBDA / MP table area at the top of conventional memory.
    public static let ebdaAddress: UInt64 = 0x9fc00
    /// End of conventional (real-mode) RAM.
    public static let conventionalMemoryEnd: UInt64 = 0xa0000
    /// ACPI tables live in the BIOS area; the RSDP sits first so that a 16-byte scan finds it.
    public static let acpiTablesAddress: UInt64 = 0xe0000
    /// End of the BIOS area reserved for ACPI tables: the last page holds the VM generation ID
    /// and, in its last 16 bytes, the reset vector.
    public static let acpiTablesEnd: UInt64 = 0xff000
    /// The 16-byte VM Generation ID (in the reserved BIOS area, 8-byte aligned).
    public static let vmGenerationIDAddress: UInt64 = 0xff000
    /// The x86 reset vector, F000:FFF0: where a CPU starts after reset and where Linux jumps to
    /// reboot through the BIOS.
    public static let resetVectorAddress: UInt64 = 0xffff0
    /// Where protected-mode kernels load (1 MiB).
    public static let highMemoryStart: UInt64 = 0x100000

    /// Start of the 32-bit MMIO hole: RAM below 4 GiB ends here.
    public static let mmioHoleStart: UInt64 = 0xc000_0000
    /// First guest-physical address above the 32-bit hole.
    public static let highRAMStart: UInt64 = 0x1_0000_0000
    /// 32-bit PCI BAR window (0xc000_0000–0xdfff_ffff).
    public static let pciMMIO32Start: UInt64 = 0xc000_0000
    /// Size of the 32-bit PCI BAR window.
    public static let pciMMIO32Size: UInt64 = 0x2000_0000
    /// PCI MMCONFIG (ECAM) window for segment 0, buses 0–255.
    public static let pciMMCONFIGStart: UInt64 = 0xe000_0000
    /// Size of the PCI MMCONFIG window.
    public static let pciMMCONFIGSize: UInt64 = 0x1000_0000
    /// IOAPIC registers.
    public static let ioapicAddress: UInt64 = 0xfec0_0000
    /// Local APIC registers.
    public static let lapicAddress: UInt64 = 0xfee0_0000
    /// KVM's identity-map page (needed by VMX real mode).
    public static let kvmIdentityMapAddress: UInt64 = 0xfffb_c000
    /// KVM's three-page TSS area.
    public static let kvmTSSAddress: UInt64 = 0xfffb_d000

    /// I/O port of the ACPI sleep control register (hardware-reduced ACPI).
    public static let acpiSleepControlPort: UInt16 = 0x600
    /// I/O port of the ACPI sleep status register.
    public static let acpiSleepStatusPort: UInt16 = 0x601
    /// I/O port of the ACPI reset register; writing `acpiResetValue` reboots.
    public static let acpiResetPort: UInt16 = 0x604
    /// Value the guest writes to `acpiResetPort` to reset.
    public static let acpiResetValue: UInt8 = 0x01
    /// SLP_TYP value of the S5 (soft-off) state as given in the DSDT `_S5_` package.
    public static let acpiS5SleepType: UInt8 = 5

    /// COM1 base port and its legacy IRQ.
    public static let com1Port: UInt16 = 0x3f8
    public static let com1IRQ: UInt32 = 4
    /// i8042 keyboard controller ports (data 0x60, command/status 0x64) and IRQ.
    public static let i8042DataPort: UInt16 = 0x60
    public static let i8042CommandPort: UInt16 = 0x64
    public static let i8042IRQ: UInt32 = 1
    /// CMOS RTC index/data ports and IRQ.
    public static let rtcPort: UInt16 = 0x70
    public static let rtcIRQ: UInt32 = 8
    /// QEMU-compatible isa-debug-exit port.
    public static let debugExitPort: UInt16 = 0xf4
    /// QEMU-compatible fw_cfg selector (16-bit) and data (8-bit) ports.
    public static let fwCfgSelectorPort: UInt16 = 0x510
    public static let fwCfgDataPort: UInt16 = 0x511
    /// POST code port.
    public static let postCodePort: UInt16 = 0x80
    /// GSI of the Generic Event Device interrupt announcing a new VM generation ID.
    public static let generationIDEventGSI: UInt32 = 5
    /// GSI of the Generic Event Device interrupt for the power button.
    public static let powerButtonEventGSI: UInt32 = 6
    /// First GSI used for MSI routes; 0–23 are the IOAPIC pins.
    public static let firstMSIGSI: UInt32 = 24
}
