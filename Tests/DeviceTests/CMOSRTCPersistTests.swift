import DeviceModel
import Testing

@testable import LegacyDevices

private struct RTCBench {
    let clock: FakeClock
    let rtc: CMOSRTC

    init(clock: FakeClock) {
        self.clock = clock
        rtc = CMOSRTC(memorySize: 512 << 20, cpuCount: 2, now: { clock.now })
    }

    init(at time: UnixTime) {
        self.init(clock: FakeClock(time))
    }

    func read(_ index: UInt8) -> UInt8 {
        rtc.writeByte(0, index)
        return rtc.readByte(1)
    }

    func write(_ index: UInt8, _ value: UInt8) {
        rtc.writeByte(0, index)
        rtc.writeByte(1, value)
    }

    /// seconds, minutes, hours, weekday, day, month, year, century
    func clockRegisters() -> [UInt8] {
        [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32].map { read($0) }
    }

    /// Every CMOS byte through the ports, register C last (reading it clears it).
    func everyRegister() -> [UInt8] {
        (0..<128).filter { $0 != 0x0c }.map { read(UInt8($0)) } + [read(0x0c)]
    }

    /// Sets the guest's RTC the way Linux's mc146818_set_time does: SET, write, clear SET.
    func setTime(bcd registers: [UInt8: UInt8]) {
        let b = read(0x0b)
        write(0x0b, b | 0x80)
        for (index, value) in registers { write(index, value) }
        write(0x0b, b & ~0x80)
    }
}

/// 2023-11-14 22:13:20 UTC, a quarter second in.
private let sourceTime = UnixTime(seconds: 1_700_000_000, nanoseconds: 250_000_000)

/// The guest sets its RTC to 2024-02-29 12:34:56 (local time, say), keeps NVRAM bytes, turns on
/// the periodic and update interrupt enables, reads register C once and leaves the index at 0x0C.
private func driveIntoBusyState(_ b: RTCBench) {
    b.setTime(bcd: [0x00: 0x56, 0x02: 0x34, 0x04: 0x12, 0x07: 0x29, 0x08: 0x02, 0x09: 0x24, 0x32: 0x20])
    b.write(0x0a, 0x2f)  // 2 Hz periodic rate
    b.write(0x0b, 0x52)  // PIE | UIE | 24-hour, BCD
    b.write(0x40, 0xab)
    b.write(0x7f, 0xcd)
    b.write(0x15, 0x00)  // the guest may overwrite the memory-size bytes too
    b.clock.advance(nanoseconds: 300_000_000)
    _ = b.read(0x0c)
    b.clock.advance(nanoseconds: 600_000_000)  // a periodic tick and a second boundary pass
    b.rtc.writeByte(0, 0x8c)  // NMI disabled, register C selected
}

@Suite struct CMOSRTCPersistTests {
    @Test func savedStateHoldsTheImageAndTheOffset() throws {
        let b = RTCBench(at: sourceTime)
        driveIntoBusyState(b)
        let s = b.rtc.saveState()
        try s.validate()
        #expect(s.cmos.count == 128)
        #expect(s.cmos[0x0a] == 0x2f)
        #expect(s.cmos[0x0b] == 0x52)
        #expect(s.cmos[0x40] == 0xab && s.cmos[0x7f] == 0xcd && s.cmos[0x15] == 0)
        #expect(s.selectedIndex == 0x0c)
        #expect(s.nmiDisabled)
        // 2024-02-29 12:34:56 is 1_709_210_096; the host was at 1_700_000_000 when it was set.
        #expect(s.guestClockOffsetSeconds == 1_709_210_096 - 1_700_000_000)
        #expect(s.flagsCheckedAtSeconds == 1_709_210_096)
        #expect(s.flagsCheckedAtNanoseconds == 550_000_000)
        #expect(s.pendingFlags == 0)
    }

    @Test func restoredRTCContinuesLikeTheOriginal() throws {
        let clock = FakeClock(sourceTime)
        let original = RTCBench(clock: clock)
        driveIntoBusyState(original)
        let saved = original.rtc.saveState()
        let restored = RTCBench(clock: clock)  // a fresh device on the same host clock
        try restored.rtc.restoreState(saved)
        #expect(restored.rtc.saveState() == saved)
        #expect(restored.rtc.nmiDisabled)
        // The data port reads register C, selected before the snapshot: PF and UF with IRQF.
        let c = [original.rtc.readByte(1), restored.rtc.readByte(1)]
        #expect(c[0] == 0xd0 && c[1] == 0xd0)
        #expect(original.everyRegister() == restored.everyRegister())
        for step in 0..<50 {
            clock.advance(nanoseconds: 97_000_000 * Int64(step % 7 + 1))
            let index = UInt8(step * 37 % 128)
            #expect(original.read(index) == restored.read(index))
            #expect(original.read(0x0a) == restored.read(0x0a))  // UIP at the same moments
        }
        #expect(original.rtc.saveState() == restored.rtc.saveState())
    }

