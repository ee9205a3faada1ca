/// CMOS RAM and MC146818 real-time-clock registers.
///
/// Pure state, no locking: `CMOSRTC` keeps one inside a `Mutex` and passes the host's wall clock
/// to every access. The clock is not stored as ticking registers: time registers are computed
/// from the host clock (UTC) plus a guest-set offset in whole seconds when they are read.
struct CMOSState: Sendable {
    enum Register {
        static let seconds: UInt8 = 0x00
        static let minutes: UInt8 = 0x02
        static let hours: UInt8 = 0x04
        static let weekday: UInt8 = 0x06
        static let dayOfMonth: UInt8 = 0x07
        static let month: UInt8 = 0x08
        static let year: UInt8 = 0x09
        static let a: UInt8 = 0x0a
        static let b: UInt8 = 0x0b
        static let c: UInt8 = 0x0c
        static let d: UInt8 = 0x0d
        static let equipment: UInt8 = 0x14
        static let century: UInt8 = 0x32
        static let clock: [UInt8] = [seconds, minutes, hours, weekday, dayOfMonth, month, year, century]
    }

    enum RegA {
        static let updateInProgress: UInt8 = 0x80
        static let dividerMask: UInt8 = 0x70
        /// DV = 010: 32.768 kHz time base, clock running.
        static let dividerNormal: UInt8 = 0x20
        static let rateMask: UInt8 = 0x0f
        /// Power-on value a PC BIOS leaves: normal divider, 1024 Hz periodic rate.
        static let initial: UInt8 = 0x26
    }

    enum RegB {
        static let set: UInt8 = 0x80
        static let periodicInterruptEnable: UInt8 = 0x40
        static let alarmInterruptEnable: UInt8 = 0x20
        static let updateInterruptEnable: UInt8 = 0x10
        static let binary: UInt8 = 0x04
        static let hour24: UInt8 = 0x02
        /// Power-on value a PC BIOS leaves: 24-hour, BCD, no interrupts.
        static let initial: UInt8 = hour24
    }

    enum RegC {
        static let interruptRequest: UInt8 = 0x80
        static let periodic: UInt8 = 0x40
        static let alarm: UInt8 = 0x20
        static let update: UInt8 = 0x10
    }

    /// Valid RAM and Time: the battery is fine.
    static let regD: UInt8 = 0x80
    /// UIP is set for the last 244 µs (8 cycles of the 32.768 kHz base) before each update, as
    /// on an MC146818 (QEMU's UIP_HOLD_LENGTH).
    static let updateInProgressNanoseconds: Int64 = 8 * 1_000_000_000 / 32_768

    var ram = [UInt8](repeating: 0, count: 128)
    var index: UInt8 = 0
    /// Bit 7 of the last index write (NMI disable on a PC); recorded, no effect.
    var nmiDisabled = false
    /// Guest clock minus host clock, in seconds.
    var offsetSeconds: Int64 = 0
    /// Guest time when register C was last read; updates and periodic ticks after it set flags.
    var lastFlagCheck: UnixTime
    /// Flags latched and not yet read.
    var latchedFlags: UInt8 = 0

    init(now: UnixTime) {
        lastFlagCheck = UnixTime(seconds: now.seconds, nanoseconds: min(max(now.nanoseconds, 0), 999_999_999))
        ram[Int(Register.a)] = RegA.initial
        ram[Int(Register.b)] = RegB.initial
        ram[Int(Register.d)] = Self.regD
        ram[Int(Register.equipment)] = 0x02  // math coprocessor present
    }

    var regB: UInt8 { ram[Int(Register.b)] }
    var setMode: Bool { regB & RegB.set != 0 }
    var binaryMode: Bool { regB & RegB.binary != 0 }
    var mode24: Bool { regB & RegB.hour24 != 0 }
    var clockRunning: Bool { ram[Int(Register.a)] & RegA.dividerMask == RegA.dividerNormal }

    func guestTime(host: UnixTime) -> UnixTime {
        let (seconds, overflow) = host.seconds.addingReportingOverflow(offsetSeconds)
        let nanoseconds = min(max(host.nanoseconds, 0), 999_999_999)
        return UnixTime(seconds: overflow ? host.seconds : seconds, nanoseconds: nanoseconds)
    }

    // MARK: Guest access

    mutating func writeIndex(_ value: UInt8) {
        index = value & 0x7f
        nmiDisabled = value & 0x80 != 0
    }

