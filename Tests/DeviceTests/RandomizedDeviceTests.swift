import DeviceModel
import Testing

@testable import LegacyDevices

/// SplitMix64: a small seeded generator so a failing run can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Throws random guest accesses at a device the way the bus would deliver them: an offset
/// inside the range and a size (1, 2, 4 or 8) that fits.
struct GuestFuzzer {
    var random: SplitMix64
    let range: UInt64

    mutating func access(_ device: any BusDevice, favouring hot: [UInt64] = []) {
        let sizes = [1, 1, 1, 1, 2, 4, 8].filter { UInt64($0) <= range }
        let size = sizes.randomElement(using: &random) ?? 1
        let maxOffset = range - UInt64(size)
        var offset = UInt64.random(in: 0...maxOffset, using: &random)
        if let pick = hot.randomElement(using: &random), Bool.random(using: &random), pick <= maxOffset {
            offset = pick
        }
        var bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }
        if Bool.random(using: &random) {
            bytes.withUnsafeMutableBytes { device.read(offset: offset, into: $0) }
        } else {
            bytes.withUnsafeBytes { device.write(offset: offset, from: $0) }
        }
    }
}

@Suite struct RandomizedDeviceTests {
    static let iterations = 40_000

    static func seed() -> UInt64 {
        var system = SystemRandomNumberGenerator()
        return system.next()
    }

    @Test func serialInvariantsHold() {
        let seed = Self.seed()
        let line = RecordingLine()
        let uart = Serial16550(interrupt: line, output: CapturingConsole(), inputCapacity: 64)
        var fuzz = GuestFuzzer(random: SplitMix64(seed: seed), range: 8)
        let validIDs: Set<UInt8> = [0x01, 0x00, 0x02, 0x04, 0x06, 0x0c]
        for step in 0..<Self.iterations {
            switch UInt8.random(in: 0..<20, using: &fuzz.random) {
            case 0: _ = uart.enqueueInput((0..<Int.random(in: 0...100, using: &fuzz.random)).map { UInt8(truncatingIfNeeded: $0) })
            case 1: _ = uart.sendBreak()
            case 2: _ = uart.hasRoomForInput()
            case 3 where step % 97 == 0: uart.reset()
            default: fuzz.access(uart)
            }
            let ok = uart.withState { s -> Bool in
                let iir = s.interruptIdentification
                guard iir & 0x30 == 0, validIDs.contains(iir & 0x0f) else { return false }
                guard (iir & 0xc0 == 0xc0) == s.fifosEnabled, iir & 0xc0 != 0x40, iir & 0xc0 != 0x80 else { return false }
                guard s.receiveFIFO.count <= s.receiveLimit, s.hostInput.count <= 64 else { return false }
                guard s.loopback || s.hostInput.isEmpty || s.receiveFIFO.count == s.receiveLimit else { return false }
                guard s.lineStatus & 0x60 == 0x60 else { return false }
                return s.line.isHigh == s.interruptAsserted && line.isHigh == s.interruptAsserted
            }
            if !ok {
                Issue.record("UART invariant broken at step \(step), seed \(seed)")
                return
            }
        }
    }

    @Test func i8042InvariantsHold() {
        let seed = Self.seed()
        let line = RecordingLine()
        let machine = RecordingMachine()
        let kbc = I8042(interrupt: line, machine: machine)
        var fuzz = GuestFuzzer(random: SplitMix64(seed: seed), range: I8042.portRange)
        for step in 0..<Self.iterations {
            switch UInt8.random(in: 0..<20, using: &fuzz.random) {
            case 0: _ = kbc.injectKeyboardBytes((0..<Int.random(in: 0...20, using: &fuzz.random)).map { UInt8(truncatingIfNeeded: $0) })
            case 1: _ = kbc.sendCtrlAltDel()
            case 2 where step % 97 == 0: kbc.reset()
            default: fuzz.access(kbc, favouring: [0, 4])
            }
            let ok = kbc.withState { s -> Bool in
                guard s.keyboardQueue.count <= I8042Controller.keyboardQueueCapacity, s.ram.count == 32 else { return false }
                guard s.status & 0x02 == 0, (s.status & 0x01 != 0) == (s.visibleOutput != nil) else { return false }
                return s.line.isHigh == s.interruptAsserted && line.isHigh == s.interruptAsserted
            }
            if !ok {
                Issue.record("i8042 invariant broken at step \(step), seed \(seed)")
                return
            }
        }
        #expect(machine.requests.allSatisfy { $0 == .reset })
    }

