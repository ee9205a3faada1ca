import Testing

@testable import ArchX86

/// A VM with PCI, a 64-bit window, swizzled INTx and one extra virtio-mmio device.
func sampleACPIConfiguration(vcpus: Int = 4) throws -> ACPIConfiguration {
    var configuration = ACPIConfiguration(
        vcpuCount: vcpus, pciHostBridge: PCIHostBridge(mmio64: AddressWindow(base: 0x40_0000_0000, size: 0x40_0000_0000)))
    configuration.extraDevices = [
        try AML.device(
            "VR00", hardwareID: .string("LNRO0005"), uniqueID: 0,
            resources: [
                .memory32Fixed(base: 0xD000_0000, length: 0x1000, writable: true),
                .interrupt(gsis: [5], edgeTriggered: true, activeLow: false, shared: false),
            ])
    ]
    return configuration
}

@Suite("ACPI tables")
struct ACPITablesTests {
    @Test("every table's checksum and length field are right", arguments: [1, 4, 64, CPUTopology.maximumVCPUCount])
    func checksums(vcpus: Int) throws {
        let tables = try ACPITables.build(sampleACPIConfiguration(vcpus: vcpus))
        for table in tables.tables {
            if table.signature == "RSD PTR " {
                #expect(table.bytes.count == 36)
                #expect(table.bytes.byteSum(0..<20) == 0, "RSDP checksum")
                #expect(table.bytes.byteSum() == 0, "RSDP extended checksum")
                #expect(table.bytes.u32(20) == 36)
                #expect(table.bytes.u8(15) == 2)
            } else {
                #expect(table.bytes.ascii(0, 4) == table.signature)
                #expect(Int(table.bytes.u32(4)) == table.bytes.count, "\(table.signature) length")
                #expect(table.bytes.byteSum() == 0, "\(table.signature) checksum")
                #expect(table.bytes.ascii(10, 6) == "SKIFF ")
                #expect(table.bytes.ascii(16, 8) == "SKIF" + table.signature)
            }
        }
    }

    @Test("tables sit in the BIOS area, aligned and disjoint")
    func placement() throws {
        let tables = try ACPITables.build(sampleACPIConfiguration())
        #expect(tables.rsdpAddress == Layout.acpiTablesAddress)
        #expect(tables.rsdpAddress % 16 == 0)
        #expect(tables.tables.map(\.signature) == ["RSD PTR ", "XSDT", "RSDT", "FACP", "APIC", "MCFG", "DSDT"])
        var previousEnd = Layout.acpiTablesAddress
        for table in tables.tables {
            #expect(table.address % 8 == 0)
            #expect(table.address >= previousEnd, "\(table.signature) overlaps its predecessor")
            previousEnd = table.address + UInt64(table.bytes.count)
        }
        #expect(previousEnd <= Layout.acpiTablesEnd)
        // The last 16 bytes below 1 MiB belong to the reset vector.
        #expect(previousEnd <= ResetVector.address)
        #expect(tables.placements.count == tables.tables.count)
        #expect(tables.placements.first?.address == tables.rsdpAddress)
    }

    @Test("RSDP, XSDT, RSDT and FADT point at the right tables")
    func pointers() throws {
        let tables = try ACPITables.build(sampleACPIConfiguration())
        let rsdp = try #require(tables.table("RSD PTR "))
        let xsdt = try #require(tables.table("XSDT"))
        let rsdt = try #require(tables.table("RSDT"))
        let fadt = try #require(tables.table("FACP"))
        let madt = try #require(tables.table("APIC"))
        let mcfg = try #require(tables.table("MCFG"))
        let dsdt = try #require(tables.table("DSDT"))

        #expect(rsdp.bytes.ascii(0, 8) == "RSD PTR ")
        #expect(UInt64(rsdp.bytes.u32(16)) == rsdt.address)
        #expect(rsdp.bytes.u64(24) == xsdt.address)
        #expect(xsdt.bytes.count == 36 + 3 * 8)
        #expect([xsdt.bytes.u64(36), xsdt.bytes.u64(44), xsdt.bytes.u64(52)] == [fadt.address, madt.address, mcfg.address])
        #expect([rsdt.bytes.u32(36), rsdt.bytes.u32(40), rsdt.bytes.u32(44)].map(UInt64.init) == [fadt.address, madt.address, mcfg.address])
        #expect(fadt.bytes.u64(FADT.xDSDTOffset) == dsdt.address)
        #expect(UInt64(fadt.bytes.u32(FADT.dsdtOffset)) == dsdt.address)
    }

