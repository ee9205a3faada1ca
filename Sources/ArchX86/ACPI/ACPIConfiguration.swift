/// A guest-physical address range.
public struct AddressWindow: Equatable, Sendable {
    public var base: UInt64
    public var size: UInt64

    public init(base: UInt64, size: UInt64) {
        self.base = base
        self.size = size
    }

    /// One past the last address, or nil if the window wraps around 2^64.
    public var end: UInt64? {
        let (end, overflow) = base.addingReportingOverflow(size)
        return overflow ? nil : end
    }
}

/// The PCI host bridge `\_SB.PCI0` (segment 0) and its ECAM window.
public struct PCIHostBridge: Equatable, Sendable {
    /// ECAM (MMCONFIG) base; the MCFG and a motherboard-resource device reserve it.
    public var ecamBase: UInt64 = Layout.pciMMCONFIGStart
    /// Buses decoded by the bridge (and covered by the ECAM window, 1 MiB per bus).
    public var buses: ClosedRange<UInt8> = 0...255
    /// 32-bit BAR window, below 4 GiB.
    public var mmio32 = AddressWindow(base: Layout.pciMMIO32Start, size: Layout.pciMMIO32Size)
    /// Optional 64-bit BAR window.
    public var mmio64: AddressWindow?
    /// INTx routing published as `_PRT` (and as MP-table interrupt entries); empty for none.
    public var interruptRoutes: [PCIInterruptRoute]

    public init(mmio64: AddressWindow? = nil, interruptRoutes: [PCIInterruptRoute] = PCIInterruptRoute.swizzled()) {
        self.mmio64 = mmio64
        self.interruptRoutes = interruptRoutes
    }

    /// Size of the ECAM window for `buses`.
    public var ecamSize: UInt64 {
        UInt64(Int(buses.upperBound) - Int(buses.lowerBound) + 1) << 20
    }
}

/// The fixed ISA devices described in the DSDT.
public struct LegacyDevices: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// 16550 UART at `Layout.com1Port`, IRQ `Layout.com1IRQ`.
    public static let com1 = LegacyDevices(rawValue: 1 << 0)
    /// i8042 keyboard controller at `Layout.i8042DataPort`/`i8042CommandPort`, IRQ `Layout.i8042IRQ`.
    public static let i8042 = LegacyDevices(rawValue: 1 << 1)
    /// CMOS RTC at `Layout.rtcPort`, IRQ `Layout.rtcIRQ`.
    public static let rtc = LegacyDevices(rawValue: 1 << 2)

    public static let all: LegacyDevices = [.com1, .i8042, .rtc]
}

/// What the ACPI tables describe.
public struct ACPIConfiguration: Equatable, Sendable {
    /// Number of vCPUs, 1…`CPUTopology.maximumVCPUCount`; vCPU *i* has APIC ID *i*.
    public var vcpuCount: Int
    /// I/O APIC ID in the MADT.
    public var ioapicID: UInt8
    /// How ISA IRQs reach the I/O APIC; must match the VMM's GSI routing.
    public var isaInterruptLayout: ISAInterruptLayout = .timerOnPin2
    /// Fixed ISA devices in the DSDT; the FADT's 8042 flag follows `.i8042`.
    public var legacyDevices: LegacyDevices = .all
    /// The PCI host bridge, or nil for a platform without PCI (no MCFG, no `\_SB.PCI0`).
    public var pciHostBridge: PCIHostBridge?
    /// Further AML terms placed inside `Scope (\_SB)`, e.g. `AML.device(...)` for virtio-mmio transports.
    public var extraDevices: [[UInt8]] = []

    public init(vcpuCount: Int, pciHostBridge: PCIHostBridge? = nil) {
        self.vcpuCount = vcpuCount
        self.ioapicID = CPUTopology.ioapicID(vcpuCount: vcpuCount)
        self.pciHostBridge = pciHostBridge
    }
}

/// Why the ACPI tables could not be built.
public enum ACPIError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidVCPUCount(Int)
    case invalidConfiguration(String)
    case aml(AMLError)
    /// The tables need `required` bytes but the BIOS area has `available`.
    case tablesDoNotFit(required: UInt64, available: UInt64)

    public var description: String {
        switch self {
        case .invalidVCPUCount(let n): return "cannot describe \(n) vCPUs (1–\(CPUTopology.maximumVCPUCount) supported)"
        case .invalidConfiguration(let why): return "invalid ACPI configuration: \(why)"
        case .aml(let error): return "DSDT: \(error)"
        case .tablesDoNotFit(let required, let available):
            return "ACPI tables need \(required) bytes but only \(available) are reserved for them"
        }
    }
}
