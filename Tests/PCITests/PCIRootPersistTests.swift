import DeviceModel
import Synchronization
import Testing

@testable import PCI

/// A PCI function as a device model owns its configuration and MSI-X state (the way the virtio
/// transport does), saved and restored through the value types' APIs.
final class PersistableFunction: PCIDevice, StatePersistable, @unchecked Sendable {
    struct Parts {
        var config: PCIConfiguration
        var msix: MSIXState
    }

    struct SavedState: ValidatedState {
        var config: PCIConfigurationState
        var msix: MSIXSavedState
        func validate() throws(DeviceStateError) {
            try config.validate()
            try msix.validate()
        }
    }

    static let vectors = 5
    let tag: UInt8
    let parts: Mutex<Parts>
    let mappedAt = Mutex<[String]>([])

    init(tag: UInt8, bar0: UInt64 = 0xc000_0000, bar2: UInt64 = 0x100_0000_0000, bar4: UInt64 = 0x6000) {
        self.tag = tag
        parts = Mutex(Parts(config: makeLayout(bar0: bar0, bar2: bar2, bar4: bar4), msix: MSIXState(vectorCount: Self.vectors)))
    }

    func configRead(offset: Int, size: Int) -> UInt32 { parts.withLock { $0.config.read(offset: offset, size: size) } }
    func configWrite(offset: Int, size: Int, value: UInt32) {
        parts.withLock { p in
            p.config.write(offset: offset, size: size, value: value)
            if offset <= 0x43, offset + size > 0x42 { _ = p.msix.setControl(p.config.get16(0x42)) }
        }
    }
    var barMappings: (bars: [PCIConfiguration.BAR], memoryEnabled: Bool, ioEnabled: Bool) {
        parts.withLock { ($0.config.bars, $0.config.memoryDecodingEnabled, $0.config.command & PCIConfiguration.commandIOSpace != 0) }
    }
    func barRead(index: Int, offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        if index == 0, offset >= 0x8000, offset < 0xc000 {
            parts.withLock { $0.msix.readTable(offset: offset - 0x8000, into: data) }
            return
        }
        for i in 0..<data.count { data[i] = tag ^ UInt8(index) ^ UInt8(truncatingIfNeeded: offset + UInt64(i)) }
    }
    func barWrite(index: Int, offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard index == 0, offset >= 0x8000, offset < 0xc000 else { return }
        _ = parts.withLock { $0.msix.writeTable(offset: offset - 0x8000, from: data) }
    }
    /// The last `barMapped` report for BAR `index`, as "index@address" ("-" for unmapped).
    func lastMapping(of index: Int) -> String? {
        mappedAt.withLock { $0.last { $0.hasPrefix("\(index)@") } }
    }

    func barMapped(index: Int, at address: UInt64?) {
        mappedAt.withLock { $0.append("\(index)@\(address.map { String($0, radix: 16) } ?? "-")") }
    }

    func saveState() -> SavedState {
        parts.withLock { SavedState(config: $0.config.savedState, msix: $0.msix.savedState) }
    }

    func restoreState(_ state: SavedState) throws(DeviceStateError) {
        try parts.withLock { (p) throws(DeviceStateError) in
            let config = try PCIConfiguration(restoring: state.config, layout: p.config)
            let msix = try MSIXState(restoring: state.msix, vectorCount: Self.vectors)
            try msix.checkMessageControl(config.get16(0x42))
            p = Parts(config: config, msix: msix)
        }
    }
}

/// A root on its own buses with the 0xCF8/0xCFC ports and `functions` plugged in.
private final class RootBench: Sendable {
    let mmio = Bus()
    let pio = Bus()
    let root: PCIRoot
    let functions: [PersistableFunction]

    init(_ functions: [PersistableFunction]) throws {
        root = PCIRoot(mmioBus: mmio, pioBus: pio, mmio32Window: (0xc000_0000, 0x2000_0000), mmio64Start: 0x100_0000_0000)
        let io = root.configIODevices()
        try pio.insert(io.address, base: 0xcf8, length: 4)
        try pio.insert(io.data, base: 0xcfc, length: 4)
        self.functions = functions
        for f in functions { try root.add(f) }
    }

    func outl(_ port: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { _ = pio.write(address: port, from: $0) }
    }

