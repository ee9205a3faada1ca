/// CPU features, as CPUID reports them: those promised to the guest (an instruction of a missing
/// feature raises #UD) and those of the host (needed to re-execute SSE forms).
public struct CPUFeatures: OptionSet, Sendable, Hashable {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let sse = CPUFeatures(rawValue: 1 << 0)
    public static let sse2 = CPUFeatures(rawValue: 1 << 1)
    public static let sse3 = CPUFeatures(rawValue: 1 << 2)
    public static let ssse3 = CPUFeatures(rawValue: 1 << 3)
    public static let sse41 = CPUFeatures(rawValue: 1 << 4)
    public static let sse42 = CPUFeatures(rawValue: 1 << 5)
    public static let popcnt = CPUFeatures(rawValue: 1 << 6)
    /// LZCNT (CPUID 8000_0001h ECX.ABM/LZCNT).
    public static let lzcnt = CPUFeatures(rawValue: 1 << 7)
    /// BMI1 (TZCNT).
    public static let bmi1 = CPUFeatures(rawValue: 1 << 8)
    public static let smap = CPUFeatures(rawValue: 1 << 9)
    public static let fsgsbase = CPUFeatures(rawValue: 1 << 10)
    public static let rdtscp = CPUFeatures(rawValue: 1 << 11)
    public static let rdpid = CPUFeatures(rawValue: 1 << 12)
    public static let xsave = CPUFeatures(rawValue: 1 << 13)
    /// 1 GiB pages (CPUID 8000_0001h EDX.Page1GB).
    public static let gigabytePages = CPUFeatures(rawValue: 1 << 14)
    /// PCLMULQDQ.
    public static let pclmulqdq = CPUFeatures(rawValue: 1 << 15)
    /// AES-NI.
    public static let aes = CPUFeatures(rawValue: 1 << 16)
    /// SYSCALL/SYSRET in 64-bit mode (CPUID 8000_0001h EDX.SYSCALL).
    public static let syscall = CPUFeatures(rawValue: 1 << 17)
    /// SHA extensions (SHA1RNDS4, SHA256RNDS2, …).
    public static let sha = CPUFeatures(rawValue: 1 << 18)

    /// Every feature the emulator knows.
    public static let all = CPUFeatures(rawValue: (1 << 19) - 1)

    /// Features from raw CPUID words: leaf 1 ECX/EDX, leaf 7.0 EBX/ECX, leaf 8000_0001h ECX/EDX.
    public init(leaf1ECX: UInt32, leaf1EDX: UInt32, leaf7EBX: UInt32, leaf7ECX: UInt32, extendedECX: UInt32, extendedEDX: UInt32) {
        var f: CPUFeatures = []
        func bit(_ word: UInt32, _ n: UInt32) -> Bool { word & (1 << n) != 0 }
        if bit(leaf1EDX, 25) { f.insert(.sse) }
        if bit(leaf1EDX, 26) { f.insert(.sse2) }
        if bit(leaf1ECX, 0) { f.insert(.sse3) }
        if bit(leaf1ECX, 1) { f.insert(.pclmulqdq) }
        if bit(leaf1ECX, 9) { f.insert(.ssse3) }
        if bit(leaf1ECX, 19) { f.insert(.sse41) }
        if bit(leaf1ECX, 20) { f.insert(.sse42) }
        if bit(leaf1ECX, 23) { f.insert(.popcnt) }
        if bit(leaf1ECX, 25) { f.insert(.aes) }
        if bit(leaf1ECX, 26) { f.insert(.xsave) }
        if bit(leaf7EBX, 0) { f.insert(.fsgsbase) }
        if bit(leaf7EBX, 3) { f.insert(.bmi1) }
        if bit(leaf7EBX, 20) { f.insert(.smap) }
        if bit(leaf7EBX, 29) { f.insert(.sha) }
        if bit(leaf7ECX, 22) { f.insert(.rdpid) }
        if bit(extendedECX, 5) { f.insert(.lzcnt) }
        if bit(extendedEDX, 11) { f.insert(.syscall) }
        if bit(extendedEDX, 26) { f.insert(.gigabytePages) }
        if bit(extendedEDX, 27) { f.insert(.rdtscp) }
        self = f
    }

    /// Lowercase CPUID flag names, as /proc/cpuinfo spells them.
    public var names: [String] {
        let table: [(CPUFeatures, String)] = [
            (.sse, "sse"), (.sse2, "sse2"), (.sse3, "pni"), (.ssse3, "ssse3"), (.sse41, "sse4_1"), (.sse42, "sse4_2"),
            (.popcnt, "popcnt"), (.lzcnt, "abm"), (.bmi1, "bmi1"), (.smap, "smap"), (.fsgsbase, "fsgsbase"),
            (.rdtscp, "rdtscp"), (.rdpid, "rdpid"), (.xsave, "xsave"), (.gigabytePages, "pdpe1gb"), (.pclmulqdq, "pclmulqdq"),
            (.aes, "aes"), (.syscall, "syscall"), (.sha, "sha_ni"),
        ]
        return table.filter { contains($0.0) }.map(\.1)
    }
}