    @Test("FADT: revision 6, hardware-reduced, reset and sleep registers")
    func fadt() throws {
        let fadt = try #require(try ACPITables.build(sampleACPIConfiguration()).table("FACP")).bytes
        #expect(fadt.count == 276)
        #expect(fadt.u8(8) == 6)
        #expect(fadt.u8(FADT.minorRevisionOffset) == 5)
        let flags = fadt.u32(FADT.flagsOffset)
        #expect(flags & (1 << 20) != 0, "HW_REDUCED_ACPI")
        #expect(flags & (1 << 10) != 0, "RESET_REG_SUP")
        #expect(flags & (1 << 4) != 0 && flags & (1 << 5) != 0, "power and sleep buttons not fixed hardware")
        let bootArch = fadt.u16(FADT.iapcBootArchitectureOffset)
        #expect(bootArch & 0b111 == 0b111, "legacy devices, 8042, VGA not present")
        #expect(bootArch & (1 << 5) == 0, "the CMOS RTC is present")
        // RESET_REG: system I/O, 8 bits, byte access, at the reset port.
        #expect(Array(fadt[FADT.resetRegisterOffset..<(FADT.resetRegisterOffset + 4)]) == [1, 8, 0, 1])
        #expect(fadt.u64(FADT.resetRegisterOffset + 4) == UInt64(Layout.acpiResetPort))
        #expect(fadt.u8(FADT.resetValueOffset) == Layout.acpiResetValue)
        #expect(Array(fadt[FADT.sleepControlRegisterOffset..<(FADT.sleepControlRegisterOffset + 4)]) == [1, 8, 0, 1])
        #expect(fadt.u64(FADT.sleepControlRegisterOffset + 4) == UInt64(Layout.acpiSleepControlPort))
        #expect(Array(fadt[FADT.sleepStatusRegisterOffset..<(FADT.sleepStatusRegisterOffset + 4)]) == [1, 8, 0, 1])
        #expect(fadt.u64(FADT.sleepStatusRegisterOffset + 4) == UInt64(Layout.acpiSleepStatusPort))
        #expect(fadt.ascii(FADT.hypervisorVendorIdentityOffset, 8) == "SKIFFVMM")
        // No PM1/GPE/PM-timer blocks, no SCI, no FACS.
        #expect(fadt.u16(46) == 0)
        #expect(fadt[56..<88].allSatisfy { $0 == 0 })
        #expect(fadt.u32(36) == 0 && fadt.u64(132) == 0)
    }

    @Test("FADT's 8042 flag follows the i8042 device")
    func fadtWithout8042() throws {
        var configuration = try sampleACPIConfiguration()
        configuration.legacyDevices = [.com1, .rtc]
        let tables = try ACPITables.build(configuration)
        let fadt = try #require(tables.table("FACP")).bytes
        #expect(fadt.u16(FADT.iapcBootArchitectureOffset) & 0b10 == 0)
        let dsdt = try #require(tables.table("DSDT")).bytes
        #expect(!dsdt.contains(bytes: Array("PS2K".utf8)))
        #expect(dsdt.contains(bytes: Array("COM1".utf8)))
    }

    /// Walks the MADT's interrupt controller structures.
    func madtEntries(_ madt: [UInt8]) -> [(type: UInt8, bytes: [UInt8])] {
        var entries: [(type: UInt8, bytes: [UInt8])] = []
        var offset = 44
        while offset < madt.count {
            let length = Int(madt[offset + 1])
            entries.append((madt[offset], Array(madt[offset..<(offset + length)])))
            offset += length
        }
        return entries
    }