    mutating func readData(host: UnixTime) -> UInt8 {
        let register = index
        if Register.clock.contains(register) && !setMode {
            return encodedClock(at: guestTime(host: host))[register] ?? 0
        }
        switch register {
        case Register.a:
            var value = ram[Int(Register.a)] & ~RegA.updateInProgress
            if updateInProgress(host: host) { value |= RegA.updateInProgress }
            return value
        case Register.c:
            return takeFlags(host: host)
        case Register.d:
            return Self.regD
        default:
            return ram[Int(register & 0x7f)]
        }
    }

    mutating func writeData(_ value: UInt8, host: UnixTime) {
        let register = index
        if Register.clock.contains(register) {
            if setMode {
                ram[Int(register)] = value
            } else {
                // A clock write while the clock runs takes effect at once (as QEMU does).
                storeClock(encodedClock(at: guestTime(host: host)))
                ram[Int(register)] = value
                commitClock(host: host)
            }
            return
        }
        switch register {
        case Register.a:
            ram[Int(Register.a)] = value & ~RegA.updateInProgress
        case Register.b:
            writeRegB(value, host: host)
        case Register.c, Register.d:
            break  // read-only
        default:
            ram[Int(register & 0x7f)] = value
        }
    }

    private mutating func writeRegB(_ value: UInt8, host: UnixTime) {
        let wasSet = setMode
        var newValue = value
        if newValue & RegB.set != 0 { newValue &= ~RegB.updateInterruptEnable }  // SET clears UIE
        if !wasSet && newValue & RegB.set != 0 {
            // Freeze the clock registers in the new format so the guest can rewrite them.
            ram[Int(Register.b)] = newValue
            storeClock(encodedClock(at: guestTime(host: host)))
            return
        }
        ram[Int(Register.b)] = newValue
        if wasSet && newValue & RegB.set == 0 { commitClock(host: host) }
    }

    // MARK: Clock registers

    /// Whether UIP reads 1: within 244 µs before a second boundary, clock running, SET clear.
    func updateInProgress(host: UnixTime) -> Bool {
        guard !setMode, clockRunning else { return false }
        return guestTime(host: host).nanoseconds >= 1_000_000_000 - Self.updateInProgressNanoseconds
    }

    private func encode(_ value: Int64) -> UInt8 {
        let clamped = UInt8(clamping: value)
        return binaryMode ? clamped : ((clamped / 10) % 10) << 4 | clamped % 10
    }

    /// The clock registers for guest time `time` in the current format (reg B DM and 24/12).
    func encodedClock(at time: UnixTime) -> [UInt8: UInt8] {
        let civil = CivilTime(unixSeconds: time.seconds)
        var hour = encode(civil.hour)
        if !mode24 {
            let hour12 = civil.hour % 12 == 0 ? 12 : civil.hour % 12
            hour = encode(hour12) | (civil.hour >= 12 ? 0x80 : 0)
        }
        return [
            Register.seconds: encode(civil.second),
            Register.minutes: encode(civil.minute),
            Register.hours: hour,
            Register.weekday: encode(civil.weekday + 1),
            Register.dayOfMonth: encode(civil.day),
            Register.month: encode(civil.month),
            Register.year: encode(civil.year % 100),
            Register.century: encode(civil.year / 100),
        ]
    }

    private mutating func storeClock(_ registers: [UInt8: UInt8]) {
        for (register, value) in registers { ram[Int(register)] = value }
    }

    /// A register value in the current format, or nil if it is not a valid number.
    private func decode(_ byte: UInt8) -> Int64? {
        if binaryMode { return Int64(byte) }
        let high = byte >> 4
        let low = byte & 0x0f
        guard high <= 9, low <= 9 else { return nil }
        return Int64(high) * 10 + Int64(low)
    }