    @Test func cmosInvariantsHold() {
        let seed = Self.seed()
        let clock = FakeClock(UnixTime(seconds: 1_700_000_000))
        let rtc = CMOSRTC(memorySize: 1 << 30, now: { clock.now })
        var fuzz = GuestFuzzer(random: SplitMix64(seed: seed), range: CMOSRTC.portRange)
        for step in 0..<Self.iterations {
            if UInt8.random(in: 0..<10, using: &fuzz.random) == 0 {
                clock.advance(nanoseconds: Int64.random(in: 0...3_000_000_000, using: &fuzz.random))
            }
            fuzz.access(rtc)
            let ok = rtc.withState { s -> Bool in
                guard s.ram.count == 128, s.index < 128 else { return false }
                // Whatever the guest did, the guest clock stays within what the RTC can show.
                let guest = s.guestTime(host: clock.now).seconds
                return (-62_167_219_200...253_402_300_799).contains(guest)
            }
            if !ok {
                Issue.record("CMOS invariant broken at step \(step), seed \(seed)")
                return
            }
        }
    }

    @Test func fwCfgNeverTraps() throws {
        let seed = Self.seed()
        let cfg = FwCfg(ramSize: 1 << 30, cpuCount: 2)
        try cfg.addFile(name: "etc/a", data: [1, 2, 3])
        var fuzz = GuestFuzzer(random: SplitMix64(seed: seed), range: FwCfg.portRange)
        var reads = 0
        for _ in 0..<Self.iterations {
            if Bool.random(using: &fuzz.random) {
                // Favour real selectors so item reads run past their ends.
                let key = [0x0000, 0x0001, 0x0019, 0x0020, 0x4019, 0x8000, 0xffff].randomElement(using: &fuzz.random) ?? 0
                cfg.select(UInt16(key))
            }
            fuzz.access(cfg)
            if cfg.readByte(1) != 0 { reads += 1 }
        }
        #expect(reads > 0)
    }

    @Test func smallDevicesNeverTrap() {
        let seed = Self.seed()
        let machine = RecordingMachine()
        let devices: [(any BusDevice, UInt64)] = [
            (DebugExit(machine: machine), 4),
            (PostCodePort(), 1),
            (ACPIPowerManagement(machine: machine), ACPIPowerManagement.portRange),
            (PCIResetControl(machine: machine), 1),
        ]
        var random = SplitMix64(seed: seed)
        for (device, range) in devices {
            var fuzz = GuestFuzzer(random: random, range: range)
            for _ in 0..<(Self.iterations / 4) { fuzz.access(device) }
            random = fuzz.random
        }
        for event in machine.requests {
            switch event {
            case .powerOff, .reset: continue
            case .debugExit(let status): #expect(status & 1 == 1)
            }
        }
    }

    /// Several "vCPUs" and a host input thread at once: no trap, no deadlock, invariants hold.
    @Test func concurrentSerialAccess() async {
        let line = RecordingLine()
        let uart = Serial16550(interrupt: line, output: CapturingConsole(), inputCapacity: 128)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    var fuzz = GuestFuzzer(random: SplitMix64(seed: UInt64(worker) &* 0x1234_5678_9abc), range: 8)
                    for _ in 0..<5_000 { fuzz.access(uart) }
                }
            }
            group.addTask {
                for i in 0..<5_000 { _ = uart.enqueueInput([UInt8(truncatingIfNeeded: i)]) }
            }
        }
        let consistent = uart.withState { s in
            s.line.isHigh == s.interruptAsserted && line.isHigh == s.interruptAsserted && s.hostInput.count <= 128
        }
        #expect(consistent)
    }
}
