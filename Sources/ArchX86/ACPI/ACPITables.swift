/// A complete, placed set of ACPI tables ready to be copied into guest memory.
public struct ACPITables: Equatable, Sendable {
    /// One table at its guest-physical address.
    public struct Table: Equatable, Sendable {
        /// Signature (`RSD PTR ` for the RSDP).
        public let signature: String
        public let address: UInt64
        public let bytes: [UInt8]
    }

    /// Alignment of every table after the RSDP.
    public static let tableAlignment: UInt64 = 8

    /// Guest-physical address of the RSDP (for `boot_params.acpi_rsdp_addr` / PVH `rsdp_paddr`).
    public let rsdpAddress: UInt64
    /// The tables in address order, RSDP first.
    public let tables: [Table]

    /// The tables as (address, bytes) pairs for writing into guest memory.
    public var placements: [(address: UInt64, bytes: [UInt8])] {
        tables.map { (address: $0.address, bytes: $0.bytes) }
    }

    /// The table with `signature`, if present.
    public func table(_ signature: String) -> Table? {
        tables.first { $0.signature == signature }
    }

    /// Builds RSDP, XSDT, RSDT, FADT, MADT, MCFG (with PCI) and DSDT for `configuration` and places
    /// them from `base` (the RSDP 16-byte aligned, the rest 8-byte aligned) below `end`.
    public static func build(
        _ configuration: ACPIConfiguration, base: UInt64 = Layout.acpiTablesAddress, end: UInt64 = Layout.acpiTablesEnd
    ) throws(ACPIError) -> ACPITables {
        try validate(configuration)
        guard base % RSDP.alignment == 0, base < end, end <= 1 << 32 else {
            throw .invalidConfiguration("table area 0x\(hex(base))–0x\(hex(end)) must be 16-byte aligned and below 4 GiB")
        }

        let dsdt: [UInt8]
        do { dsdt = try DSDT.build(configuration) } catch { throw .aml(error) }
        let madt = MADT.build(vcpuCount: configuration.vcpuCount, ioapicID: configuration.ioapicID, isaLayout: configuration.isaInterruptLayout)
        let mcfg = configuration.pciHostBridge.map { MCFG.build(base: $0.ecamBase, buses: $0.buses) }

        // Sizes are known before addresses: lay out, then fill in the pointers.
        let pointedTo = 2 + (mcfg == nil ? 0 : 1)  // FADT, MADT, MCFG
        var cursor = base
        func place(_ size: Int, alignment: UInt64) -> UInt64 {
            let aligned = (cursor + alignment - 1) / alignment * alignment
            cursor = aligned + UInt64(size)
            return aligned
        }
        let rsdpAddress = place(RSDP.size, alignment: RSDP.alignment)
        let xsdtAddress = place(ACPITableHeader.size + 8 * pointedTo, alignment: tableAlignment)
        let rsdtAddress = place(ACPITableHeader.size + 4 * pointedTo, alignment: tableAlignment)
        let fadtAddress = place(FADT.size, alignment: tableAlignment)
        let madtAddress = place(madt.count, alignment: tableAlignment)
        let mcfgAddress = mcfg.map { place($0.count, alignment: tableAlignment) }
        let dsdtAddress = place(dsdt.count, alignment: tableAlignment)
        guard cursor <= end else {
            throw .tablesDoNotFit(required: cursor - base, available: end - base)
        }

        var pointers = [fadtAddress, madtAddress]
        if let mcfgAddress { pointers.append(mcfgAddress) }
        let has8042 = configuration.legacyDevices.contains(.i8042)

        var tables: [Table] = [
            Table(signature: "RSD PTR ", address: rsdpAddress, bytes: RSDP.build(rsdtAddress: UInt32(rsdtAddress), xsdtAddress: xsdtAddress)),
            Table(signature: "XSDT", address: xsdtAddress, bytes: XSDT.build(tableAddresses: pointers)),
            Table(signature: "RSDT", address: rsdtAddress, bytes: XSDT.buildRSDT(tableAddresses: pointers.map { UInt32($0) })),
            Table(signature: "FACP", address: fadtAddress, bytes: FADT.build(dsdtAddress: dsdtAddress, bootArchitecture: FADT.bootArchitecture(has8042: has8042))),
            Table(signature: "APIC", address: madtAddress, bytes: madt),
        ]
        if let mcfg, let mcfgAddress {
            tables.append(Table(signature: "MCFG", address: mcfgAddress, bytes: mcfg))
        }
        tables.append(Table(signature: "DSDT", address: dsdtAddress, bytes: dsdt))
        return ACPITables(rsdpAddress: rsdpAddress, tables: tables)
    }

    private static func validate(_ configuration: ACPIConfiguration) throws(ACPIError) {
        guard CPUTopology.isValidVCPUCount(configuration.vcpuCount) else { throw .invalidVCPUCount(configuration.vcpuCount) }
        guard configuration.ioapicID != 0xFF else { throw .invalidConfiguration("I/O APIC ID 0xFF is the broadcast ID") }
        guard let bridge = configuration.pciHostBridge else { return }
        let ecam = AddressWindow(base: bridge.ecamBase, size: bridge.ecamSize)
        guard let ecamEnd = ecam.end, ecamEnd <= 1 << 32, bridge.ecamBase % (1 << 20) == 0 else {
            throw .invalidConfiguration("ECAM window at 0x\(hex(bridge.ecamBase)) must be 1 MiB aligned and below 4 GiB")
        }
        guard bridge.mmio32.size > 0, let mmio32End = bridge.mmio32.end, mmio32End <= 1 << 32 else {
            throw .invalidConfiguration("32-bit PCI window 0x\(hex(bridge.mmio32.base))+0x\(hex(bridge.mmio32.size)) must be non-empty and below 4 GiB")
        }
        if let window = bridge.mmio64, window.size > 0, window.end == nil {
            throw .invalidConfiguration("64-bit PCI window 0x\(hex(window.base))+0x\(hex(window.size)) wraps")
        }
        for route in bridge.interruptRoutes where !route.isValid {
            throw .invalidConfiguration("PCI interrupt route device \(route.device) pin \(route.pin) is out of range")
        }
    }
}
