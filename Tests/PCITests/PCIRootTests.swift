import DeviceModel
import Synchronization
import Testing
@testable import PCI

/// A PCI function with one 4 KiB memory BAR that records BAR accesses.
final class FakeFunction: PCIDevice, @unchecked Sendable {
    let config: Mutex<PCIConfiguration>
    let accesses = Mutex<[(write: Bool, offset: UInt64)]>([])
    let mappedAt = Mutex<[UInt64?]>([])

    init(barAddress: UInt64) {
        var c = PCIConfiguration(vendor: 0x1234, device: 0x5678, classCode: 0xff0000, interruptPin: 1)
        c.addBAR(index: 0, size: 0x1000, kind: .memory32, address: barAddress)
        c.addCapability(id: 0x09, body: [4, 1, 2, 3])
        c.addCapability(id: 0x05, body: [0, 0])
        config = Mutex(c)
    }

    func configRead(offset: Int, size: Int) -> UInt32 { config.withLock { $0.read(offset: offset, size: size) } }
    func configWrite(offset: Int, size: Int, value: UInt32) { config.withLock { _ = $0.write(offset: offset, size: size, value: value) } }
    var barMappings: (bars: [PCIConfiguration.BAR], memoryEnabled: Bool, ioEnabled: Bool) {
        config.withLock { ($0.bars, $0.memoryDecodingEnabled, false) }
    }
    func barRead(index: Int, offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        accesses.withLock { $0.append((false, offset)) }
        for i in 0..<data.count { data[i] = 0x5a }
    }
    func barWrite(index: Int, offset: UInt64, from data: UnsafeRawBufferPointer) { accesses.withLock { $0.append((true, offset)) } }
    func barMapped(index: Int, at address: UInt64?) { mappedAt.withLock { $0.append(address) } }
}

struct PCIRootTests {
    let mmio = Bus()
    let pio = Bus()
    let narrow = FakeFunctionNarrow()

    func makeRoot() throws -> PCIRoot {
        let root = PCIRoot(mmioBus: mmio, pioBus: pio, mmio32Window: (0xc000_0000, 0x2000_0000), mmio64Start: 0x100_0000_0000)
        let io = root.configIODevices(narrowAccesses: narrow)
        try pio.insert(io.address, base: 0xcf8, length: 4)
        try pio.insert(io.data, base: 0xcfc, length: 4)
        try mmio.insert(root.ecamDevice(), base: 0xe000_0000, length: 0x1000_0000)
        return root
    }