    @Test("MADT: one enabled local APIC per vCPU, I/O APIC, IRQ0 override, LINT1 NMI", arguments: [1, 2, 7, 254])
    func madt(vcpus: Int) throws {
        let madt = try #require(try ACPITables.build(sampleACPIConfiguration(vcpus: vcpus)).table("APIC")).bytes
        #expect(madt.u32(36) == 0xFEE0_0000)
        #expect(madt.u32(40) == 1, "PCAT_COMPAT")
        let entries = madtEntries(madt)
        let lapics = entries.filter { $0.type == 0 }
        #expect(lapics.count == vcpus)
        for (index, entry) in lapics.enumerated() {
            #expect(entry.bytes.count == 8)
            #expect(entry.bytes[2] == UInt8(index) && entry.bytes[3] == UInt8(index))
            #expect(entry.bytes.u32(4) == 1)
        }
        let ioapics = entries.filter { $0.type == 1 }
        #expect(ioapics.count == 1)
        #expect(ioapics.first?.bytes[2] == UInt8(vcpus), "I/O APIC ID follows the vCPUs")
        #expect(ioapics.first?.bytes.u32(4) == 0xFEC0_0000)
        #expect(ioapics.first?.bytes.u32(8) == 0)
        let overrides = entries.filter { $0.type == 2 }
        #expect(overrides.count == 1)
        #expect(overrides.first?.bytes == [2, 10, 0, 0, 2, 0, 0, 0, 0x05, 0x00])
        let nmis = entries.filter { $0.type == 4 }
        #expect(nmis.map(\.bytes) == [[4, 6, 0xFF, 0, 0, 1]])
        #expect(entries.count == vcpus + 3)
    }

    @Test("identity ISA layout has no interrupt source override")
    func madtIdentity() throws {
        var configuration = try sampleACPIConfiguration()
        configuration.isaInterruptLayout = .identity
        let madt = try #require(try ACPITables.build(configuration).table("APIC")).bytes
        #expect(madtEntries(madt).filter { $0.type == 2 }.isEmpty)
    }

    @Test("MCFG: one allocation for segment 0, buses 0–255")
    func mcfg() throws {
        let mcfg = try #require(try ACPITables.build(sampleACPIConfiguration()).table("MCFG")).bytes
        #expect(mcfg.count == 36 + 8 + 16)
        #expect(mcfg.u64(44) == Layout.pciMMCONFIGStart)
        #expect(mcfg.u16(52) == 0)
        #expect(mcfg[54] == 0 && mcfg[55] == 255)
    }

    @Test("without PCI there is no MCFG and no PCI0")
    func noPCI() throws {
        let tables = try ACPITables.build(ACPIConfiguration(vcpuCount: 2))
        #expect(tables.table("MCFG") == nil)
        #expect(tables.tables.map(\.signature) == ["RSD PTR ", "XSDT", "RSDT", "FACP", "APIC", "DSDT"])
        let xsdt = try #require(tables.table("XSDT")).bytes
        #expect(xsdt.count == 36 + 16)
        let dsdt = try #require(tables.table("DSDT")).bytes
        #expect(!dsdt.contains(bytes: Array("PCI0".utf8)))
        #expect(dsdt.contains(bytes: [0x08] + Array("_S5_".utf8) + [0x12]))
    }

    @Test("DSDT: _S5_ package, devices and _PRT entries")
    func dsdtContents() throws {
        let dsdt = try #require(try ACPITables.build(sampleACPIConfiguration()).table("DSDT")).bytes
        #expect(dsdt.u8(8) == 2)
        let s5 = UInt8(Layout.acpiS5SleepType)
        #expect(dsdt.contains(bytes: [0x08] + Array("_S5_".utf8) + [0x12, 0x08, 0x04, 0x0A, s5, 0x0A, s5, 0x00, 0x00]))
        for name in ["COM1", "PS2K", "RTC_", "PCI0", "MRES", "VR00", "_PRT", "_SEG", "_BBN", "_CID"] {
            #expect(dsdt.contains(bytes: Array(name.utf8)), "\(name) missing")
        }
        // _PRT entry for device 1 pin A: Package(4) { 0x0001FFFF, Zero, Zero, 17 }.
        #expect(dsdt.contains(bytes: [0x12, 0x0B, 0x04, 0x0C, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00, 0x0A, 17]))
        // Device 31 pin D: (31 + 3) mod 8 = 2 → GSI 18.
        #expect(dsdt.contains(bytes: [0x12, 0x0C, 0x04, 0x0C, 0xFF, 0xFF, 0x1F, 0x00, 0x0A, 0x03, 0x00, 0x0A, 18]))
    }

