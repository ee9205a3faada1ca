/// An Intel MultiProcessor Specification 1.4 table: the 16-byte floating pointer structure
/// followed by the configuration table, placed in the EBDA at `Layout.ebdaAddress`, which Linux
/// scans ("top 1 KiB of base memory") when ACPI is off or absent.
public struct MPTable: Equatable, Sendable {
    /// Guest-physical address of the floating pointer; the configuration table follows it.
    public let address: UInt64
    /// Floating pointer and configuration table.
    public let bytes: [UInt8]

    // Sizes (MP specification 1.4, chapter 4).
    public static let floatingPointerSize = 16
    public static let headerSize = 44
    public static let processorEntrySize = 20
    public static let entrySize = 8  // bus, I/O APIC, I/O interrupt and local interrupt entries
    public static let specRevision: UInt8 = 4

    // Entry types.
    public static let processorType: UInt8 = 0
    public static let busType: UInt8 = 1
    public static let ioAPICType: UInt8 = 2
    public static let ioInterruptType: UInt8 = 3
    public static let localInterruptType: UInt8 = 4

    // Interrupt types.
    public static let interruptINT: UInt8 = 0
    public static let interruptNMI: UInt8 = 1
    public static let interruptExtINT: UInt8 = 3

    /// Local APIC version KVM's in-kernel APIC reports.
    public static let localAPICVersion: UInt8 = 0x14
    /// I/O APIC version KVM's in-kernel I/O APIC reports.
    public static let ioAPICVersion: UInt8 = 0x11
    /// Interrupt flags for PCI INTx: active-low polarity, level trigger.
    public static let pciInterruptFlags: UInt16 = 0b11 | (0b11 << 2)

    /// Bytes available for the table at `Layout.ebdaAddress`.
    public static var availableSpace: Int { Int(Layout.conventionalMemoryEnd - Layout.ebdaAddress) }

    /// The ISA IRQs routed to the I/O APIC and the pins they use; IRQ 2 (the cascade) is never listed.
    static func isaAssignments(_ layout: ISAInterruptLayout) -> [(type: UInt8, irq: UInt8, pin: UInt8)] {
        var assignments: [(type: UInt8, irq: UInt8, pin: UInt8)] = []
        if layout == .timerOnPin2 {
            assignments.append((interruptExtINT, 0, 0))
        }
        for irq in UInt8(0)..<16 where irq != 2 {
            assignments.append((interruptINT, irq, UInt8(truncatingIfNeeded: layout.gsi(forISAIRQ: irq))))
        }
        return assignments
    }

    /// Bytes used by everything except the processor entries.
    static func fixedSize(_ configuration: MPTableConfiguration) -> Int {
        let buses = configuration.pciBus ? 2 : 1
        let ioInterrupts = isaAssignments(configuration.isaInterruptLayout).count + configuration.pciInterruptRoutes.count
        return floatingPointerSize + headerSize + entrySize * (buses + 1 + ioInterrupts + 2)
    }

    /// The most vCPUs that fit in `space` bytes with the rest of `configuration` (its vCPU count is ignored).
    public static func maximumVCPUCount(for configuration: MPTableConfiguration, space: Int = availableSpace) -> Int {
        let room = max(0, space - fixedSize(configuration)) / processorEntrySize
        return min(room, CPUTopology.maximumVCPUCount)
    }