    func cf8Read(_ bus: Int, _ slot: Int, _ fn: Int, _ reg: Int, size: Int = 4) -> UInt32 {
        var addr: UInt32 = 0x8000_0000 | UInt32(bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc))
        _ = withUnsafeBytes(of: &addr) { pio.write(address: 0xcf8, from: $0) }
        var out = [UInt8](repeating: 0, count: size)
        _ = out.withUnsafeMutableBytes { pio.read(address: 0xcfc + UInt64(reg & 3), into: $0) }
        return out.enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) }
    }

    func cf8Write(_ slot: Int, _ reg: Int, _ value: UInt32, size: Int = 4) {
        var addr: UInt32 = 0x8000_0000 | UInt32(slot << 11 | (reg & 0xfc))
        _ = withUnsafeBytes(of: &addr) { pio.write(address: 0xcf8, from: $0) }
        var v = value
        _ = withUnsafeBytes(of: &v) { pio.write(address: 0xcfc + UInt64(reg & 3), from: UnsafeRawBufferPointer(rebasing: $0[0..<size])) }
    }

    func ecamRead(_ slot: Int, _ reg: Int) -> UInt32 {
        var v: UInt32 = 0
        _ = withUnsafeMutableBytes(of: &v) { mmio.read(address: 0xe000_0000 + UInt64(slot << 15 | reg), into: $0) }
        return v
    }

    /// The configuration devices on the buses must not keep the root (which holds the buses)
    /// alive: that cycle kept every machine's buses, devices, guest RAM and KVM descriptors
    /// after `--on-reboot restart` replaced the machine.
    @Test func rootAndBusesAreFreedWithTheirOwner() throws {
        weak var weakRoot: PCIRoot?
        weak var weakBus: Bus?
        do {
            let mmio = Bus(), pio = Bus()
            let root = PCIRoot(mmioBus: mmio, pioBus: pio, mmio32Window: (0xc000_0000, 0x2000_0000), mmio64Start: 0x100_0000_0000)
            let io = root.configIODevices()
            try pio.insert(io.address, base: 0xcf8, length: 4)
            try pio.insert(io.data, base: 0xcfc, length: 4)
            try mmio.insert(root.ecamDevice(), base: 0xe000_0000, length: 0x1000_0000)
            _ = try root.add(FakeFunction(barAddress: 0xc000_0000))
            weakRoot = root
            weakBus = mmio
        }
        #expect(weakRoot == nil)
        #expect(weakBus == nil)
    }

    @Test func hostBridgeAndAbsentSlots() throws {
        let root = try makeRoot()
        defer { withExtendedLifetime(root) {} }
        #expect(cf8Read(0, 0, 0, 0) == 0x0008_1b36)
        #expect(cf8Read(0, 0, 0, 8) >> 8 == 0x06_00_00)
        #expect(cf8Read(0, 5, 0, 0) == 0xffff_ffff)
        #expect(cf8Read(0, 0, 3, 0) == 0xffff_ffff)
        #expect(cf8Read(1, 0, 0, 0) == 0xffff_ffff)
        #expect(cf8Read(0, 5, 0, 2, size: 2) == 0xffff)
        #expect(ecamRead(0, 0) == 0x0008_1b36)
        #expect(ecamRead(7, 0) == 0xffff_ffff)
    }

    @Test func addressRegisterReadsBackAndNeedsDwordAccess() throws {
        let root = try makeRoot()
        defer { withExtendedLifetime(root) {} }
        var a: UInt32 = 0x8000_0810
        _ = withUnsafeBytes(of: &a) { pio.write(address: 0xcf8, from: $0) }
        var back: UInt32 = 0
        _ = withUnsafeMutableBytes(of: &back) { pio.read(address: 0xcf8, into: $0) }
        #expect(back == 0x8000_0810)
        var b: UInt8 = 0x06
        _ = withUnsafeBytes(of: &b) { pio.write(address: 0xcf9, from: $0) }  // a byte write to 0xCF9 is not the address register
        #expect(narrow.writes.withLock { $0 } == [1])
        _ = withUnsafeMutableBytes(of: &back) { pio.read(address: 0xcf8, into: $0) }
        #expect(back == 0x8000_0810)
    }

    @Test func barSizingAndRelocationMovesTheBusMapping() throws {
        let root = try makeRoot()
        let f = FakeFunction(barAddress: 0xc000_0000)
        let slot = try root.add(f)
        #expect(slot == 1)
        // Decoding is off until the command register enables memory space.
        var probe = [UInt8](repeating: 0, count: 4)
        #expect(!probe.withUnsafeMutableBytes { mmio.read(address: 0xc000_0000, into: $0) })
        cf8Write(slot, 4, UInt32(PCIConfiguration.commandMemorySpace))
        #expect(probe.withUnsafeMutableBytes { mmio.read(address: 0xc000_0010, into: $0) })
        #expect(f.accesses.withLock { $0.last?.offset } == 0x10)
        // Size probe: all ones in, size mask out.
        cf8Write(slot, 0x10, 0xffff_ffff)
        #expect(cf8Read(0, slot, 0, 0x10) == 0xffff_f000)
        // Move it.
        cf8Write(slot, 0x10, 0xc010_0000)
        #expect(cf8Read(0, slot, 0, 0x10) == 0xc010_0000)
        #expect(!probe.withUnsafeMutableBytes { mmio.read(address: 0xc000_0000, into: $0) })
        #expect(probe.withUnsafeMutableBytes { mmio.read(address: 0xc010_0000, into: $0) })
        #expect(f.mappedAt.withLock { $0.last } == 0xc010_0000)
        // Read-only identifiers ignore writes.
        cf8Write(slot, 0, 0)
        #expect(cf8Read(0, slot, 0, 0) == 0x5678_1234)
    }

    @Test func capabilityListIsChained() throws {
        var c = PCIConfiguration(vendor: 1, device: 2, classCode: 0)
        let first = c.addCapability(id: 0x11, body: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        let second = c.addCapability(id: 0x09, body: [0x10, 1])
        #expect(c.get16(PCIConfiguration.status) & PCIConfiguration.statusCapabilities != 0)
        #expect(Int(c.read(offset: PCIConfiguration.capabilitiesPointer, size: 1)) == first)
        #expect(Int(c.read(offset: first + 1, size: 1)) == second)
        #expect(c.read(offset: second + 1, size: 1) == 0)
        #expect(second % 4 == 0)
    }

    /// Seeded random configuration accesses by both mechanisms: read-only registers keep their
    /// values, absent functions read all ones, and BAR sizing still works afterwards.
    @Test func randomConfigAccessesKeepReadOnlyRegisters() throws {
        let root = try makeRoot()
        let fake = FakeFunction(barAddress: 0xc000_0000)
        let slot = try root.add(fake)
        var rng = SeededRandom(seed: 0xC0F1_6000)
        for i in 0..<20000 {
            let target = Int(rng.next() % 32), reg = Int(rng.next() % 4096)
            let size = [1, 2, 4, 8, 3][Int(rng.next() % 5)]
            if rng.next() & 1 == 0 {
                _ = root.configRead(bus: Int(rng.next() % 256), slot: target, function: Int(rng.next() % 8), offset: reg, size: min(size, 4))
            } else {
                root.configWrite(bus: 0, slot: target, function: 0, offset: reg, size: size, value: UInt32(truncatingIfNeeded: rng.next()))
            }
            var bytes = [UInt8](repeating: 0, count: size)
            bytes.withUnsafeMutableBytes { _ = mmio.read(address: 0xe000_0000 + rng.next() % 0x1000_0000, into: $0) }
            if i % 101 == 0 {
                #expect(root.configRead(bus: 0, slot: 0, function: 0, offset: 0, size: 4) == 0x0008_1b36, "host bridge ID at step \(i)")
                #expect(root.configRead(bus: 0, slot: slot, function: 0, offset: 0, size: 4) == 0x5678_1234, "device ID at step \(i)")
                #expect(root.configRead(bus: 0, slot: slot, function: 0, offset: 8, size: 4) >> 8 == 0xff0000, "class code at step \(i)")
                #expect(root.configRead(bus: 0, slot: 9, function: 0, offset: 0, size: 4) == 0xffff_ffff, "absent slot at step \(i)")
                #expect(root.configRead(bus: 3, slot: slot, function: 0, offset: 0, size: 2) == 0xffff, "other bus at step \(i)")
            }
        }
        // BAR sizing: all ones in, the size mask out; then the address goes back.
        root.configWrite(bus: 0, slot: slot, function: 0, offset: 0x10, size: 4, value: 0xffff_ffff)
        #expect(root.configRead(bus: 0, slot: slot, function: 0, offset: 0x10, size: 4) == 0xffff_f000)
        root.configWrite(bus: 0, slot: slot, function: 0, offset: 0x10, size: 4, value: 0xc000_0000)
        #expect(root.configRead(bus: 0, slot: slot, function: 0, offset: 0x10, size: 4) == 0xc000_0000)
    }
}