    /// The snapshot is restored three days and ten seconds later, on a host whose clock reads
    /// that: the guest's RTC shows the time it set plus the time that passed.
    @Test func offsetSurvivesAMigrationToAnotherHostClock() throws {
        let source = RTCBench(at: sourceTime)
        driveIntoBusyState(source)
        let saved = source.rtc.saveState()
        let later = UnixTime(seconds: sourceTime.seconds + 3 * 86_400 + 10, nanoseconds: 100_000_000)
        let destination = RTCBench(at: later)
        try destination.rtc.restoreState(saved)
        #expect(destination.rtc.guestClockOffset == saved.guestClockOffsetSeconds)
        // 2024-02-29 12:34:56 + 3 days + 10 s = 2024-03-03 12:35:06, a Sunday (weekday 1).
        #expect(destination.clockRegisters() == [0x06, 0x35, 0x12, 0x01, 0x03, 0x03, 0x24, 0x20])
        // The RTC did not stop while the snapshot waited: register C reports the update and
        // periodic events of the gap, once.
        #expect(destination.read(0x0c) == 0xd0)
        #expect(destination.read(0x0c) == 0x00)
        // A host clock that is behind the snapshot's flags time does not trap or invent events.
        // (A day behind the source host: 2024-02-28 12:34:56, a Wednesday.)
        let behind = RTCBench(at: UnixTime(seconds: sourceTime.seconds - 86_400))
        try behind.rtc.restoreState(saved)
        #expect(behind.read(0x0c) == 0x00)
        #expect(behind.clockRegisters() == [0x56, 0x34, 0x12, 0x04, 0x28, 0x02, 0x24, 0x20])
    }

    @Test func clockBeingSetSurvivesAndCommitsAgainstTheNewHostClock() throws {
        let source = RTCBench(at: sourceTime)
        source.write(0x0b, 0x82)  // SET: the clock registers freeze
        source.write(0x00, 0x00)
        source.write(0x02, 0x00)
        source.write(0x04, 0x08)  // 08:00:00, date as frozen (2023-11-14)
        let saved = source.rtc.saveState()
        let destination = RTCBench(at: UnixTime(seconds: sourceTime.seconds + 5_000))
        try destination.rtc.restoreState(saved)
        #expect(destination.clockRegisters() == source.clockRegisters())  // still frozen
        destination.write(0x0b, 0x02)  // the guest finishes: the clock starts from what it wrote
        #expect(destination.clockRegisters() == [0x00, 0x00, 0x08, 0x03, 0x14, 0x11, 0x23, 0x20])
        destination.clock.advance(nanoseconds: 61_000_000_000)
        #expect(destination.clockRegisters() == [0x01, 0x01, 0x08, 0x03, 0x14, 0x11, 0x23, 0x20])
    }

    static let corruptions: [Corruption<CMOSRTCState>] = [
        Corruption("cmos", "127 bytes") { $0.cmos.removeLast() },
        Corruption("cmos", "129 bytes") { $0.cmos.append(0) },
        Corruption("cmos[0x0a]", "UIP stored") { $0.cmos[0x0a] |= 0x80 },
        Corruption("cmos[0x0b]", "UIE with SET") { $0.cmos[0x0b] = 0x92 },
        Corruption("cmos[0x0c]", "register C in the image") { $0.cmos[0x0c] = 0x10 },
        Corruption("cmos[0x0d]", "register D without VRT") { $0.cmos[0x0d] = 0x00 },
        Corruption("selectedIndex", "0x80") { $0.selectedIndex = 0x80 },
        Corruption("guestClockOffsetSeconds", "past year 9999") { $0.guestClockOffsetSeconds = 400_000_000_000 },
        Corruption("guestClockOffsetSeconds", "Int64.min") { $0.guestClockOffsetSeconds = .min },
        Corruption("flagsCheckedAtNanoseconds", "a whole second") { $0.flagsCheckedAtNanoseconds = 1_000_000_000 },
        Corruption("flagsCheckedAtNanoseconds", "negative") { $0.flagsCheckedAtNanoseconds = -1 },
        Corruption("pendingFlags", "AF") { $0.pendingFlags = 0x20 },
        Corruption("pendingFlags", "IRQF") { $0.pendingFlags = 0x90 },
    ]

    @Test(arguments: Self.corruptions)
    func corruptStateIsRefused(_ corruption: Corruption<CMOSRTCState>) {
        let source = RTCBench(at: sourceTime)
        driveIntoBusyState(source)
        let bad = corruption.applied(to: source.rtc.saveState())
        expectInvalid(bad, component: "cmos-rtc", field: corruption.field)
        let target = RTCBench(at: sourceTime)
        target.setTime(bcd: [0x04: 0x07])
        target.write(0x50, 0x42)
        expectRestoreRefused(target.rtc, bad, component: "cmos-rtc", field: corruption.field)
        #expect(target.read(0x50) == 0x42)
        #expect(target.read(0x04) == 0x07)
    }

    @Test(arguments: [UInt64(0x0c05_0001), 0x0c05_0002, 0x0c05_0003])
    func randomHistoryThenLockstep(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let clock = FakeClock(sourceTime)
        let original = RTCBench(clock: clock)
        func step(_ benches: [RTCBench], _ random: inout SplitMix64) -> [[UInt8]] {
            if UInt8.random(in: 0..<8, using: &random) == 0 {
                clock.advance(nanoseconds: Int64.random(in: 0...1_500_000_000, using: &random))
            }
            // Mostly well-formed index/data pairs so the clock really gets set now and then.
            var access = GuestAccess.random(range: CMOSRTC.portRange, favouring: [1], using: &random)
            if Bool.random(using: &random) {
                let index = [0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x32, 0x40].randomElement(using: &random) ?? 0
                access = GuestAccess(offset: 0, bytes: [UInt8(index)], isWrite: true)
            }
            return benches.map { access.perform(on: $0.rtc) }
        }
        for _ in 0..<3_000 { _ = step([original], &random) }
        let saved = original.rtc.saveState()
        try saved.validate()
        let restored = RTCBench(clock: clock)
        try restored.rtc.restoreState(saved)
        #expect(restored.rtc.saveState() == saved)
        for i in 0..<3_000 {
            let results = step([original, restored], &random)
            if results[0] != results[1] {
                Issue.record("step \(i) after restore: original \(results[0]), restored \(results[1])")
                return
            }
        }
        #expect(original.everyRegister() == restored.everyRegister())
        #expect(original.rtc.saveState() == restored.rtc.saveState())
    }
}
