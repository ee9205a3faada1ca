@testable import ArchX86

/// A register value with the given bits set.
func bits(_ positions: UInt32...) -> UInt32 {
    positions.reduce(0) { $0 | (1 << $1) }
}

/// Fixture tables in the shape KVM_GET_SUPPORTED_CPUID returns them.
enum CPUIDFixtures {
    static let sig = CPUIDEntry.significantIndex
    static let amdVendor = (ebx: UInt32(0x6874_7541), ecx: UInt32(0x444D_4163), edx: UInt32(0x6974_6E65))  // AuthenticAMD
    static let intelVendor = (ebx: UInt32(0x756E_6547), ecx: UInt32(0x6C65_746E), edx: UInt32(0x4965_6E69))  // GenuineIntel
    static let kvmLeaves = [
        CPUIDEntry(function: 0x4000_0000, eax: 0x4000_0001, ebx: 0x4B4D_564B, ecx: 0x564B_4D56, edx: 0x4D),
        CPUIDEntry(function: 0x4000_0001, eax: 0x0100_7EFB),
    ]

    /// An AMD EPYC (Zen 3, "Milan") host running KVM from Linux 6.1: no TSC_DEADLINE in the
    /// supported set (it came with the capability), SVM reported because nested=1 is the default.
    static let amdEPYC: [CPUIDEntry] = [
        CPUIDEntry(function: 0x0, eax: 0x10, ebx: amdVendor.ebx, ecx: amdVendor.ecx, edx: amdVendor.edx),
        CPUIDEntry(
            function: 0x1, eax: 0x00A0_0F11, ebx: 0x0080_0800,
            ecx: bits(0, 1, 9, 12, 13, 19, 20, 21, 22, 23, 25, 26, 28, 29, 30, 31),
            edx: bits(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 23, 24, 25, 26)),
        CPUIDEntry(function: 0x2),
        CPUIDEntry(function: 0x3),
        CPUIDEntry(function: 0x5, eax: 0x40, ebx: 0x40, ecx: 0x3, edx: 0x11),
        CPUIDEntry(function: 0x6, eax: 0x4),
        CPUIDEntry(
            function: 0x7, index: 0, flags: sig, eax: 0, ebx: bits(0, 3, 5, 7, 8, 9, 10, 18, 19, 20, 23, 24, 29),
            ecx: bits(2, 3, 9, 10, 22), edx: bits(4, 26, 27, 29, 31)),
        CPUIDEntry(function: 0x8),
        CPUIDEntry(function: 0x9),
        CPUIDEntry(function: 0xA),
        CPUIDEntry(function: 0xB, index: 0, flags: sig, eax: 1, ebx: 2, ecx: 0x100, edx: 0),
        CPUIDEntry(function: 0xC),
        CPUIDEntry(function: 0xD, index: 0, flags: sig, eax: 0x207, ebx: 0x340, ecx: 0x988),
        CPUIDEntry(function: 0xD, index: 1, flags: sig, eax: 0xF),
        CPUIDEntry(function: 0xD, index: 2, flags: sig, eax: 0x100, ebx: 0x240),
        CPUIDEntry(function: 0xD, index: 9, flags: sig, eax: 0x8, ebx: 0x980),
        CPUIDEntry(function: 0xE),
        CPUIDEntry(function: 0xF, index: 0, flags: sig),
        CPUIDEntry(function: 0x10, index: 0, flags: sig),
        CPUIDEntry(function: 0x8000_0000, eax: 0x8000_0021, ebx: amdVendor.ebx, ecx: amdVendor.ecx, edx: amdVendor.edx),
        CPUIDEntry(
            function: 0x8000_0001, eax: 0x00A0_0F11, ebx: 0x4000_0000, ecx: bits(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 22, 23),
            edx: bits(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 20, 22, 23, 24, 25, 26, 27, 29)),
        CPUIDEntry(function: 0x8000_0002),
        CPUIDEntry(function: 0x8000_0003),
        CPUIDEntry(function: 0x8000_0004),
        CPUIDEntry(function: 0x8000_0005, eax: 0xFF40_FF40, ebx: 0xFF40_FF40, ecx: 0x2008_0140, edx: 0x2008_0140),
        CPUIDEntry(function: 0x8000_0006, eax: 0x4800_2200, ebx: 0x6800_4200, ecx: 0x0200_6140, edx: 0x0100_9140),
        CPUIDEntry(function: 0x8000_0007, edx: bits(8)),
        CPUIDEntry(function: 0x8000_0008, eax: 0x3030, ebx: bits(0, 2, 9, 12, 14, 15, 24, 25), ecx: 0x707F),
        CPUIDEntry(function: 0x8000_000A, eax: 1, ebx: 0x8000, edx: 0x0001_BCFF),
        CPUIDEntry(function: 0x8000_001D, index: 0, flags: sig, eax: 0x0000_4121, ebx: 0x01C0_003F, ecx: 0x3F),
        CPUIDEntry(function: 0x8000_001D, index: 1, flags: sig, eax: 0x0000_4122, ebx: 0x01C0_003F, ecx: 0x3F),
        CPUIDEntry(function: 0x8000_001D, index: 2, flags: sig, eax: 0x0000_4143, ebx: 0x01C0_003F, ecx: 0x3FF, edx: 2),
        CPUIDEntry(function: 0x8000_001D, index: 3, flags: sig, eax: 0x0003_C163, ebx: 0x03C0_003F, ecx: 0x7FFF, edx: 1),
        CPUIDEntry(function: 0x8000_001D, index: 4, flags: sig),
        CPUIDEntry(function: 0x8000_001E, eax: 0x22, ebx: 0x0000_0111, ecx: 0x0000_0103),
        CPUIDEntry(function: 0x8000_001F),
        CPUIDEntry(function: 0x8000_0021, eax: 0x45),
    ] + kvmLeaves