    /// The calendar time the clock registers in RAM hold, or nil if any is out of range.
    func decodedClock() -> CivilTime? {
        let byte = { (register: UInt8) in self.ram[Int(register)] }
        guard let second = decode(byte(Register.seconds)), second < 60,
            let minute = decode(byte(Register.minutes)), minute < 60,
            let day = decode(byte(Register.dayOfMonth)),
            let month = decode(byte(Register.month)), (1...12).contains(month),
            let yearInCentury = decode(byte(Register.year)), yearInCentury < 100,
            let century = decode(byte(Register.century)), century < 100
        else { return nil }
        var hour: Int64
        if mode24 {
            guard let value = decode(byte(Register.hours)), value < 24 else { return nil }
            hour = value
        } else {
            let raw = byte(Register.hours)
            guard let value = decode(raw & 0x7f), (1...12).contains(value) else { return nil }
            hour = value % 12 + (raw & 0x80 != 0 ? 12 : 0)
        }
        let year = century * 100 + yearInCentury
        guard day >= 1, day <= CivilTime.daysInMonth(year: year, month: month) else { return nil }
        return CivilTime(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }

    /// Makes the clock registers in RAM the guest's time. Invalid register contents (a BCD
    /// nibble above 9, February 30th, ...) leave the clock as it was. The weekday register is
    /// not checked: the weekday is always derived from the date.
    private mutating func commitClock(host: UnixTime) {
        guard let civil = decodedClock(), let seconds = civil.unixSeconds else { return }
        let (offset, overflow) = seconds.subtractingReportingOverflow(host.seconds)
        guard !overflow else { return }
        offsetSeconds = offset
        lastFlagCheck = guestTime(host: host)
    }

    // MARK: Register C

    /// Latches the update and periodic flags for the time since the last read, returns them
    /// with IRQF and clears them. Alarm matching is not emulated (AF stays 0).
    private mutating func takeFlags(host: UnixTime) -> UInt8 {
        let now = guestTime(host: host)
        let last = lastFlagCheck
        if !setMode && clockRunning {
            if now.seconds > last.seconds { latchedFlags |= RegC.update }
            if periodicTickBetween(last, now) { latchedFlags |= RegC.periodic }
        }
        lastFlagCheck = now
        var value = latchedFlags
        if value & regB & (RegC.periodic | RegC.alarm | RegC.update) != 0 { value |= RegC.interruptRequest }
        latchedFlags = 0
        return value
    }

    /// Whether a periodic-interrupt boundary (rate from reg A bits 0–3) lies in (from, to].
    private func periodicTickBetween(_ from: UnixTime, _ to: UnixTime) -> Bool {
        let rate = Int(ram[Int(Register.a)] & RegA.rateMask)
        guard rate != 0 else { return false }
        // Period in 32.768 kHz cycles: rates 1 and 2 repeat rates 8 and 9 (data sheet table 5).
        let periodCycles: Int64 = rate < 3 ? Int64(1) << (rate + 6) : Int64(1) << (rate - 1)
        if to.seconds > from.seconds { return true }  // a second boundary is a tick boundary
        guard to.seconds == from.seconds else { return false }
        let fromCycle = from.nanoseconds * 32_768 / 1_000_000_000
        let toCycle = to.nanoseconds * 32_768 / 1_000_000_000
        return toCycle / periodCycles > fromCycle / periodCycles
    }

    // MARK: Memory size

    /// Fills the memory-size bytes as QEMU's pc machine does (pc_cmos_init): base memory in KiB
    /// (0x15–0x16, at most 640), extended memory above 1 MiB in KiB (0x17–0x18 and 0x30–0x31, at
    /// most 65535), memory between 16 MiB and 4 GiB in 64 KiB units (0x34–0x35, at most 65535)
    /// and memory above 4 GiB in 64 KiB units (0x5B–0x5D, 24 bits), plus CPUs − 1 at 0x5F.
    mutating func fillMemorySize(belowFourGiB below: UInt64, aboveFourGiB above: UInt64, cpuCount: Int) {
        let kib: UInt64 = 1024
        let mib = kib * kib
        let base = min(below / kib, 640)
        let extended = below > mib ? min((below - mib) / kib, 65_535) : 0
        let high16 = below > 16 * mib ? min((below - 16 * mib) / (64 * kib), 65_535) : 0
        let aboveUnits = min(above / (64 * kib), 0xff_ffff)
        storeLittleEndian(base, at: 0x15, bytes: 2)
        storeLittleEndian(extended, at: 0x17, bytes: 2)
        storeLittleEndian(extended, at: 0x30, bytes: 2)
        storeLittleEndian(high16, at: 0x34, bytes: 2)
        storeLittleEndian(aboveUnits, at: 0x5b, bytes: 3)
        ram[0x5f] = UInt8(clamping: max(cpuCount, 1) - 1)
    }

    private mutating func storeLittleEndian(_ value: UInt64, at address: Int, bytes: Int) {
        for i in 0..<bytes {
            ram[address + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
        }
    }
}
