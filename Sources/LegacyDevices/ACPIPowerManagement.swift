import DeviceModel

/// Hardware-reduced ACPI power registers: the FADT's SLEEP_CONTROL_REG, SLEEP_STATUS_REG and
/// RESET_REG as 8-bit I/O registers at offsets from one base (Skiff places sleep control at
/// 0x600, sleep status at 0x601, reset at 0x604: insert at 0x600 with length `portRange`).
///
/// Linux enters a sleep state by writing `((SLP_TYP << 2) & 0x1C) | 0x20` (SLP_EN) to the sleep
/// control register (ACPICA `acpi_hw_extended_sleep`). A write with SLP_EN set and SLP_TYP equal
/// to the `_S5_` type requests `.powerOff`; other sleep types are ignored (no suspend). A write
/// of the reset value to the reset register requests `.reset`. The sleep status register reads
/// 0 (WAK_STS clear; there is no wake from S5) and ignores writes; other reads are 0.
///
/// The device holds no state (every register reads 0 and writes act at once), so it has no
/// saved state: a snapshot rebuilds it from the configuration.
public final class ACPIPowerManagement: BusDevice {
    /// SLP_EN, bit 5 of the sleep control register.
    public static let sleepEnable: UInt8 = 0x20
    /// SLP_TYP, bits 2–4 of the sleep control register.
    public static let sleepTypeMask: UInt8 = 0x1c

    private let machine: any MachineControl
    private let sleepControlOffset: UInt64
    private let sleepStatusOffset: UInt64
    private let resetOffset: UInt64
    private let s5SleepType: UInt8
    private let resetValue: UInt8

    /// Length of a range covering the default offsets (0x600–0x604).
    public static let portRange: UInt64 = 5

    /// - Parameters:
    ///   - machine: receives `.powerOff` and `.reset`.
    ///   - sleepControlOffset / sleepStatusOffset / resetOffset: register offsets from the base
    ///     the device is inserted at (defaults match ports 0x600, 0x601, 0x604 from base 0x600).
    ///   - s5SleepType: the SLP_TYP of `_S5_` in the DSDT (0–7; default 5).
    ///   - resetValue: the FADT RESET_VALUE (default 1).
    public init(
        machine: any MachineControl,
        sleepControlOffset: UInt64 = 0,
        sleepStatusOffset: UInt64 = 1,
        resetOffset: UInt64 = 4,
        s5SleepType: UInt8 = 5,
        resetValue: UInt8 = 1
    ) {
        self.machine = machine
        self.sleepControlOffset = sleepControlOffset
        self.sleepStatusOffset = sleepStatusOffset
        self.resetOffset = resetOffset
        self.s5SleepType = s5SleepType & 0x07
        self.resetValue = resetValue
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        unsafe ByteLanes.read(offset: offset, into: data) { register in
            switch register {
            case sleepControlOffset, sleepStatusOffset, resetOffset: return 0
            default: return nil
            }
        }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        var event: MachineEvent?
        unsafe ByteLanes.write(offset: offset, from: data) { register, value in
            if register == sleepControlOffset,
                value & Self.sleepEnable != 0,
                (value & Self.sleepTypeMask) >> 2 == s5SleepType
            {
                event = .powerOff
            } else if register == resetOffset, value == resetValue {
                event = event ?? .reset
            }
        }
        if let event { machine.request(event) }
    }
}
