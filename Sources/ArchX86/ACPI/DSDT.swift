/// The Differentiated System Description Table: Skiff's devices in AML.
///
/// ```
/// Name (_S5, Package () { S5, S5, 0, 0 })
/// Scope (\_SB) {
///     Device (COM1) { PNP0501, IO 0x3F8/8, IRQ 4 }
///     Device (PS2K) { PNP0303, IO 0x60/1, IO 0x64/1, IRQ 1 }
///     Device (RTC)  { PNP0B00, IO 0x70/2, IRQ 8 }
///     Device (PCI0) { PNP0A08/PNP0A03, _SEG/_BBN/_UID 0, _CRS windows, _PRT }
///     Device (MRES) { PNP0C02, Memory32Fixed ECAM }
///     extra devices…
/// }
/// ```
public enum DSDT {
    public static let revision: UInt8 = 2  // 64-bit AML integers

    /// Builds the DSDT for `configuration`.
    public static func build(_ configuration: ACPIConfiguration) throws(AMLError) -> [UInt8] {
        var table = ACPITableHeader.make(signature: "DSDT", revision: revision)
        let s5 = UInt64(Layout.acpiS5SleepType)
        table += try AML.name("_S5_", AML.package([AML.integer(s5), AML.integer(s5), AML.integer(0), AML.integer(0)]))

        var devices: [[UInt8]] = []
        let legacy = configuration.legacyDevices
        if legacy.contains(.com1) {
            devices.append(
                try AML.device(
                    "COM1", hardwareID: .eisa("PNP0501"), uniqueID: 1,
                    resources: [
                        .io(minimum: Layout.com1Port, maximum: Layout.com1Port, alignment: 1, length: 8),
                        .irqNoFlags([UInt8(truncatingIfNeeded: Layout.com1IRQ)]),
                    ]))
        }
        if legacy.contains(.i8042) {
            devices.append(
                try AML.device(
                    "PS2K", hardwareID: .eisa("PNP0303"), uniqueID: 0,
                    resources: [
                        .io(minimum: Layout.i8042DataPort, maximum: Layout.i8042DataPort, alignment: 1, length: 1),
                        .io(minimum: Layout.i8042CommandPort, maximum: Layout.i8042CommandPort, alignment: 1, length: 1),
                        .irqNoFlags([UInt8(truncatingIfNeeded: Layout.i8042IRQ)]),
                    ]))
        }
        if legacy.contains(.rtc) {
            devices.append(
                try AML.device(
                    "RTC", hardwareID: .eisa("PNP0B00"), uniqueID: 0,
                    resources: [
                        .io(minimum: Layout.rtcPort, maximum: Layout.rtcPort, alignment: 1, length: 2),
                        .irqNoFlags([UInt8(truncatingIfNeeded: Layout.rtcIRQ)]),
                    ]))
        }
        if let bridge = configuration.pciHostBridge {
            devices.append(try hostBridge(bridge))
            devices.append(
                try AML.device(
                    "MRES", hardwareID: .eisa("PNP0C02"), uniqueID: 0,
                    resources: [.memory32Fixed(base: UInt32(truncatingIfNeeded: bridge.ecamBase), length: UInt32(truncatingIfNeeded: bridge.ecamSize), writable: true)]))
        }
        devices += configuration.extraDevices
        table += try AML.scope("\\_SB_", devices)
        ACPITableHeader.finish(&table)
        return table
    }

    /// `Device (PCI0)`: a PCI Express root bridge with its resource windows and `_PRT`.
    static func hostBridge(_ bridge: PCIHostBridge) throws(AMLError) -> [UInt8] {
        var resources: [AMLResource] = [
            .wordBusNumber(minimum: UInt16(bridge.buses.lowerBound), maximum: UInt16(bridge.buses.upperBound)),
            .io(minimum: 0xCF8, maximum: 0xCF8, alignment: 1, length: 8),
            .wordIO(minimum: 0x0000, maximum: 0x0CF7),
            .wordIO(minimum: 0x0D00, maximum: 0xFFFF),
            .dwordMemory(
                base: UInt32(truncatingIfNeeded: bridge.mmio32.base), length: UInt32(truncatingIfNeeded: bridge.mmio32.size),
                cacheability: .nonCacheable, writable: true),
        ]
        if let window = bridge.mmio64, window.size > 0 {
            resources.append(.qwordMemory(base: window.base, length: window.size, cacheability: .cacheable, writable: true))
        }
        var terms: [[UInt8]] = [
            try AML.name("_HID", AML.eisaID("PNP0A08")),
            try AML.name("_CID", AML.eisaID("PNP0A03")),
            try AML.name("_SEG", AML.integer(0)),
            try AML.name("_BBN", AML.integer(UInt64(bridge.buses.lowerBound))),
            try AML.name("_UID", AML.integer(0)),
            try AML.name("_CRS", AML.resourceTemplate(resources)),
        ]
        if !bridge.interruptRoutes.isEmpty {
            terms.append(try AML.name("_PRT", routingTable(bridge.interruptRoutes)))
        }
        return try AML.device("PCI0", terms)
    }

    /// `Package () { Package () { 0xDDDDFFFF, pin, Zero, gsi }, … }`: each route names a GSI directly.
    static func routingTable(_ routes: [PCIInterruptRoute]) throws(AMLError) -> [UInt8] {
        var entries: [[UInt8]] = []
        for route in routes {
            let address = (UInt64(route.device) << 16) | 0xFFFF
            entries.append(
                try AML.package([AML.integer(address), AML.integer(UInt64(route.pin)), AML.integer(0), AML.integer(UInt64(route.gsi))]))
        }
        return try AML.package(entries)
    }
}
