import Testing

@testable import ArchX86

@Suite("MP table")
struct MPTableTests {
    let signature: UInt32 = 0x00A1_0F11
    let features: UInt32 = 0x178B_FBFF

    /// Splits the configuration table's entries by their type-dependent sizes.
    func entries(_ table: MPTable) -> [[UInt8]] {
        let config = Array(table.bytes.dropFirst(16))
        var result: [[UInt8]] = []
        var offset = 44
        while offset < Int(config.u16(4)) {
            let size = config[offset] == 0 ? 20 : 8
            result.append(Array(config[offset..<(offset + size)]))
            offset += size
        }
        return result
    }

    @Test("floating pointer: signature, pointer, length, revision, checksum")
    func floatingPointer() throws {
        let table = try MPTable.build(MPTableConfiguration(vcpuCount: 2, cpuSignature: signature, featureFlags: features))
        #expect(table.address == Layout.ebdaAddress)
        let fp = Array(table.bytes[0..<16])
        #expect(fp.ascii(0, 4) == "_MP_")
        #expect(UInt64(fp.u32(4)) == Layout.ebdaAddress + 16)
        #expect(fp[8] == 1)
        #expect(fp[9] == 4)
        #expect(fp.byteSum() == 0)
        #expect(fp[11...].allSatisfy { $0 == 0 }, "configuration table present, virtual-wire mode")
    }

    @Test("configuration table header, checksum and entry count", arguments: [1, 2, 8, 40])
    func header(vcpus: Int) throws {
        let table = try MPTable.build(MPTableConfiguration(vcpuCount: vcpus, cpuSignature: signature, featureFlags: features))
        let config = Array(table.bytes.dropFirst(16))
        #expect(config.ascii(0, 4) == "PCMP")
        #expect(Int(config.u16(4)) == config.count)
        #expect(config[6] == 4)
        #expect(config.byteSum() == 0)
        #expect(config.ascii(8, 8) == "SKIFF   ")
        #expect(config.ascii(16, 12) == "SKIFFVM     ")
        #expect(config.u32(36) == 0xFEE0_0000)
        #expect(config.u16(40) == 0 && config[42] == 0, "no extended table")
        let parsed = entries(table)
        #expect(Int(config.u16(34)) == parsed.count)
        // Processors, 1 bus, 1 I/O APIC, 16 ISA assignments (ExtINT + 15 IRQs), 2 local interrupts.
        #expect(parsed.count == vcpus + 1 + 1 + 16 + 2)
        #expect(table.address + UInt64(table.bytes.count) <= Layout.conventionalMemoryEnd)
        // Entries are sorted by type, as the specification requires.
        #expect(parsed.map { $0[0] } == parsed.map { $0[0] }.sorted())
    }

    @Test("processor entries: APIC ID per vCPU, BSP on vCPU 0, signature and features")
    func processors() throws {
        let table = try MPTable.build(MPTableConfiguration(vcpuCount: 3, cpuSignature: signature, featureFlags: features))
        let processors = entries(table).filter { $0[0] == 0 }
        #expect(processors.count == 3)
        for (index, entry) in processors.enumerated() {
            #expect(entry[1] == UInt8(index))
            #expect(entry[2] == 0x14)
            #expect(entry[3] == (index == 0 ? 0x03 : 0x01))
            #expect(entry.u32(4) == 0xF11, "only stepping, model and family bits")
            #expect(entry.u32(8) == features)
            #expect(entry[12..<20].allSatisfy { $0 == 0 })
        }
    }

    @Test("I/O APIC and ISA interrupt assignments for the PC layout")
    func isaInterrupts() throws {
        let table = try MPTable.build(MPTableConfiguration(vcpuCount: 2, cpuSignature: signature, featureFlags: features))
        let all = entries(table)
        #expect(all.filter { $0[0] == 1 }.map { $0.ascii(2, 6) } == ["ISA   "])
        let ioapic = try #require(all.first { $0[0] == 2 })
        #expect(ioapic[1] == 2 && ioapic[2] == 0x11 && ioapic[3] == 1)
        #expect(ioapic.u32(4) == 0xFEC0_0000)
        let assignments = all.filter { $0[0] == 3 }
        #expect(assignments.allSatisfy { $0[4] == 0 && $0[6] == 2 }, "source bus ISA, destination I/O APIC 2")
        #expect(assignments.first == [3, 3, 0, 0, 0, 0, 2, 0], "8259 ExtINT on pin 0")
        #expect(assignments.contains([3, 0, 0, 0, 0, 0, 2, 2]), "IRQ 0 on pin 2")
        #expect(!assignments.contains { $0[1] == 0 && $0[5] == 2 }, "no IRQ 2")
        for irq in UInt8(1)..<16 where irq != 2 {
            #expect(assignments.contains([3, 0, 0, 0, 0, irq, 2, irq]), "IRQ \(irq)")
        }
        let local = all.filter { $0[0] == 4 }
        #expect(local == [[4, 3, 0, 0, 0, 0, 0xFF, 0], [4, 1, 0, 0, 0, 0, 0xFF, 1]])
    }

