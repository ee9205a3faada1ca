/// How Skiff numbers the processors and interrupt controllers of an x86 VM.
///
/// Every vCPU is one core of a single package with one thread: vCPU *i* has APIC ID *i*.
/// The ACPI MADT, the MP table and the CPUID topology leaves all follow this rule.
public enum CPUTopology {
    /// Most vCPUs Skiff describes: xAPIC IDs 0–253, leaving 254 for the I/O APIC and 255
    /// (the broadcast ID) unused, so every table can use the 8-bit (non-x2APIC) forms.
    public static let maximumVCPUCount = 254

    /// The local APIC ID of vCPU `index`.
    public static func apicID(ofVCPU index: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: index)
    }

    /// The I/O APIC ID used in the MADT and the MP table: the first ID after the vCPUs'.
    public static func ioapicID(vcpuCount: Int) -> UInt8 {
        UInt8(clamping: vcpuCount)
    }

    /// Whether `count` vCPUs can be described.
    public static func isValidVCPUCount(_ count: Int) -> Bool {
        (1...maximumVCPUCount).contains(count)
    }

    /// Number of APIC-ID bits that select a core within the package: ceil(log2(vcpuCount)).
    static func coreIDBits(vcpuCount: Int) -> Int {
        var bits = 0
        while (1 << bits) < vcpuCount { bits += 1 }
        return bits
    }
}

/// How the sixteen ISA interrupts reach the I/O APIC, as described by the MADT and the MP table.
///
/// The choice must match the VMM's GSI routing (`KVM_SET_GSI_ROUTING`).
public enum ISAInterruptLayout: Sendable, Equatable {
    /// PC layout as on real chipsets and QEMU: the 8254 timer (IRQ 0) is wired to I/O APIC pin 2
    /// (MADT Interrupt Source Override IRQ 0 → GSI 2) and the 8259's ExtINT output to pin 0; every
    /// other ISA IRQ *n* goes to pin *n*. KVM's default routing does *not* do this: the VMM must route
    /// GSI 0 to IOAPIC pin 2 (as QEMU does) or the guest sees no timer interrupt through the I/O APIC.
    case timerOnPin2
    /// ISA IRQ *n* on I/O APIC pin *n* for all *n*, no overrides: matches KVM's default GSI routing.
    case identity

    /// The I/O APIC pin (GSI) that ISA IRQ `irq` arrives on.
    public func gsi(forISAIRQ irq: UInt8) -> UInt32 {
        if self == .timerOnPin2 && irq == 0 { return 2 }
        return UInt32(irq)
    }
}

/// One PCI INTx route: interrupt pin `pin` (0 = INTA … 3 = INTD) of device `device` on bus 0
/// raises `gsi`, level-triggered and active-low (the PCI default when a `_PRT` entry names no
/// link device).
public struct PCIInterruptRoute: Equatable, Sendable {
    public var device: UInt8
    public var pin: UInt8
    public var gsi: UInt32

    public init(device: UInt8, pin: UInt8, gsi: UInt32) {
        self.device = device
        self.pin = pin
        self.gsi = gsi
    }

    /// The usual swizzle: pin *p* of device *d* raises `firstGSI + (d + p) mod gsiCount`, for each
    /// device in `devices` and each of the four pins. The default maps devices 1–31 onto GSIs 16–23.
    public static func swizzled(devices: ClosedRange<UInt8> = 1...31, firstGSI: UInt32 = 16, gsiCount: UInt32 = 8) -> [PCIInterruptRoute] {
        guard gsiCount > 0 else { return [] }
        var routes: [PCIInterruptRoute] = []
        for device in devices {
            for pin in UInt8(0)...3 {
                let offset = (UInt32(device) + UInt32(pin)) % gsiCount
                routes.append(PCIInterruptRoute(device: device, pin: pin, gsi: firstGSI &+ offset))
            }
        }
        return routes
    }

    /// Whether device and pin are within PCI limits (device 0–31, pin 0–3).
    public var isValid: Bool { device < 32 && pin < 4 }
}
