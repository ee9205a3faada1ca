/// The Multiple APIC Description Table (ACPI 6.5, 5.2.12).
public enum MADT {
    public static let revision: UInt8 = 5
    /// MADT flag: the platform also has dual 8259 PICs (which must be masked before the APICs are used).
    public static let pcatCompatible: UInt32 = 1

    // Interrupt controller structure types and sizes.
    public static let processorLocalAPICType: UInt8 = 0
    public static let ioAPICType: UInt8 = 1
    public static let interruptSourceOverrideType: UInt8 = 2
    public static let localAPICNMIType: UInt8 = 4

    /// Local APIC flag: the processor is usable.
    public static let localAPICEnabled: UInt32 = 1

    /// MPS INTI flags (polarity bits 1–0, trigger mode bits 3–2).
    public static let polarityActiveHigh: UInt16 = 0b01
    public static let polarityActiveLow: UInt16 = 0b11
    public static let triggerEdge: UInt16 = 0b01 << 2
    public static let triggerLevel: UInt16 = 0b11 << 2

    /// Builds the MADT: one enabled Processor Local APIC per vCPU (ACPI processor UID = APIC ID =
    /// index), the I/O APIC at `Layout.ioapicAddress` with GSI base 0, the ISA overrides of
    /// `layout`, and a Local APIC NMI on LINT1 of all processors.
    ///
    /// `vcpuCount` must satisfy `CPUTopology.isValidVCPUCount` (`ACPITables.build` checks it).
    public static func build(vcpuCount: Int, ioapicID: UInt8, isaLayout: ISAInterruptLayout) -> [UInt8] {
        var table = ACPITableHeader.make(signature: "APIC", revision: revision)
        table.appendLittleEndian(UInt32(truncatingIfNeeded: Layout.lapicAddress))
        table.appendLittleEndian(pcatCompatible)

        for index in 0..<vcpuCount {
            let apicID = UInt8(truncatingIfNeeded: CPUTopology.apicID(ofVCPU: index))
            table += [processorLocalAPICType, 8, apicID, apicID]  // type, length, ACPI processor UID, APIC ID
            table.appendLittleEndian(localAPICEnabled)
        }

        table += [ioAPICType, 12, ioapicID, 0]
        table.appendLittleEndian(UInt32(truncatingIfNeeded: Layout.ioapicAddress))
        table.appendLittleEndian(UInt32(0))  // global system interrupt base

        if isaLayout == .timerOnPin2 {
            table += [interruptSourceOverrideType, 10, 0, 0]  // type, length, bus ISA, source IRQ 0
            table.appendLittleEndian(isaLayout.gsi(forISAIRQ: 0))
            table.appendLittleEndian(polarityActiveHigh | triggerEdge)
        }

        table += [localAPICNMIType, 6, 0xFF]  // all processors
        table.appendLittleEndian(UInt16(0))  // flags: conforms to the bus
        table.append(1)  // LINT1
        ACPITableHeader.finish(&table)
        return table
    }
}