    @Test("identity layout routes IRQ n to pin n without ExtINT")
    func identityLayout() throws {
        var configuration = MPTableConfiguration(vcpuCount: 1, cpuSignature: signature, featureFlags: features)
        configuration.isaInterruptLayout = .identity
        let assignments = entries(try MPTable.build(configuration)).filter { $0[0] == 3 }
        #expect(assignments.count == 15)
        #expect(assignments.allSatisfy { $0[1] == 0 && $0[5] == $0[7] })
    }

    @Test("PCI bus and INTx routes")
    func pci() throws {
        var configuration = MPTableConfiguration(vcpuCount: 2, cpuSignature: signature, featureFlags: features)
        configuration.pciBus = true
        configuration.pciInterruptRoutes = PCIInterruptRoute.swizzled(devices: 1...2)
        let all = entries(try MPTable.build(configuration))
        #expect(all.filter { $0[0] == 1 }.map { [$0[1]] + Array($0[2..<8]) } == [[0] + Array("PCI   ".utf8), [1] + Array("ISA   ".utf8)])
        let pciAssignments = all.filter { $0[0] == 3 && $0[4] == 0 }
        #expect(pciAssignments.count == 8)
        // Device 2 pin B: source IRQ (2 << 2) | 1, flags level + active low, GSI 16 + (2 + 1) mod 8 = 19.
        #expect(pciAssignments.contains([3, 0, 0x0F, 0, 0, 9, 2, 19]))
        #expect(all.filter { $0[0] == 3 && $0[4] == 1 }.count == 16, "ISA assignments name bus 1")
        #expect(all.filter { $0[0] == 4 }.allSatisfy { $0[4] == 1 })
    }

    @Test("the vCPU limit is computed from the space and enforced")
    func capacity() throws {
        var configuration = MPTableConfiguration(vcpuCount: 1, cpuSignature: signature, featureFlags: features)
        let maximum = MPTable.maximumVCPUCount(for: configuration)
        // 1024 bytes - (16 + 44 + 8 × (1 bus + 1 I/O APIC + 16 ISA + 2 local)) = 804 → 40 processors.
        #expect(maximum == 40)
        configuration.vcpuCount = maximum
        configuration.ioapicID = UInt8(maximum)
        let table = try MPTable.build(configuration)
        #expect(table.bytes.count <= 1024)
        configuration.vcpuCount = maximum + 1
        configuration.ioapicID = UInt8(maximum + 1)
        #expect(throws: MPTableError.tooManyVCPUs(requested: maximum + 1, maximum: maximum)) { try MPTable.build(configuration) }

        configuration.pciBus = true
        configuration.pciInterruptRoutes = PCIInterruptRoute.swizzled(devices: 1...2)
        #expect(MPTable.maximumVCPUCount(for: configuration) == (1024 - (60 + 8 * (2 + 1 + 16 + 8 + 2))) / 20)
        configuration.pciInterruptRoutes = PCIInterruptRoute.swizzled()
        #expect(MPTable.maximumVCPUCount(for: configuration) == 0, "124 routes leave no room")
    }

    @Test func invalidConfigurations() {
        #expect(throws: MPTableError.invalidVCPUCount(0)) { try MPTable.build(MPTableConfiguration(vcpuCount: 0, cpuSignature: 0, featureFlags: 0)) }
        var configuration = MPTableConfiguration(vcpuCount: 4, cpuSignature: 0, featureFlags: 0)
        configuration.ioapicID = 2
        #expect(throws: MPTableError.self) { try MPTable.build(configuration) }
        configuration = MPTableConfiguration(vcpuCount: 4, cpuSignature: 0, featureFlags: 0)
        configuration.pciInterruptRoutes = [PCIInterruptRoute(device: 1, pin: 0, gsi: 16)]
        #expect(throws: MPTableError.self) { try MPTable.build(configuration) }
        configuration.pciBus = true
        configuration.pciInterruptRoutes = [PCIInterruptRoute(device: 1, pin: 0, gsi: 24)]
        #expect(throws: MPTableError.self) { try MPTable.build(configuration) }
        configuration.pciInterruptRoutes = [PCIInterruptRoute(device: 1, pin: 4, gsi: 16)]
        #expect(throws: MPTableError.self) { try MPTable.build(configuration) }
    }

    @Test("signature and features come from CPUID leaf 1")
    func fromCPUID() {
        let configuration = MPTableConfiguration(vcpuCount: 2, cpuid: [CPUIDEntry(function: 0), CPUIDEntry(function: 1, eax: 0x806F8, edx: 0xBFEBFBFF)])
        #expect(configuration.cpuSignature == 0x806F8 && configuration.featureFlags == 0xBFEBFBFF)
        #expect(configuration.ioapicID == 2)
    }
}

@Suite("MP table placement")
struct MPTablePlacementTests {
    @Test("addresses near the top of the address space are rejected, not overflowed")
    func hostilePlacement() {
        let configuration = MPTableConfiguration(vcpuCount: 1, cpuSignature: 0, featureFlags: 0)
        #expect(throws: MPTableError.self) { try MPTable.build(configuration, at: UInt64.max - 15) }
        #expect(throws: MPTableError.self) { try MPTable.build(configuration, at: 0x9FC08) }
        #expect(throws: MPTableError.self) { try MPTable.build(configuration, space: -1) }
    }
}