    func inl(_ port: UInt64) -> UInt32 {
        var v: UInt32 = 0
        withUnsafeMutableBytes(of: &v) { _ = pio.read(address: port, into: $0) }
        return UInt32(littleEndian: v)
    }

    func configWrite(slot: Int, _ register: Int, _ value: UInt32) {
        outl(0xcf8, 0x8000_0000 | UInt32(slot << 11 | register))
        outl(0xcfc, value)
    }

    func configRead(slot: Int, _ register: Int) -> UInt32 {
        outl(0xcf8, 0x8000_0000 | UInt32(slot << 11 | register))
        return inl(0xcfc)
    }

    /// A 4-byte MMIO read, nil when nobody claims the address.
    func mmioRead(_ address: UInt64) -> UInt32? {
        var v: UInt32 = 0
        let claimed = withUnsafeMutableBytes(of: &v) { mmio.read(address: address, into: $0) }
        return claimed ? v : nil
    }

    func pioRead(_ port: UInt64) -> UInt8? {
        var v: UInt8 = 0
        let claimed = withUnsafeMutableBytes(of: &v) { pio.read(address: port, into: $0) }
        return claimed ? v : nil
    }
}

@Suite struct PCIRootPersistTests {
    @Test func configAddressLatchSurvivesBetweenTheTwoHalvesOfAnAccess() throws {
        let original = try RootBench([PersistableFunction(tag: 0xa0)])
        original.outl(0xcf8, 0x8000_0808)  // slot 1, register 8: the guest is about to read 0xCFC
        let saved = original.root.saveState()
        #expect(saved.configAddress == 0x8000_0808)
        try saved.validate()
        let restored = try RootBench([PersistableFunction(tag: 0xa0)])
        try restored.root.restoreState(saved)
        #expect(restored.inl(0xcf8) == 0x8000_0808)
        #expect(restored.inl(0xcfc) == original.inl(0xcfc))
        #expect(restored.inl(0xcfc) == 0xff00_0002)  // class 0xff0000, revision 2
        #expect(restored.root.saveState() == original.root.saveState())
    }

    @Test func restoredBARsAreMappedWhereTheRestoredConfigurationsSay() throws {
        let original = try RootBench([PersistableFunction(tag: 0xa0)])
        original.configWrite(slot: 1, 0x10, 0xd000_0000)
        original.configWrite(slot: 1, 0x20, 0x7000)
        original.configWrite(slot: 1, 0x04, 0x0003)  // I/O and memory decoding
        original.configWrite(slot: 1, 0x40, 0x8000_0000)  // MSI-X enable (message control at 0x42)
        #expect(original.mmioRead(0xd000_0010) != nil)
        let savedFunction = original.functions[0].saveState()
        let savedRoot = original.root.saveState()

        // The destination builds the same function at its constructor's addresses, decoding off.
        let restored = try RootBench([PersistableFunction(tag: 0xa0)])
        try restored.functions[0].restoreState(savedFunction)
        try restored.root.restoreState(savedRoot)
        #expect(restored.mmioRead(0xd000_0010) == nil)  // not mapped until remapAllBARs
        restored.root.remapAllBARs()
        #expect(restored.mmioRead(0xd000_0010) == original.mmioRead(0xd000_0010))
        #expect(restored.mmioRead(0xc000_0010) == nil)
        #expect(restored.pioRead(0x7005) == original.pioRead(0x7005))
        #expect(restored.pioRead(0x6005) == nil)
        #expect(restored.mmioRead(0x80_4010_0000) == nil)  // BAR 2 at 0 would be unmapped anyway
        #expect(restored.mmioRead(0x100_0000_0000 + 4) == original.mmioRead(0x100_0000_0000 + 4))
        #expect(restored.functions[0].mappedAt.withLock { $0 }.sorted() == ["0@d0000000", "2@10000000000", "4@7000"])
        // Everything the guest reads through configuration space is the same.
        for register in stride(from: 0, to: 256, by: 4) {
            #expect(restored.configRead(slot: 1, register) == original.configRead(slot: 1, register))
        }
        // And the guest goes on: moving BAR 0 again moves it on both.
        for bench in [original, restored] { bench.configWrite(slot: 1, 0x10, 0xd100_0000) }
        #expect(restored.mmioRead(0xd100_0000) == original.mmioRead(0xd100_0000))
        #expect(restored.mmioRead(0xd000_0000) == nil && original.mmioRead(0xd000_0000) == nil)
    }

