/// A guest CPU model: which of the host's KVM-supported CPUID features a VM sees.
///
/// Both templates then apply the same per-vCPU normalization (topology, APIC IDs, paravirtual
/// leaves, disabled PMU and power management); see `docs/cpu-templates.md` for every bit.
public enum CPUTemplate: String, CaseIterable, Sendable {
    /// A portable x86-64 set close to x86-64-v2: an explicit allow-list of features that every
    /// x86-64 host of the last decade has and that instruction-emulating KVMs handle. Suitable for
    /// live migration between unlike hosts.
    case baseline
    /// Everything KVM supports on this host, minus what a VM must not see (nested virtualization,
    /// PMU, power management, host-only debug and cache features).
    case host

    /// Highest basic leaf the template describes (nil: whatever KVM reports).
    var maximumBasicLeaf: UInt32? {
        switch self {
        case .baseline: return 0xD
        case .host: return nil
        }
    }

    /// Highest extended leaf the template describes (nil: whatever KVM reports).
    var maximumExtendedLeaf: UInt32? {
        switch self {
        case .baseline: return 0x8000_0008
        case .host: return nil
        }
    }

    /// Highest KVM paravirtual leaf the template describes (nil: whatever KVM reports).
    var maximumHypervisorLeaf: UInt32? {
        switch self {
        case .baseline: return 0x4000_0001
        case .host: return nil
        }
    }

    /// Leaves (function, subleaf) whose contents the baseline passes on; every other leaf in range
    /// is present but zero. A nil subleaf means every subleaf.
    static let baselineLeaves: [(function: UInt32, index: UInt32?)] = [
        (0x0, nil), (0x1, nil), (0x2, nil), (0x4, nil), (0x6, nil), (0x7, 0), (0xB, nil),
        (0x4000_0000, nil), (0x4000_0001, nil),
        (0x8000_0000, nil), (0x8000_0001, nil), (0x8000_0002, nil), (0x8000_0003, nil), (0x8000_0004, nil),
        (0x8000_0005, nil), (0x8000_0006, nil), (0x8000_0007, nil), (0x8000_0008, nil),
    ]

    /// Registers holding feature flags, which the baseline filters through `baselineFeatures`.
    static let featureRegisters: [(function: UInt32, index: UInt32, register: CPUIDRegister)] = [
        (1, 0, .ecx), (1, 0, .edx), (6, 0, .eax), (7, 0, .ebx), (7, 0, .ecx), (7, 0, .edx),
        (0x8000_0001, 0, .ecx), (0x8000_0001, 0, .edx), (0x8000_0007, 0, .edx), (0x8000_0008, 0, .ebx),
        (0x4000_0001, 0, .eax),
    ]

    /// Registers of baseline leaves that are cleared outright (reserved, power, RAS or hint fields).
    static let baselineClearedRegisters: [(function: UInt32, index: UInt32, register: CPUIDRegister)] = [
        (6, 0, .ebx), (6, 0, .ecx), (6, 0, .edx), (7, 0, .eax),
        (0x8000_0007, 0, .eax), (0x8000_0007, 0, .ebx), (0x8000_0007, 0, .ecx), (0x8000_0008, 0, .edx),
        (0x4000_0001, 0, .ebx), (0x4000_0001, 0, .ecx), (0x4000_0001, 0, .edx),
    ]

    /// Features the baseline keeps when KVM supports them.
    public static let baselineFeatures: [CPUIDFeature] = [
        // Leaf 1 EDX: the x86-64 base.
        .fpu, .vme, .de, .pse, .tsc, .msr, .pae, .mce, .cx8, .apic, .sep, .mtrr, .pge, .mca, .cmov, .pat, .pse36,
        .clflush, .mmx, .fxsr, .sse, .sse2,
        // Leaf 1 ECX: x86-64-v2 without CX16; APIC features KVM emulates.
        .sse3, .ssse3, .sse4_1, .sse4_2, .popcnt, .x2apic, .tscDeadline,
        // Leaf 6: APIC timer keeps running in deep C-states.
        .arat,
        // Leaf 7: string-copy hints and speculation controls.
        .erms, .fsrm, .mdClear, .specCtrl, .stibp, .flushL1D, .archCapabilities, .ssbd,
        // Extended leaves: long mode.
        .lahfLM, .cmpLegacy, .syscall, .nx, .rdtscp, .lm,
        .amdIBPB, .amdIBRS, .amdSTIBP, .amdSSBD, .virtSSBD,
        // KVM paravirtual features.
        .kvmClock, .kvmNopIODelay, .kvmClock2, .kvmAsyncPF, .kvmStealTime, .kvmPVEOI, .kvmPVUnhalt, .kvmPVTLBFlush,
        .kvmAsyncPFVMExit, .kvmPVSendIPI, .kvmPollControl, .kvmPVSchedYield, .kvmAsyncPFInt, .kvmClockStable,
    ]