    /// An Intel Xeon (Sapphire Rapids) host: leaf 0x1F present, VMX and PDCM reported (nested
    /// and the vPMU are on by default), AVX-512 and AMX, TSC_DEADLINE reported.
    static let intelXeon: [CPUIDEntry] = [
        CPUIDEntry(function: 0x0, eax: 0x1F, ebx: intelVendor.ebx, ecx: intelVendor.ecx, edx: intelVendor.edx),
        CPUIDEntry(
            function: 0x1, eax: 0x0008_06F8, ebx: 0x0000_0800,
            ecx: bits(0, 1, 5, 9, 12, 13, 15, 17, 19, 20, 21, 22, 23, 24, 25, 26, 28, 29, 30, 31),
            edx: bits(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 23, 24, 25, 26, 27)),
        CPUIDEntry(function: 0x2, eax: 0x00FE_FF01, ebx: 0xF0),
        CPUIDEntry(function: 0x3),
        CPUIDEntry(function: 0x4, index: 0, flags: sig, eax: 0xFC00_4121, ebx: 0x02C0_003F, ecx: 0x3F),
        CPUIDEntry(function: 0x4, index: 1, flags: sig, eax: 0xFC00_4122, ebx: 0x01C0_003F, ecx: 0x3F),
        CPUIDEntry(function: 0x4, index: 2, flags: sig, eax: 0xFC00_4143, ebx: 0x03C0_003F, ecx: 0x7FF),
        CPUIDEntry(function: 0x4, index: 3, flags: sig, eax: 0xFC1F_C163, ebx: 0x03C0_003F, ecx: 0x1_FFFF, edx: 4),
        CPUIDEntry(function: 0x4, index: 4, flags: sig),
        CPUIDEntry(function: 0x5),
        CPUIDEntry(function: 0x6, eax: 0x4),
        CPUIDEntry(
            function: 0x7, index: 0, flags: sig, eax: 2,
            ebx: bits(0, 1, 3, 4, 5, 7, 8, 9, 10, 11, 13, 16, 17, 18, 19, 20, 21, 23, 24, 28, 29, 30, 31),
            ecx: bits(1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 14, 16, 22, 24, 25, 27, 28),
            edx: bits(4, 10, 14, 16, 22, 23, 24, 25, 26, 27, 28, 29, 31)),
        CPUIDEntry(function: 0x7, index: 1, flags: sig, eax: bits(4, 5)),
        CPUIDEntry(function: 0x7, index: 2, flags: sig, edx: bits(0, 1, 2)),
        CPUIDEntry(function: 0x8),
        CPUIDEntry(function: 0x9),
        CPUIDEntry(function: 0xA, eax: 0x0830_0805, edx: 0x603),
        CPUIDEntry(function: 0xB, index: 0, flags: sig, eax: 1, ebx: 2, ecx: 0x100),
        CPUIDEntry(function: 0xC),
        CPUIDEntry(function: 0xD, index: 0, flags: sig, eax: 0x2E7, ebx: 0xA88, ecx: 0xA88),
        CPUIDEntry(function: 0xD, index: 1, flags: sig, eax: 0x1F),
        CPUIDEntry(function: 0xD, index: 2, flags: sig, eax: 0x100, ebx: 0x240),
        CPUIDEntry(function: 0xD, index: 5, flags: sig, eax: 0x40, ebx: 0x440),
        CPUIDEntry(function: 0xD, index: 6, flags: sig, eax: 0x200, ebx: 0x480),
        CPUIDEntry(function: 0xD, index: 7, flags: sig, eax: 0x400, ebx: 0x680),
        CPUIDEntry(function: 0xD, index: 9, flags: sig, eax: 0x8, ebx: 0xA80),
        CPUIDEntry(function: 0x12, index: 0, flags: sig),
        CPUIDEntry(function: 0x14, index: 0, flags: sig),
        CPUIDEntry(function: 0x1D, index: 0, flags: sig, eax: 1),
        CPUIDEntry(function: 0x1D, index: 1, flags: sig, eax: 0x0400_2000, ebx: 0x0008_0040, ecx: 0x10),
        CPUIDEntry(function: 0x1E, index: 0, flags: sig, ebx: 0x4010),
        CPUIDEntry(function: 0x1F, index: 0, flags: sig, eax: 1, ebx: 2, ecx: 0x100),
        CPUIDEntry(function: 0x8000_0000, eax: 0x8000_0008),
        CPUIDEntry(function: 0x8000_0001, ecx: bits(0, 5, 8), edx: bits(11, 20, 26, 27, 29)),
        CPUIDEntry(function: 0x8000_0002),
        CPUIDEntry(function: 0x8000_0003),
        CPUIDEntry(function: 0x8000_0004),
        CPUIDEntry(function: 0x8000_0005),
        CPUIDEntry(function: 0x8000_0006, ecx: 0x0800_7040),
        CPUIDEntry(function: 0x8000_0007, edx: bits(8)),
        CPUIDEntry(function: 0x8000_0008, eax: 0x392E, ebx: bits(9)),
    ] + kvmLeaves

