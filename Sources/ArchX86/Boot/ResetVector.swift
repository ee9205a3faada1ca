/// The code at the x86 reset vector (F000:FFF0, physical 0xFFFF0, 16 bytes), where a PC's
/// firmware starts and where a guest jumps to reboot "through the BIOS".
///
/// Skiff loads no firmware, yet Linux ends up here: on a hardware-reduced ACPI platform it picks
/// EFI as its first reboot method (`reboot_init`: `efi_reboot_required()` is true whenever
/// `acpi_gbl_reduced_hardware` is, and `efi_runtime_disabled()` is false without `efi=noruntime`),
/// `efi_reboot()` returns at once without EFI, and the next method, BOOT_BIOS
/// (`machine_real_restart`), switches to real mode and far-jumps to F000:FFF0. The ACPI reset
/// register, the keyboard controller, 0xCF9 and the triple fault come later or not at all. This
/// stub does what the firmware's reset path would: it writes the FADT reset value to the ACPI reset
/// register, pulses the i8042's reset line should that write be ignored, and halts.
public enum ResetVector {
    /// Guest-physical address of the stub.
    public static let address = Layout.resetVectorAddress

    /// 16-bit real-mode code (14 bytes):
    /// `mov al, value; mov dx, port; out dx, al; mov al, 0xfe; out 0x64, al; 1: cli; hlt; jmp 1b`.
    public static func code(resetPort: UInt16 = Layout.acpiResetPort, resetValue: UInt8 = Layout.acpiResetValue) -> [UInt8] {
        [
            0xb0, resetValue,  // mov al, resetValue
            0xba, UInt8(truncatingIfNeeded: resetPort), UInt8(truncatingIfNeeded: resetPort >> 8),  // mov dx, resetPort
            0xee,  // out dx, al
            0xb0, 0xfe,  // mov al, 0xfe (pulse the reset line)
            0xe6, UInt8(truncatingIfNeeded: Layout.i8042CommandPort),  // out 0x64, al
            0xfa,  // cli
            0xf4,  // hlt
            0xeb, 0xfc,  // jmp back to cli
        ]
    }
}