    /// Features no template passes to a guest, even when KVM reports them.
    public static let alwaysCleared: [CPUIDFeature] = [
        // Debug store, thermal monitor, power management and PMU capability: host-only MSRs.
        .ds, .acpi, .tm, .pbe, .psn, .dtes64, .dsCPL, .est, .tm2, .xtpr, .pdcm, .dca, .sdbg,
        .turboBoost, .energyPerfBias, .perfctrCore, .perfctrNB, .perfctrLLC, .ibs,
        // No nested virtualization or measured launch.
        .vmx, .smx, .svm, .skinit,
        // MONITOR/MWAIT and the user-level waits would idle the physical core.
        .monitor, .mwaitx, .waitpkg,
        // Reflect guest CR4 state; KVM computes them at run time.
        .osxsave, .ospke,
        // SGX needs EPC memory from the VMM; all vCPUs are identical cores.
        .sgx, .sgxLC, .hybrid,
    ]

    /// Features every template sets, even when KVM does not report them.
    ///
    /// FDP_EXCPTN_ONLY and ZERO_FCS_FDS announce the *absence* of legacy x87 behaviour; the KVM
    /// documentation recommends always setting them.
    public static let alwaysSet: [CPUIDFeature] = [.hypervisor, .fdpExceptionOnly, .zeroFCSFDS]

    /// The CPUID entries for vCPU `vcpuIndex` of `vcpuCount`, whose local APIC ID is `apicID`,
    /// built from `supported` (the output of KVM_GET_SUPPORTED_CPUID) for KVM_SET_CPUID2.
    public func entries(
        supported: [CPUIDEntry], vcpuIndex: Int, vcpuCount: Int, apicID: UInt32, options: CPUIDOptions = CPUIDOptions()
    ) throws(CPUIDError) -> [CPUIDEntry] {
        try CPUIDBuilder(template: self, supported: supported, vcpuCount: vcpuCount, options: options)
            .entries(vcpuIndex: vcpuIndex, apicID: apicID)
    }
}

/// Inputs to CPUID construction that KVM_GET_SUPPORTED_CPUID does not carry.
public struct CPUIDOptions: Equatable, Sendable {
    /// Set TSC_DEADLINE even if `supported` lacks it. KVM reports the TSC-deadline timer in
    /// KVM_GET_SUPPORTED_CPUID only since commit 9be4ec35d668 (December 2024); before that it is
    /// announced only by KVM_CHECK_EXTENSION(KVM_CAP_TSC_DEADLINE_TIMER), and needs the in-kernel
    /// irqchip. Pass that capability here.
    public var tscDeadlineTimer: Bool
    /// Processor brand string for leaves 0x8000_0002–4 (KVM reports them as zero); ASCII, at most
    /// 47 characters. Nil keeps what `supported` has.
    public var brandString: String?

    public init(tscDeadlineTimer: Bool = false, brandString: String? = nil) {
        self.tscDeadlineTimer = tscDeadlineTimer
        self.brandString = brandString
    }
}

/// Why CPUID entries could not be built.
public enum CPUIDError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidVCPUCount(Int)
    case invalidVCPUIndex(index: Int, count: Int)
    /// APIC IDs must fit the 8-bit xAPIC field of leaf 1 (0–254).
    case invalidAPICID(UInt32)
    /// The supported table lacks a leaf every guest needs (0 or 1).
    case missingLeaf(UInt32)
    /// The supported table lists the same leaf and subleaf twice.
    case duplicateEntry(function: UInt32, index: UInt32)
    /// The brand string is not ASCII or longer than 47 characters.
    case invalidBrandString(String)

    public var description: String {
        switch self {
        case .invalidVCPUCount(let n): return "cannot build CPUID for \(n) vCPUs (1–\(CPUTopology.maximumVCPUCount))"
        case .invalidVCPUIndex(let index, let count): return "vCPU index \(index) is outside 0..<\(count)"
        case .invalidAPICID(let id): return "APIC ID \(id) does not fit the xAPIC range 0–254"
        case .missingLeaf(let leaf): return "KVM's supported CPUID lacks leaf 0x\(String(leaf, radix: 16))"
        case .duplicateEntry(let function, let index):
            return "KVM's supported CPUID lists leaf 0x\(String(function, radix: 16)) subleaf \(index) twice"
        case .invalidBrandString(let s): return "brand string \"\(s)\" must be ASCII and at most 47 characters"
        }
    }
}