    @Test("swizzled routes cover devices 1–31, pins A–D, GSIs 16–23")
    func swizzle() {
        let routes = PCIInterruptRoute.swizzled()
        #expect(routes.count == 31 * 4)
        #expect(Set(routes.map(\.gsi)) == Set(16...23))
        #expect(routes.first == PCIInterruptRoute(device: 1, pin: 0, gsi: 17))
        #expect(routes.contains(PCIInterruptRoute(device: 8, pin: 0, gsi: 16)))
        #expect(PCIInterruptRoute.swizzled(devices: 2...3, firstGSI: 10, gsiCount: 2).map(\.gsi) == [10, 11, 10, 11, 11, 10, 11, 10])
    }

    @Test("invalid configurations are errors", arguments: [0, -1, 255, 1000])
    func invalidVCPUCount(vcpus: Int) {
        #expect(throws: ACPIError.invalidVCPUCount(vcpus)) { try ACPITables.build(ACPIConfiguration(vcpuCount: vcpus)) }
    }

    @Test func invalidBridges() throws {
        var bridge = PCIHostBridge()
        bridge.ecamBase = 0xF800_0000  // 256 MiB from here passes 4 GiB
        #expect(throws: ACPIError.self) { try ACPITables.build(ACPIConfiguration(vcpuCount: 1, pciHostBridge: bridge)) }

        bridge = PCIHostBridge(mmio64: AddressWindow(base: UInt64.max - 10, size: 100))
        #expect(throws: ACPIError.self) { try ACPITables.build(ACPIConfiguration(vcpuCount: 1, pciHostBridge: bridge)) }

        bridge = PCIHostBridge(interruptRoutes: [PCIInterruptRoute(device: 32, pin: 0, gsi: 16)])
        #expect(throws: ACPIError.self) { try ACPITables.build(ACPIConfiguration(vcpuCount: 1, pciHostBridge: bridge)) }

        bridge = PCIHostBridge()
        bridge.mmio32 = AddressWindow(base: 0xF000_0000, size: 0x2000_0000)
        #expect(throws: ACPIError.self) { try ACPITables.build(ACPIConfiguration(vcpuCount: 1, pciHostBridge: bridge)) }

        var configuration = ACPIConfiguration(vcpuCount: 1)
        configuration.ioapicID = 0xFF
        #expect(throws: ACPIError.self) { try ACPITables.build(configuration) }

        configuration = ACPIConfiguration(vcpuCount: 1)
        configuration.extraDevices = [[0x5B]]  // raw terms are the caller's responsibility but still fit
        #expect(throws: Never.self) { try ACPITables.build(configuration) }
    }

    @Test("tables that do not fit are an error, not a trap")
    func doesNotFit() throws {
        let configuration = try sampleACPIConfiguration()
        #expect(throws: ACPIError.self) {
            try ACPITables.build(configuration, base: Layout.acpiTablesAddress, end: Layout.acpiTablesAddress + 0x200)
        }
        var huge = configuration
        huge.extraDevices = [try AML.device("BIG0", [AML.name("DATA", AML.buffer(Array(repeating: 0, count: 0x20000)))])]
        do {
            _ = try ACPITables.build(huge)
            Issue.record("expected tablesDoNotFit")
        } catch {
            guard case .tablesDoNotFit(let required, let available) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(required > available)
            #expect(available == Layout.acpiTablesEnd - Layout.acpiTablesAddress)
        }
    }
}