struct MSIXStateTests {
    @Test func vectorsFireOnlyWhenEnabledAndUnmasked() {
        var m = MSIXState(vectorCount: 3)
        #expect(m.deliverableMessage(0) == nil)
        var entry: [UInt32] = [0xfee0_0000, 0, 0x41, 0]
        _ = entry.withUnsafeBytes { m.writeTable(offset: 0, from: UnsafeRawBufferPointer(rebasing: $0[0..<8])) }
        _ = entry.withUnsafeBytes { m.writeTable(offset: 8, from: UnsafeRawBufferPointer(rebasing: $0[8..<16])) }
        #expect(m.deliverableMessage(0) == nil)  // MSI-X still off
        #expect(m.setControl(0x8000) == [0])
        #expect(m.deliverableMessage(0) == MSIMessage(addressLow: 0xfee0_0000, addressHigh: 0, data: 0x41))
        #expect(m.setControl(0xc000) == [0])  // function mask
        #expect(m.deliverableMessage(0) == nil)
        _ = m.setControl(0x8000)
        entry = [1]
        _ = entry.withUnsafeBytes { m.writeTable(offset: 12, from: $0) }  // mask vector 0
        #expect(m.deliverableMessage(0) == nil)
        m.setPending(0, true)
        var pba: UInt64 = 0
        withUnsafeMutableBytes(of: &pba) { m.readPBA(offset: 0, into: $0) }
        #expect(pba == 1)
        // Out-of-range and odd-sized accesses are ignored.
        entry = [0xffff_ffff]
        #expect(entry.withUnsafeBytes { m.writeTable(offset: 0x1000, from: $0) }.isEmpty)
        #expect(entry.withUnsafeBytes { m.writeTable(offset: 2, from: UnsafeRawBufferPointer(rebasing: $0[0..<2])) }.isEmpty)
        m.setPending(99, true)
        #expect(!m.isPending(99))
    }
}

/// Records narrow accesses to 0xCF8–0xCFB (where a PC's 0xCF9 reset register lives).
final class FakeFunctionNarrow: BusDevice, @unchecked Sendable {
    let writes = Mutex<[UInt64]>([])
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {}
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) { writes.withLock { $0.append(offset) } }
}