    /// Restoring in place, where two functions' BARs trade addresses: both must land, which
    /// needs every old mapping off the bus before the new ones go on.
    @Test func barsThatTradePlacesBothLand() throws {
        let live = try RootBench([PersistableFunction(tag: 0xa0, bar0: 0xc000_0000), PersistableFunction(tag: 0xb0, bar0: 0xc001_0000)])
        for slot in [1, 2] { live.configWrite(slot: slot, 0x04, 0x0002) }
        #expect(live.mmioRead(0xc000_0000) == 0xa3a2_a1a0)
        #expect(live.mmioRead(0xc001_0000) == 0xb3b2_b1b0)
        // Elsewhere the guest swapped them through a third address.
        let other = try RootBench([PersistableFunction(tag: 0xa0, bar0: 0xc000_0000), PersistableFunction(tag: 0xb0, bar0: 0xc001_0000)])
        other.configWrite(slot: 1, 0x10, 0xc002_0000)
        other.configWrite(slot: 2, 0x10, 0xc000_0000)
        other.configWrite(slot: 1, 0x10, 0xc001_0000)
        for slot in [1, 2] { other.configWrite(slot: slot, 0x04, 0x0002) }
        for (target, source) in zip(live.functions, other.functions) { try target.restoreState(source.saveState()) }
        try live.root.restoreState(other.root.saveState())
        live.root.remapAllBARs()
        #expect(live.mmioRead(0xc000_0000) == 0xb3b2_b1b0)
        #expect(live.mmioRead(0xc001_0000) == 0xa3a2_a1a0)
        #expect(live.functions[0].lastMapping(of: 0) == "0@c0010000")
        #expect(live.functions[1].lastMapping(of: 0) == "0@c0000000")
    }

    @Test func decodingOffInTheRestoredStateUnmaps() throws {
        let live = try RootBench([PersistableFunction(tag: 0xa0)])
        live.configWrite(slot: 1, 0x04, 0x0002)
        #expect(live.mmioRead(0xc000_0000) != nil)
        try live.functions[0].restoreState(PersistableFunction(tag: 0xa0).saveState())
        live.root.remapAllBARs()
        #expect(live.mmioRead(0xc000_0000) == nil)
        #expect(live.functions[0].lastMapping(of: 0) == "0@-")
    }

    @Test func functionRestoreChecksMSIXAgainstTheConfiguration() throws {
        let source = try RootBench([PersistableFunction(tag: 0xa0)])
        source.configWrite(slot: 1, 0x40, 0x8000_0000)
        var saved = source.functions[0].saveState()
        saved.msix.enabled = false  // the message control in the space still says enabled
        let target = PersistableFunction(tag: 0xa0)
        expectRefused(component: "msix", field: "enabled") { () throws(DeviceStateError) in try target.restoreState(saved) }
        #expect(target.saveState() == PersistableFunction(tag: 0xa0).saveState())
    }

    static let corruptions: [Corruption<PCIRootState>] = [
        Corruption("configAddress", "bit 30") { $0.configAddress |= 0x4000_0000 },
        Corruption("configAddress", "bit 0") { $0.configAddress |= 1 },
        Corruption("space", "host bridge space of 255 bytes") { $0.hostBridge.space.removeLast() },
        Corruption("bars[0].address", "a misaligned BAR on the host bridge") {
            $0.hostBridge.bars = [PCIBARState(slot: 0, kind: .memory32, size: 0x1000, address: 0x800)]
        },
    ]

    static let mismatches: [Corruption<PCIRootState>] = [
        Corruption("bars", "a BAR on the host bridge") {
            $0.hostBridge.bars = [PCIBARState(slot: 0, kind: .memory32, size: 0x1000, address: 0)]
        },
        Corruption("space[0x0]", "host bridge vendor ID") { $0.hostBridge.space[0] = 0x86 },
        Corruption("space[0xa]", "host bridge class") { $0.hostBridge.space[0x0a] = 0x04 },
        Corruption("space[0x4]", "command bits the bridge never takes") { $0.hostBridge.space[0x04] = 0x06 },
        Corruption("space[0x3c]", "interrupt line the bridge never takes") { $0.hostBridge.space[0x3c] = 0x0b },
    ]

