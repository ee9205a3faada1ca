/// How the VMM enters the kernel.
public enum BootProtocol: Sendable, Equatable {
    /// Linux 64-bit boot protocol (bzImage): long mode with an identity map, `rip` = load address
    /// + 0x200, `rsi` = zero page.
    case linux64(setupHeader: SetupHeader)
    /// PVH (ELF with a `XEN_ELFNOTE_PHYS32_ENTRY` note): 32-bit protected mode, paging off,
    /// `eip` = the note's entry, `ebx` = `hvm_start_info`.
    case pvh(phys32Entry: UInt64)
    /// Multiboot v1: 32-bit protected mode, paging off, `eax` = 0x2BADB002, `ebx` = multiboot info.
    case multiboot(header: MultibootHeader)

    /// Short name for messages: "bzImage", "PVH" or "multiboot".
    public var name: String {
        switch self {
        case .linux64: return "bzImage"
        case .pvh: return "PVH"
        case .multiboot: return "multiboot"
        }
    }
}

/// Which loader to use; `.automatic` detects the format.
public enum KernelFormat: String, Sendable, CaseIterable {
    /// ELF with a PVH note, then a multiboot header in the first 8 KiB, then a bzImage header.
    case automatic
    /// Linux bzImage (boot protocol ≥ 2.12, 64-bit entry).
    case bzImage
    /// ELF32/ELF64 with a `XEN_ELFNOTE_PHYS32_ENTRY` note.
    case pvh
    /// Multiboot v1: ELF32 or the a.out kludge.
    case multiboot
}