    /// Builds the table for `configuration`.
    public static func build(_ configuration: MPTableConfiguration, at address: UInt64 = Layout.ebdaAddress, space: Int = availableSpace) throws(MPTableError) -> MPTable {
        let vcpus = configuration.vcpuCount
        guard CPUTopology.isValidVCPUCount(vcpus) else { throw .invalidVCPUCount(vcpus) }
        let maximum = maximumVCPUCount(for: configuration, space: space)
        guard vcpus <= maximum else { throw .tooManyVCPUs(requested: vcpus, maximum: maximum) }
        let (tableEnd, overflow) = address.addingReportingOverflow(UInt64(clamping: space))
        guard space >= 0, !overflow, address % 16 == 0, tableEnd <= 1 << 32 else {
            throw .invalidConfiguration("table address 0x\(hex(address)) must be 16-byte aligned and below 4 GiB")
        }
        guard configuration.ioapicID >= vcpus, configuration.ioapicID != 0xFF else {
            throw .invalidConfiguration("I/O APIC ID \(configuration.ioapicID) collides with a local APIC ID or the broadcast ID")
        }
        if !configuration.pciInterruptRoutes.isEmpty && !configuration.pciBus {
            throw .invalidConfiguration("PCI interrupt routes need the PCI bus")
        }
        for route in configuration.pciInterruptRoutes where !route.isValid || route.gsi >= 24 {
            throw .invalidConfiguration("PCI route device \(route.device) pin \(route.pin) → GSI \(route.gsi) is not an I/O APIC pin")
        }

        let pciBusID: UInt8 = 0
        let isaBusID: UInt8 = configuration.pciBus ? 1 : 0
        var entries: [UInt8] = []
        var entryCount: UInt16 = 0

        for index in 0..<vcpus {
            let apicID = UInt8(truncatingIfNeeded: CPUTopology.apicID(ofVCPU: index))
            let flags: UInt8 = 0x01 | (index == 0 ? 0x02 : 0)  // enabled, bootstrap processor
            entries += [processorType, apicID, localAPICVersion, flags]
            entries.appendLittleEndian(configuration.cpuSignature & 0xFFF)
            entries.appendLittleEndian(configuration.featureFlags)
            entries.appendLittleEndian(UInt64(0))
            entryCount += 1
        }
        if configuration.pciBus {
            entries += [busType, pciBusID]
            entries.appendFixedASCII("PCI", width: 6)
            entryCount += 1
        }
        entries += [busType, isaBusID]
        entries.appendFixedASCII("ISA", width: 6)
        entryCount += 1

        entries += [ioAPICType, configuration.ioapicID, ioAPICVersion, 0x01]
        entries.appendLittleEndian(UInt32(truncatingIfNeeded: Layout.ioapicAddress))
        entryCount += 1

        for assignment in isaAssignments(configuration.isaInterruptLayout) {
            entries += [ioInterruptType, assignment.type, 0, 0, isaBusID, assignment.irq, configuration.ioapicID, assignment.pin]
            entryCount += 1
        }
        for route in configuration.pciInterruptRoutes {
            entries += [ioInterruptType, interruptINT]
            entries.appendLittleEndian(pciInterruptFlags)
            entries += [pciBusID, (route.device << 2) | route.pin, configuration.ioapicID, UInt8(truncatingIfNeeded: route.gsi)]
            entryCount += 1
        }
        // LINT0 is the 8259's virtual-wire input, LINT1 the NMI input, on every local APIC.
        entries += [localInterruptType, interruptExtINT, 0, 0, isaBusID, 0, 0xFF, 0]
        entries += [localInterruptType, interruptNMI, 0, 0, isaBusID, 0, 0xFF, 1]
        entryCount += 2

        var table: [UInt8] = []
        table.appendFixedASCII("PCMP", width: 4)
        table.appendLittleEndian(UInt16(truncatingIfNeeded: headerSize + entries.count))
        table.append(specRevision)
        table.append(0)  // checksum
        table.appendFixedASCII("SKIFF", width: 8)
        table.appendFixedASCII("SKIFFVM", width: 12)
        table.appendLittleEndian(UInt32(0))  // OEM table pointer
        table.appendLittleEndian(UInt16(0))  // OEM table size
        table.appendLittleEndian(entryCount)
        table.appendLittleEndian(UInt32(truncatingIfNeeded: Layout.lapicAddress))
        table.appendLittleEndian(UInt16(0))  // extended table length
        table.append(0)  // extended table checksum
        table.append(0)  // reserved
        table += entries
        table[7] = ByteChecksum.complement(table)

        var floating: [UInt8] = []
        floating.appendFixedASCII("_MP_", width: 4)
        floating.appendLittleEndian(UInt32(truncatingIfNeeded: address + UInt64(floatingPointerSize)))
        floating.append(1)  // length in 16-byte paragraphs
        floating.append(specRevision)
        floating.append(0)  // checksum
        floating += [0, 0, 0, 0, 0]  // feature bytes: configuration table present, virtual-wire mode
        floating[10] = ByteChecksum.complement(floating)

        return MPTable(address: address, bytes: floating + table)
    }
}
