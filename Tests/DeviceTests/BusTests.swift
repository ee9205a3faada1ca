import DeviceModel
import LegacyDevices
import Synchronization
import Testing

/// A device that records what reached it and reads back its tag in every byte.
final class ProbeDevice: BusDevice {
    struct Access: Equatable {
        var write: Bool
        var offset: UInt64
        var bytes: [UInt8]
    }

    let tag: UInt8
    private let log = Mutex<[Access]>([])

    init(tag: UInt8) {
        self.tag = tag
    }

    var accesses: [Access] { log.withLock { $0 } }

    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for i in data.indices { data[i] = tag }
        log.withLock { $0.append(Access(write: false, offset: offset, bytes: Array(data))) }
    }

    func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        log.withLock { $0.append(Access(write: true, offset: offset, bytes: Array(data))) }
    }
}

private extension Bus {
    func read(_ address: UInt64, size: Int) -> (claimed: Bool, bytes: [UInt8]) {
        var bytes = [UInt8](repeating: 0x5a, count: size)
        let claimed = bytes.withUnsafeMutableBytes { read(address: address, into: $0) }
        return (claimed, bytes)
    }

    func write(_ address: UInt64, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { write(address: address, from: $0) }
    }
}

@Suite struct BusTests {
    @Test func rejectsOverlaps() throws {
        let bus = Bus()
        try bus.insert(ProbeDevice(tag: 1), base: 0x100, length: 0x10)
        let overlapping: [(UInt64, UInt64)] = [
            (0x100, 0x10),  // same range
            (0x0f8, 0x09),  // ends on the first byte
            (0x10f, 0x01),  // the last byte
            (0x104, 0x04),  // inside
            (0x0f0, 0x40),  // around
        ]
        for (base, length) in overlapping {
            #expect(throws: Bus.Error.overlap(base: base, length: length)) {
                try bus.insert(ProbeDevice(tag: 2), base: base, length: length)
            }
        }
        // Adjacent ranges on both sides are fine.
        try bus.insert(ProbeDevice(tag: 3), base: 0x0f0, length: 0x10)
        try bus.insert(ProbeDevice(tag: 4), base: 0x110, length: 0x10)
    }

    @Test func rejectsEmptyAndWrappingRanges() throws {
        let bus = Bus()
        #expect(throws: Bus.Error.emptyRange(base: 0x10)) { try bus.insert(ProbeDevice(tag: 1), base: 0x10, length: 0) }
        #expect(throws: Bus.Error.overflow(base: .max, length: 2)) { try bus.insert(ProbeDevice(tag: 1), base: .max, length: 2) }
        // The very top of the address space is usable.
        let top = ProbeDevice(tag: 9)
        try bus.insert(top, base: .max - 1, length: 2)
        #expect(bus.read(.max, size: 1) == (true, [9]))
        #expect(bus.read(.max - 1, size: 2) == (true, [9, 9]))
        #expect(bus.read(.max, size: 2).claimed == false)
        #expect(top.accesses.map(\.offset) == [1, 0])
    }

    @Test func unclaimedAccesses() throws {
        let bus = Bus()
        let result = bus.read(0x3f8, size: 4)
        #expect(result == (false, [0xff, 0xff, 0xff, 0xff]))
        #expect(!bus.write(0x3f8, [1]))
        let device = ProbeDevice(tag: 7)
        try bus.insert(device, base: 0x60, length: 5)
        #expect(bus.read(0x65, size: 1) == (false, [0xff]))
        #expect(bus.read(0x5f, size: 1) == (false, [0xff]))
        #expect(device.accesses.isEmpty)
    }

    @Test func dispatchesWithOffsets() throws {
        let bus = Bus()
        let device = ProbeDevice(tag: 7)
        try bus.insert(device, base: 0x60, length: 5)
        #expect(bus.read(0x64, size: 1) == (true, [7]))
        #expect(bus.write(0x60, [0xaa, 0xbb]))
        #expect(bus.read(0x61, size: 4) == (true, [7, 7, 7, 7]))
        #expect(device.accesses == [
            .init(write: false, offset: 4, bytes: [7]),
            .init(write: true, offset: 0, bytes: [0xaa, 0xbb]),
            .init(write: false, offset: 1, bytes: [7, 7, 7, 7]),
        ])
    }

    @Test func accessesThatLeaveADeviceAreUnclaimed() throws {
        let bus = Bus()
        let low = ProbeDevice(tag: 1)
        let high = ProbeDevice(tag: 2)
        try bus.insert(low, base: 0x70, length: 2)
        try bus.insert(high, base: 0x72, length: 2)
        // Straddling the end of a device, or two adjacent devices: nobody gets it.
        #expect(bus.read(0x71, size: 2) == (false, [0xff, 0xff]))
        #expect(!bus.write(0x71, [1, 2]))
        #expect(bus.read(0x73, size: 4) == (false, [0xff, 0xff, 0xff, 0xff]))
        #expect(bus.read(0x70, size: 4).claimed == false)
        #expect(low.accesses.isEmpty && high.accesses.isEmpty)
        #expect(bus.read(0x72, size: 2) == (true, [2, 2]))
    }

    @Test func removeFreesTheRange() throws {
        let bus = Bus()
        try bus.insert(ProbeDevice(tag: 1), base: 0x80, length: 1)
        #expect(!bus.remove(base: 0x81))
        #expect(bus.remove(base: 0x80))
        #expect(bus.read(0x80, size: 1) == (false, [0xff]))
        try bus.insert(ProbeDevice(tag: 2), base: 0x80, length: 1)
        #expect(bus.read(0x80, size: 1) == (true, [2]))
    }

    @Test func manyDevicesInRandomOrder() throws {
        let bus = Bus()
        var devices: [(base: UInt64, device: ProbeDevice)] = (0..<64).map { i in
            (UInt64(i) * 0x10, ProbeDevice(tag: UInt8(i)))
        }
        var random = SplitMix64(seed: 42)
        devices.shuffle(using: &random)
        for (base, device) in devices { try bus.insert(device, base: base, length: 8) }
        for i in 0..<64 {
            let base = UInt64(i) * 0x10
            #expect(bus.read(base + 7, size: 1) == (true, [UInt8(i)]))
            #expect(bus.read(base + 8, size: 1).claimed == false)  // the gap after each device
        }
    }

    /// The legacy devices placed as the VMM will place them.
    @Test func legacyLayoutFitsTogether() throws {
        let bus = Bus()
        let machine = RecordingMachine()
        let line = RecordingLine()
        try bus.insert(Serial16550(interrupt: line, output: CapturingConsole()), base: 0x3f8, length: Serial16550.portRange)
        try bus.insert(I8042(interrupt: line, machine: machine), base: 0x60, length: I8042.portRange)
        try bus.insert(CMOSRTC(memorySize: 1 << 30), base: 0x70, length: CMOSRTC.portRange)
        try bus.insert(PostCodePort(), base: 0x80, length: 1)
        try bus.insert(DebugExit(machine: machine), base: 0xf4, length: 1)
        try bus.insert(FwCfg(ramSize: 1 << 30, cpuCount: 1), base: 0x510, length: FwCfg.portRange)
        try bus.insert(ACPIPowerManagement(machine: machine), base: 0x600, length: ACPIPowerManagement.portRange)
        #expect(bus.read(0x3fd, size: 1) == (true, [0x60]))  // COM1 LSR
        #expect(bus.write(0x64, [0xfe]))
        #expect(bus.write(0x600, [0x34]))
        #expect(bus.write(0xf4, [0x10]))
        #expect(machine.requests == [.reset, .powerOff, .debugExit(status: 33)])
    }
}

