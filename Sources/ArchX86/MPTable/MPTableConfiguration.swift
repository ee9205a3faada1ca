/// What the Intel MultiProcessor Specification 1.4 table describes.
public struct MPTableConfiguration: Equatable, Sendable {
    /// Number of vCPUs; vCPU *i* has local APIC ID *i*, vCPU 0 is the bootstrap processor.
    public var vcpuCount: Int
    /// CPU signature (stepping, model, family) as in CPUID.1:EAX; only bits 11–0 are defined by the
    /// MP specification, the rest are written as zero.
    public var cpuSignature: UInt32
    /// Feature flags as in CPUID.1:EDX.
    public var featureFlags: UInt32
    /// I/O APIC ID; it must differ from every local APIC ID.
    public var ioapicID: UInt8
    /// How ISA IRQs reach the I/O APIC; must match the VMM's GSI routing and the MADT.
    public var isaInterruptLayout: ISAInterruptLayout = .timerOnPin2
    /// Whether to declare PCI bus 0 (the ISA bus then becomes bus 1).
    public var pciBus: Bool = false
    /// PCI INTx routes listed as I/O interrupt entries (level-triggered, active-low); each GSI must be
    /// an I/O APIC pin (0–23). Requires `pciBus`.
    public var pciInterruptRoutes: [PCIInterruptRoute] = []

    public init(vcpuCount: Int, cpuSignature: UInt32, featureFlags: UInt32) {
        self.vcpuCount = vcpuCount
        self.cpuSignature = cpuSignature
        self.featureFlags = featureFlags
        self.ioapicID = CPUTopology.ioapicID(vcpuCount: vcpuCount)
    }

    /// Takes the CPU signature and feature flags from CPUID leaf 1 of `cpuid` (zero if absent).
    public init(vcpuCount: Int, cpuid: [CPUIDEntry]) {
        let leaf1 = cpuid.first { $0.function == 1 && $0.index == 0 }
        self.init(vcpuCount: vcpuCount, cpuSignature: leaf1?.eax ?? 0, featureFlags: leaf1?.edx ?? 0)
    }
}

/// Why an MP table could not be built.
public enum MPTableError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidVCPUCount(Int)
    /// More vCPUs than fit in the table area.
    case tooManyVCPUs(requested: Int, maximum: Int)
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .invalidVCPUCount(let n): return "cannot describe \(n) vCPUs in the MP table"
        case .tooManyVCPUs(let requested, let maximum):
            return "MP table has room for \(maximum) vCPUs with this configuration, \(requested) requested"
        case .invalidConfiguration(let why): return "invalid MP table configuration: \(why)"
        }
    }
}
