import DeviceModel
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import LegacyDevices

private struct RTCFixture {
    let clock: FakeClock
    let rtc: CMOSRTC

    /// 2024-02-29 13:45:07 UTC (a Thursday), half a second in.
    init(_ time: UnixTime = UnixTime(seconds: 1_709_214_307, nanoseconds: 500_000_000), memory: UInt64 = 512 << 20) {
        let clock = FakeClock(time)
        self.clock = clock
        rtc = CMOSRTC(memorySize: memory, cpuCount: 2, now: { clock.now })
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
}

@Suite struct CMOSRTCTests {
    @Test func statusRegistersAtPowerOn() {
        let f = RTCFixture()
        #expect(f.read(0x0a) == 0x26)
        #expect(f.read(0x0b) == 0x02)  // 24-hour BCD
        #expect(f.read(0x0d) == 0x80)  // VRT
        #expect(f.rtc.readByte(0) == 0xff)  // index port is write-only
    }

    @Test func bcd24HourClock() {
        let f = RTCFixture()
        #expect(f.clockRegisters() == [0x07, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20])
    }

    @Test func binary24HourClock() {
        let f = RTCFixture()
        f.write(0x0b, 0x06)
        #expect(f.clockRegisters() == [7, 45, 13, 5, 29, 2, 24, 20])
    }

    /// (seconds of day, BCD hour, binary hour) in 12-hour mode; bit 7 = PM.
    static let twelveHourCases: [(Int64, UInt8, UInt8)] = [
        (0, 0x12, 12),
        (1 * 3600, 0x01, 1),
        (11 * 3600, 0x11, 11),
        (12 * 3600, 0x92, 0x8c),
        (13 * 3600, 0x81, 0x81),
        (23 * 3600, 0x91, 0x8b),
    ]

    @Test(arguments: twelveHourCases)
    func twelveHourClock(secondsOfDay: Int64, bcd: UInt8, binary: UInt8) {
        let midnight: Int64 = 1_709_164_800  // 2024-02-29 00:00:00
        let f = RTCFixture(UnixTime(seconds: midnight + secondsOfDay))
        f.write(0x0b, 0x00)
        #expect(f.read(0x04) == bcd)
        f.write(0x0b, 0x04)
        #expect(f.read(0x04) == binary)
    }

    static func realtimeSeconds() -> time_t {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return now.tv_sec
    }

    @Test func matchesTheHostWallClock() {
        let rtc = CMOSRTC(memorySize: 1 << 30)
        rtc.write(0, [0x0b, 0x06])  // binary, 24-hour
        for _ in 0..<5 {
            // CLOCK_REALTIME, as the RTC reads it: time() reads the coarse clock, which can lag a
            // tick behind and still show the last second when the RTC already shows the next.
            let before = Self.realtimeSeconds()
            let registers = [0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x32].map { (index: UInt8) -> Int in
                rtc.writeByte(0, index)
                return Int(rtc.readByte(1))
            }
            let after = Self.realtimeSeconds()
            guard before == after else { continue }  // a second boundary passed: try again
            var t = before
            var parts = tm()
            gmtime_r(&t, &parts)
            let expected = [
                Int(parts.tm_sec), Int(parts.tm_min), Int(parts.tm_hour), Int(parts.tm_mday),
                Int(parts.tm_mon) + 1, Int(parts.tm_year + 1900) % 100, Int(parts.tm_year + 1900) / 100,
            ]
            #expect(registers == expected)
            return
        }
        Issue.record("the second changed during every attempt")
    }

    @Test func updateInProgressWindow() {
        let f = RTCFixture(UnixTime(seconds: 1_709_214_307, nanoseconds: 999_800_000))
        #expect(f.read(0x0a) == 0xa6)
        f.clock.now = UnixTime(seconds: 1_709_214_307, nanoseconds: 999_755_000)
        #expect(f.read(0x0a) == 0x26)  // just before the 244 µs window
        f.clock.now = UnixTime(seconds: 1_709_214_307, nanoseconds: 999_756_000)
        #expect(f.read(0x0a) & 0x80 != 0)
        f.clock.now = UnixTime(seconds: 1_709_214_308, nanoseconds: 0)
        #expect(f.read(0x0a) == 0x26)
        // No update happens while SET is on or the divider is held in reset.
        f.clock.now = UnixTime(seconds: 1_709_214_308, nanoseconds: 999_900_000)
        #expect(f.read(0x0a) & 0x80 != 0)
        f.write(0x0b, 0x82)
        #expect(f.read(0x0a) & 0x80 == 0)
        f.write(0x0b, 0x02)
        f.write(0x0a, 0x76)
        #expect(f.read(0x0a) == 0x76)
        f.write(0x0a, 0xa6)  // UIP is read-only
        #expect(f.read(0x0a) == 0xa6)
    }

    @Test func registerCIsClearedByReading() {
        let f = RTCFixture()
        f.write(0x0a, 0x20)  // no periodic rate
        _ = f.read(0x0c)
        #expect(f.read(0x0c) == 0)
        f.clock.advance(nanoseconds: 1_000_000_000)
        #expect(f.read(0x0c) == 0x10)  // UF: an update happened
        #expect(f.read(0x0c) == 0)
        f.write(0x0b, 0x12)  // UIE
        f.clock.advance(nanoseconds: 1_000_000_000)
        #expect(f.read(0x0c) == 0x90)  // IRQF | UF
        #expect(f.read(0x0c) == 0)
        f.write(0x0a, 0x26)  // 1024 Hz periodic
        f.clock.advance(nanoseconds: 100_000)
        _ = f.read(0x0c)
        f.clock.advance(nanoseconds: 1_000_000)
        #expect(f.read(0x0c) == 0x40)  // PF, not enabled: no IRQF
        f.write(0x0c, 0xff)  // read-only
        #expect(f.read(0x0c) == 0)
    }