    @Test(arguments: Self.corruptions + Self.mismatches)
    func corruptStateIsRefused(_ corruption: Corruption<PCIRootState>) throws {
        let source = try RootBench([PersistableFunction(tag: 0xa0)])
        source.outl(0xcf8, 0x8000_0800)
        let bad = corruption.applied(to: source.root.saveState())
        let component = corruption.field == "configAddress" ? "pci-root" : "pci-root 00:00.0 pci-config"
        if Self.corruptions.contains(where: { $0.note == corruption.note }) {
            expectRefused(component: component, field: corruption.field) { () throws(DeviceStateError) in try bad.validate() }
        } else {
            #expect(throws: Never.self) { try bad.validate() }
        }
        let target = try RootBench([PersistableFunction(tag: 0xa0)])
        target.outl(0xcf8, 0x8000_0010)
        let before = target.root.saveState()
        expectRefused(component: component, field: corruption.field) { () throws(DeviceStateError) in try target.root.restoreState(bad) }
        #expect(target.root.saveState() == before)
        #expect(target.inl(0xcf8) == 0x8000_0010)
        #expect(target.configRead(slot: 0, 0) == 0x0008_1b36)
    }

    @Test(arguments: [UInt64(0x9c1_0001), 0x9c1_0002, 0x9c1_0003])
    func randomHistoryThenLockstep(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        func step(_ benches: [RootBench], _ random: inout SeededRandom) -> [String] {
            switch UInt8.random(in: 0..<6, using: &random) {
            case 0:
                let address = 0x8000_0000 | UInt32.random(in: 0..<3, using: &random) << 11 | UInt32.random(in: 0..<64, using: &random) << 2
                let value = Bool.random(using: &random) ? UInt32.max : UInt32.random(in: 0...UInt32.max, using: &random)
                let register = [0x04, 0x10, 0x14, 0x18, 0x1c, 0x20, 0x40].randomElement(using: &random) ?? 0x04
                let fixed = address & ~0xfc | UInt32(register)
                let choice = Bool.random(using: &random)
                return benches.map { b in
                    b.outl(0xcf8, choice ? address : fixed)
                    b.outl(0xcfc, register == 0x04 ? value & 0x0407 : value)
                    return ""
                }
            case 1:
                let address = 0x8000_0000 | UInt32.random(in: 0..<4, using: &random) << 11 | UInt32.random(in: 0..<64, using: &random) << 2
                return benches.map { b in
                    b.outl(0xcf8, address)
                    return "\(b.inl(0xcfc))"
                }
            case 2:
                let address = UInt64.random(in: 0xbfff_0000..<0xe001_0000, using: &random) & ~3
                return benches.map { "\(String(describing: $0.mmioRead(address)))" }
            case 3:
                let port = UInt64.random(in: 0..<0x1_0000, using: &random)
                return benches.map { "\(String(describing: $0.pioRead(port)))" }
            case 4:
                let value = UInt32.random(in: 0...UInt32.max, using: &random)
                return benches.map { b in
                    b.outl(0xcf8, value)
                    return "\(b.inl(0xcf8))"
                }
            default:
                // A likely BAR move: a random window-aligned address, decoding on.
                let slot = Int.random(in: 1...2, using: &random)
                let base = 0xc000_0000 + UInt32.random(in: 0..<0x200, using: &random) << 16
                return benches.map { b in
                    b.configWrite(slot: slot, 0x10, base)
                    b.configWrite(slot: slot, 0x04, 0x0003)
                    return ""
                }
            }
        }
        func makeBench() throws -> RootBench {
            try RootBench([PersistableFunction(tag: 0xa0, bar0: 0xc000_0000), PersistableFunction(tag: 0xb0, bar0: 0xc001_0000, bar4: 0x6100)])
        }
        let original = try makeBench()
        for _ in 0..<3_000 { _ = step([original], &random) }
        let restored = try makeBench()
        for (target, source) in zip(restored.functions, original.functions) { try target.restoreState(source.saveState()) }
        try restored.root.restoreState(original.root.saveState())
        restored.root.remapAllBARs()
        for i in 0..<3_000 {
            let results = step([original, restored], &random)
            if results[0] != results[1] {
                Issue.record("step \(i) after restore: original \(results[0]), restored \(results[1])")
                return
            }
        }
        #expect(original.root.saveState() == restored.root.saveState())
        for (a, b) in zip(original.functions, restored.functions) { #expect(a.saveState() == b.saveState()) }
    }
}
