import DeviceModel

/// The saved state of a `CMOSRTC`: the CMOS image, the index register, and the guest's clock as
/// an offset from the host's UTC wall clock.
///
/// How the guest's time continues: the RTC is never stored as ticking registers. The guest
/// reads host wall clock (CLOCK_REALTIME, UTC) + `guestClockOffsetSeconds`, before the snapshot
/// and after the restore alike, on whatever host restores it. A guest that set its RTC to
/// another time (a local-time RTC, a test that moved the clock) keeps that difference; time
/// that passes while the VM is paused, while the snapshot sits in a file or while a migration
/// is in flight passes for the RTC too: the RTC of a paused VM does not stop, as with QEMU's
/// default `-rtc base=utc,clock=host`. The offset is in whole seconds, so the guest's seconds
/// roll over when the host's UTC seconds do, and a host whose clock is wrong makes the guest's
/// RTC wrong by as much. The update-ended and periodic flags of register C are computed from
/// guest time since `flagsCheckedAtSeconds`: after a pause the next read of register C
/// reports both, as a real RTC that kept running would.
///
/// The memory-size bytes the constructor fills in are ordinary CMOS bytes the guest may have
/// rewritten: the image restored wins over them.
public struct CMOSRTCState: ValidatedState {
    /// The 128 bytes of CMOS as the device stores them. 0x00–0x09 and 0x32 (century) hold the
    /// clock registers as last frozen: they are what the guest reads only while register B's SET
    /// bit is on, otherwise the clock is computed from the host clock and the offset (the alarm
    /// bytes 0x01, 0x03, 0x05 are plain RAM). 0x0A is register A with UIP (bit 7) clear, since
    /// UIP is computed; 0x0B is register B, whose UIE (bit 4) is clear while SET (bit 7) is on;
    /// 0x0C is 0 (register C's flags are `pendingFlags`); 0x0D is 0x80 (register D: VRT).
    public var cmos: [UInt8]
    /// The CMOS index the index port (0x70) selects, 0–127.
    public var selectedIndex: UInt8
    /// Bit 7 of the last index-port write (NMI disable on a PC); recorded, no effect.
    public var nmiDisabled: Bool
    /// The guest's RTC minus the host's UTC wall clock, in seconds (0 until the guest sets the
    /// time). At most the span of years 0–9999 either way.
    public var guestClockOffsetSeconds: Int64
    /// Guest time (seconds since the Unix epoch as the guest's RTC counts them) up to which
    /// update and periodic events are already in `pendingFlags`: when register C was last read
    /// or the clock last set.
    public var flagsCheckedAtSeconds: Int64
    /// Nanoseconds within `flagsCheckedAtSeconds`, 0–999 999 999.
    public var flagsCheckedAtNanoseconds: Int64
    /// Register C flags latched and not yet read: PF (bit 6) and UF (bit 4). AF is not emulated
    /// and IRQF (bit 7) is computed when register C is read.
    public var pendingFlags: UInt8

    public init(
        cmos: [UInt8], selectedIndex: UInt8, nmiDisabled: Bool, guestClockOffsetSeconds: Int64,
        flagsCheckedAtSeconds: Int64, flagsCheckedAtNanoseconds: Int64, pendingFlags: UInt8
    ) {
        self.cmos = cmos
        self.selectedIndex = selectedIndex
        self.nmiDisabled = nmiDisabled
        self.guestClockOffsetSeconds = guestClockOffsetSeconds
        self.flagsCheckedAtSeconds = flagsCheckedAtSeconds
        self.flagsCheckedAtNanoseconds = flagsCheckedAtNanoseconds
        self.pendingFlags = pendingFlags
    }

    static let component = "cmos-rtc"
    static let size = 128
    /// 9999-12-31 23:59:59 minus 0000-01-01 00:00:00 in seconds: the farthest a guest's RTC
    /// (years 0–9999) can be from any host time in that range.
    static let maximumOffset: Int64 = 253_402_300_799 - -62_167_219_200

    public func validate() throws(DeviceStateError) {
        let c = Self.component
        typealias Register = CMOSState.Register
        try DeviceStateError.require(cmos.count == Self.size, c, "cmos has \(cmos.count) bytes, not \(Self.size)")
        try DeviceStateError.require(selectedIndex < 0x80, c, "selectedIndex \(StateText.hex(selectedIndex)) is past 0x7f")
        let a = cmos[Int(Register.a)]
        try DeviceStateError.require(
            a & CMOSState.RegA.updateInProgress == 0, c, "cmos[0x0a] (register A) \(StateText.hex(a)) has UIP stored")
        let b = cmos[Int(Register.b)]
        try DeviceStateError.require(
            b & CMOSState.RegB.set == 0 || b & CMOSState.RegB.updateInterruptEnable == 0, c,
            "cmos[0x0b] (register B) \(StateText.hex(b)) has UIE with SET")
        let registerC = cmos[Int(Register.c)]
        try DeviceStateError.require(
            registerC == 0, c, "cmos[0x0c] (register C) is \(StateText.hex(registerC)), not 0: its flags are pendingFlags")
        let d = cmos[Int(Register.d)]
        try DeviceStateError.require(d == CMOSState.regD, c, "cmos[0x0d] (register D) is \(StateText.hex(d)), not 0x80")
        try DeviceStateError.require(
            (-Self.maximumOffset...Self.maximumOffset).contains(guestClockOffsetSeconds), c,
            "guestClockOffsetSeconds \(guestClockOffsetSeconds) is beyond the span of years 0–9999")
        try DeviceStateError.require(
            (0..<1_000_000_000).contains(flagsCheckedAtNanoseconds), c,
            "flagsCheckedAtNanoseconds \(flagsCheckedAtNanoseconds) is not within a second")
        let latchable = CMOSState.RegC.periodic | CMOSState.RegC.update
        try DeviceStateError.require(
            pendingFlags & ~latchable == 0, c, "pendingFlags \(StateText.hex(pendingFlags)) has bits other than PF and UF")
    }
}

extension CMOSState {
    /// The state `saved` describes (already validated).
    init(restoring saved: CMOSRTCState) {
        self.init(now: UnixTime(seconds: saved.flagsCheckedAtSeconds, nanoseconds: saved.flagsCheckedAtNanoseconds))
        ram = saved.cmos
        index = saved.selectedIndex
        nmiDisabled = saved.nmiDisabled
        offsetSeconds = saved.guestClockOffsetSeconds
        latchedFlags = saved.pendingFlags
    }

    var saved: CMOSRTCState {
        CMOSRTCState(
            cmos: ram, selectedIndex: index, nmiDisabled: nmiDisabled, guestClockOffsetSeconds: offsetSeconds,
            flagsCheckedAtSeconds: lastFlagCheck.seconds, flagsCheckedAtNanoseconds: lastFlagCheck.nanoseconds,
            pendingFlags: latchedFlags)
    }
}

extension CMOSRTC: StatePersistable {
    public func saveState() -> CMOSRTCState {
        state.withLock { $0.saved }
    }

    /// Validates `saved` and replaces the CMOS and clock state with it; on error nothing
    /// changes. From here the guest's RTC reads this host's wall clock plus the saved offset
    /// (see `CMOSRTCState`). The RTC raises no interrupts, so there is no line to restore.
    public func restoreState(_ saved: CMOSRTCState) throws(DeviceStateError) {
        try saved.validate()
        state.withLock { $0 = CMOSState(restoring: saved) }
    }
}