    @Test func settingTheClockWithSET() {
        let f = RTCFixture()
        f.write(0x0b, 0x82)  // SET, 24-hour BCD
        let frozen = f.clockRegisters()
        f.clock.advance(nanoseconds: 3_000_000_000)
        #expect(f.clockRegisters() == frozen)  // no updates while SET
        // 2030-01-01 00:00:00, a Tuesday
        for (index, value) in [(UInt8(0x00), UInt8(0x00)), (0x02, 0x00), (0x04, 0x00), (0x07, 0x01), (0x08, 0x01), (0x09, 0x30), (0x32, 0x20)] {
            f.write(index, value)
        }
        f.write(0x0b, 0x02)
        #expect(f.clockRegisters() == [0x00, 0x00, 0x00, 0x03, 0x01, 0x01, 0x30, 0x20])
        #expect(f.rtc.guestClockOffset == 1_893_456_000 - f.clock.now.seconds)
        f.clock.advance(nanoseconds: 65_000_000_000)
        #expect(f.clockRegisters() == [0x05, 0x01, 0x00, 0x03, 0x01, 0x01, 0x30, 0x20])
    }

    @Test func settingTheClockIn12HourBinary() {
        let f = RTCFixture()
        f.write(0x0b, 0x84)  // SET, binary, 12-hour
        f.write(0x04, 0x8b)  // 11 PM
        f.write(0x0b, 0x04)  // run, same format
        #expect(f.read(0x04) == 0x8b)
        f.write(0x0b, 0x06)  // the same time in the 24-hour view
        #expect(f.read(0x04) == 23)
        #expect(f.read(0x02) == 45)
    }

    @Test func directClockWriteTakesEffect() {
        let f = RTCFixture()
        f.write(0x02, 0x00)  // minutes = 00 while running
        #expect(f.clockRegisters() == [0x07, 0x00, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20])
    }

    @Test func invalidClockValuesAreIgnored() {
        let f = RTCFixture()
        let before = f.clockRegisters()
        f.write(0x0b, 0x82)
        f.write(0x08, 0x13)  // month 13
        f.write(0x0b, 0x02)
        #expect(f.clockRegisters() == before)
        f.write(0x07, 0x30)  // February 30th
        #expect(f.clockRegisters() == before)
        f.write(0x00, 0x5a)  // BCD nibble above 9
        #expect(f.clockRegisters() == before)
        #expect(f.rtc.guestClockOffset == 0)
    }

    @Test func indexNMIBitAndRAM() {
        let f = RTCFixture()
        f.rtc.writeByte(0, 0xc0)  // NMI disabled, index 0x40
        #expect(f.rtc.nmiDisabled)
        f.rtc.writeByte(1, 0x5a)
        f.rtc.writeByte(0, 0x40)
        #expect(!f.rtc.nmiDisabled)
        #expect(f.rtc.readByte(1) == 0x5a)
        #expect(f.read(0x14) == 0x02)  // equipment byte: FPU
        // A 2-byte write is an index write followed by a data write.
        f.rtc.write(0, [0x41, 0x77])
        #expect(f.read(0x41) == 0x77)
    }

    @Test func memorySizeBytesLikeQEMU() {
        let f = RTCFixture(memory: 512 << 20)
        #expect([0x15, 0x16].map { f.read($0) } == [0x80, 0x02])  // 640 KiB
        #expect([0x17, 0x18, 0x30, 0x31].map { f.read($0) } == [0xff, 0xff, 0xff, 0xff])  // capped at 65535 KiB
        #expect([0x34, 0x35].map { f.read($0) } == [0x00, 0x1f])  // (512 − 16) MiB / 64 KiB = 7936
        #expect([0x5b, 0x5c, 0x5d].map { f.read($0) } == [0, 0, 0])
        #expect(f.read(0x5f) == 1)  // CPUs − 1

        let big = RTCFixture(memory: 8 << 30)  // 3 GiB below 4 GiB, 5 GiB above
        #expect([0x34, 0x35].map { big.read($0) } == [0x00, 0xbf])  // 3056 MiB / 64 KiB = 48896
        #expect([0x5b, 0x5c, 0x5d].map { big.read($0) } == [0x00, 0x40, 0x01])  // 5 GiB / 64 KiB = 81920

        let small = RTCFixture(memory: 8 << 20)
        #expect([0x17, 0x18].map { small.read($0) } == [0x00, 0x1c])  // 7168 KiB
        #expect([0x34, 0x35].map { small.read($0) } == [0, 0])
    }
}

@Suite struct CivilTimeTests {
    @Test func roundTripsAndAgreesWithGlibc() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let seconds = Int64.random(in: -62_167_219_200...253_402_300_799, using: &generator)
            let civil = CivilTime(unixSeconds: seconds)
            #expect(civil.unixSeconds == seconds)
            var t = time_t(seconds)
            var parts = tm()
            gmtime_r(&t, &parts)
            #expect(civil.year == Int64(parts.tm_year) + 1900)
            #expect(civil.month == Int64(parts.tm_mon) + 1)
            #expect(civil.day == Int64(parts.tm_mday))
            #expect(civil.hour == Int64(parts.tm_hour))
            #expect(civil.weekday == Int64(parts.tm_wday))
        }
    }

    @Test func clampsOutOfRangeTimes() {
        #expect(CivilTime(unixSeconds: .max).year == 9999)
        #expect(CivilTime(unixSeconds: .min).year == 0)
    }
}