    /// KVM_GET_SUPPORTED_CPUID as captured from a nested, instruction-emulating KVM (Linux 6.18)
    /// on an AMD EPYC host: SSE3, SSSE3, POPCNT and XSAVE are absent from leaf 1 while CX16 is present.
    static let nestedAMDEPYC: [CPUIDEntry] = {
        let rows: [(UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)] = [
            (0x0000_0000, 0, 0, 0x0000_001C, 0x6874_7541, 0x444D_4163, 0x6974_6E65),
            (0x0000_0001, 0, 0, 0x00A1_0F11, 0x0102_0800, 0x8120_2000, 0x078B_FBFF),
            (0x0000_0002, 0, 0, 0, 0, 0, 0), (0x0000_0003, 0, 0, 0, 0, 0, 0), (0x0000_0004, 0, 1, 0, 0, 0, 0),
            (0x0000_0005, 0, 0, 0, 0, 0, 0), (0x0000_0006, 0, 0, 0x0000_0004, 0, 0, 0),
            (0x0000_0007, 0, 1, 0x0000_0001, 0x0180_0002, 0x0000_0104, 0x2000_0000), (0x0000_0007, 1, 1, 0, 0, 0, 0),
            (0x0000_0008, 0, 0, 0, 0, 0, 0), (0x0000_0009, 0, 0, 0, 0, 0, 0), (0x0000_000A, 0, 0, 0, 0, 0, 0),
            (0x0000_000B, 0, 1, 0, 0, 0, 0x0000_0001), (0x0000_000C, 0, 0, 0, 0, 0, 0),
            (0x0000_000D, 0, 1, 0x0000_00E7, 0x0000_0980, 0x0000_0980, 0), (0x0000_000D, 1, 1, 0, 0, 0, 0),
            (0x0000_000D, 2, 1, 0x0000_0100, 0x0000_0240, 0, 0), (0x0000_000D, 5, 1, 0x0000_0040, 0x0000_0340, 0, 0),
            (0x0000_000D, 6, 1, 0x0000_0200, 0x0000_0380, 0, 0), (0x0000_000D, 7, 1, 0x0000_0400, 0x0000_0580, 0, 0),
            (0x0000_000E, 0, 0, 0, 0, 0, 0), (0x0000_000F, 0, 1, 0, 0, 0, 0), (0x0000_0010, 0, 1, 0, 0, 0, 0),
            (0x0000_0011, 0, 0, 0, 0, 0, 0), (0x0000_0012, 0, 1, 0, 0, 0, 0), (0x0000_0013, 0, 0, 0, 0, 0, 0),
            (0x0000_0014, 0, 1, 0, 0, 0, 0), (0x0000_0015, 0, 0, 0, 0, 0, 0), (0x0000_0016, 0, 0, 0, 0, 0, 0),
            (0x0000_0017, 0, 1, 0, 0, 0, 0), (0x0000_0018, 0, 1, 0, 0, 0, 0), (0x0000_0019, 0, 0, 0, 0, 0, 0),
            (0x0000_001A, 0, 0, 0, 0, 0, 0), (0x0000_001B, 0, 0, 0, 0, 0, 0), (0x0000_001C, 0, 0, 0, 0, 0, 0),
            (0x8000_0000, 0, 0, 0x8000_0021, 0x6874_7541, 0x444D_4163, 0x6974_6E65),
            (0x8000_0001, 0, 0, 0x00A1_0F11, 0x4000_0000, 0x0040_0393, 0x23D3_FBFF),
            (0x8000_0002, 0, 0, 0, 0, 0, 0), (0x8000_0003, 0, 0, 0, 0, 0, 0), (0x8000_0004, 0, 0, 0, 0, 0, 0),
            (0x8000_0005, 0, 0, 0xFF48_FF40, 0xFF48_FF40, 0x2008_0140, 0x2008_0140),
            (0x8000_0006, 0, 0, 0x5C00_2200, 0x6C00_4200, 0x0400_6140, 0x0A00_9140),
            (0x8000_0007, 0, 0, 0, 0, 0, 0x0000_0100), (0x8000_0008, 0, 0, 0x0000_3030, 0x5002_0005, 0x0000_7001, 0),
            (0x8000_0009, 0, 0, 0, 0, 0, 0), (0x8000_000A, 0, 0, 0, 0, 0, 0), (0x8000_000B, 0, 0, 0, 0, 0, 0),
            (0x8000_000C, 0, 0, 0, 0, 0, 0), (0x8000_000D, 0, 0, 0, 0, 0, 0), (0x8000_000E, 0, 0, 0, 0, 0, 0),
            (0x8000_000F, 0, 0, 0, 0, 0, 0), (0x8000_0010, 0, 0, 0, 0, 0, 0), (0x8000_0011, 0, 0, 0, 0, 0, 0),
            (0x8000_0012, 0, 0, 0, 0, 0, 0), (0x8000_0013, 0, 0, 0, 0, 0, 0), (0x8000_0014, 0, 0, 0, 0, 0, 0),
            (0x8000_0015, 0, 0, 0, 0, 0, 0), (0x8000_0016, 0, 0, 0, 0, 0, 0), (0x8000_0017, 0, 0, 0, 0, 0, 0),
            (0x8000_0018, 0, 0, 0, 0, 0, 0), (0x8000_0019, 0, 0, 0, 0, 0, 0), (0x8000_001A, 0, 0, 0x0000_0006, 0, 0, 0),
            (0x8000_001B, 0, 0, 0, 0, 0, 0), (0x8000_001C, 0, 0, 0, 0, 0, 0),
            (0x8000_001D, 0, 1, 0x0000_0121, 0x01C0_003F, 0x0000_003F, 0),
            (0x8000_001D, 1, 1, 0x0000_0122, 0x01C0_003F, 0x0000_003F, 0),
            (0x8000_001D, 2, 1, 0x0000_0143, 0x01C0_003F, 0x0000_07FF, 0x0000_0002),
            (0x8000_001D, 3, 1, 0x0000_4163, 0x03C0_003F, 0x0000_7FFF, 0x0000_0001), (0x8000_001D, 4, 1, 0, 0, 0, 0),
            (0x8000_001E, 0, 0, 0, 0, 0, 0), (0x8000_001F, 0, 0, 0, 0, 0, 0), (0x8000_0020, 0, 0, 0, 0, 0, 0),
            (0x8000_0021, 0, 0, 0x0000_0204, 0, 0x0000_0006, 0),
            (0x4000_0000, 0, 0, 0x4000_0001, 0x4B4D_564B, 0x564B_4D56, 0x0000_004D), (0x4000_0001, 0, 0, 0x0100_7EFB, 0, 0, 0),
        ]
        return rows.map { CPUIDEntry(function: $0.0, index: $0.1, flags: $0.2, eax: $0.3, ebx: $0.4, ecx: $0.5, edx: $0.6) }
    }()

    static let all: [(name: String, entries: [CPUIDEntry], vendor: CPUVendor)] = [
        ("AMD EPYC", amdEPYC, .amd), ("Intel Xeon", intelXeon, .intel), ("nested AMD EPYC", nestedAMDEPYC, .amd),
    ]
}
