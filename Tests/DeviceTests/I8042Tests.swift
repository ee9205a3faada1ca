import DeviceModel
import Testing

@testable import LegacyDevices

private let dataPort: UInt64 = 0
private let commandPort: UInt64 = 4

private struct I8042Fixture {
    let line = RecordingLine()
    let machine = RecordingMachine()
    let kbc: I8042

    init() {
        kbc = I8042(interrupt: line, machine: machine)
    }

    var status: UInt8 { kbc.readByte(commandPort) }

    /// Sends a controller command and returns the reply, as Linux's i8042_command does.
    func command(_ byte: UInt8, parameter: UInt8? = nil, replies: Int = 0) -> [UInt8] {
        kbc.writeByte(commandPort, byte)
        if let parameter { kbc.writeByte(dataPort, parameter) }
        return (0..<replies).compactMap { _ in status & 0x01 != 0 ? kbc.readByte(dataPort) : nil }
    }

    /// Reads everything in the output buffer.
    func drain() -> [UInt8] {
        var bytes: [UInt8] = []
        while status & 0x01 != 0 && bytes.count < 64 { bytes.append(kbc.readByte(dataPort)) }
        return bytes
    }
}

@Suite struct I8042Tests {
    @Test func powerOnStatus() {
        let f = I8042Fixture()
        #expect(f.status == 0x1c)  // unlocked | last write was a command | system flag
        #expect(f.command(0x20, replies: 1) == [0x25])  // KBDINT | SYS | AUXDIS
        #expect(f.kbc.readByte(1) == 0xff)
        #expect(f.kbc.readByte(2) == 0xff)
        #expect(f.kbc.readByte(3) == 0xff)
    }

    @Test func selfTestAndInterfaceTest() {
        let f = I8042Fixture()
        #expect(f.command(0xaa, replies: 1) == [0x55])
        #expect(f.status & 0x01 == 0)
        #expect(f.status & 0x04 != 0)
        #expect(f.command(0xab, replies: 1) == [0x00])
        #expect(f.command(0xa9, replies: 1) == [0x02])  // aux port absent
    }

    /// The sequence Linux's i8042 driver runs with i8042.noaux.
    @Test func linuxProbeSequence() {
        let f = I8042Fixture()
        #expect(f.drain().isEmpty)  // i8042_controller_check: flush finds nothing
        #expect(f.command(0xaa, replies: 1) == [0x55])  // i8042_controller_selftest
        let ctr1 = f.command(0x20, replies: 1)  // i8042_controller_init: two stable CTR reads
        let ctr2 = f.command(0x20, replies: 1)
        #expect(ctr1 == ctr2 && ctr1.count == 1)
        var ctr = ctr1.first ?? 0
        ctr |= 0x10  // KBDDIS
        ctr &= ~0x01  // no KBDINT
        _ = f.command(0x60, parameter: ctr)
        #expect(f.command(0x20, replies: 1) == [ctr])
        f.line.clear()
        // i8042_enable_kbd_port
        ctr &= ~0x10
        ctr |= 0x01
        _ = f.command(0x60, parameter: ctr)
        #expect(f.command(0x20, replies: 1) == [ctr])
        #expect(f.line.risingEdges == 1)  // the CTR reply raised IRQ 1 once enabled
        #expect(!f.line.isHigh)
        // atkbd: GETID answered by an MF2 keyboard.
        f.line.clear()
        f.kbc.writeByte(dataPort, 0xf2)
        #expect(f.status & 0x08 == 0)  // last write was data
        #expect(f.drain() == [0xfa, 0xab, 0x83])
        #expect(f.line.risingEdges == 3)  // one edge per byte
        #expect(!f.line.isHigh)
        #expect(f.machine.requests.isEmpty)
    }

    @Test func commandByteControlsTheInterrupt() {
        let f = I8042Fixture()
        _ = f.command(0x60, parameter: 0x04)  // KBDINT off
        f.line.clear()
        f.kbc.writeByte(dataPort, 0xf4)
        #expect(f.status & 0x01 == 0x01)
        #expect(!f.line.isHigh)
        #expect(f.drain() == [0xfa])
        _ = f.command(0x60, parameter: 0x05)
        f.kbc.writeByte(dataPort, 0xee)
        #expect(f.line.isHigh)
        #expect(f.drain() == [0xee])
        #expect(!f.line.isHigh)
    }

    @Test func controllerRAM() {
        let f = I8042Fixture()
        _ = f.command(0x65, parameter: 0x99)
        #expect(f.command(0x25, replies: 1) == [0x99])
        #expect(f.command(0x20, replies: 1) == [0x25])  // CTR untouched
    }

    @Test func keyboardDisableHoldsKeyboardBytes() {
        let f = I8042Fixture()
        _ = f.command(0xad)
        #expect(f.command(0x20, replies: 1) == [0x35])
        #expect(f.kbc.injectKeyboardBytes([0x1c]) == 1)
        #expect(f.status & 0x01 == 0)
        #expect(!f.line.isHigh)
        _ = f.command(0xae)
        #expect(f.line.isHigh)
        #expect(f.drain() == [0x1c])
    }

    @Test func controllerReplyComesBeforeKeyboardBytes() {
        let f = I8042Fixture()
        f.kbc.injectKeyboardBytes([0x1c, 0xf0, 0x1c])
        #expect(f.command(0x20, replies: 1) == [0x25])
        #expect(f.drain() == [0x1c, 0xf0, 0x1c])
    }

    @Test func pulseResetCommand() {
        let f = I8042Fixture()
        _ = f.command(0xfe)
        #expect(f.machine.requests == [.reset])
        _ = f.command(0xff)  // pulses nothing
        _ = f.command(0xfd)  // pulses bit 1 only
        #expect(f.machine.requests == [.reset])
        _ = f.command(0xf0)  // pulses bits 0–3: bit 0 resets
        #expect(f.machine.requests == [.reset, .reset])
    }

    @Test func outputPortWrite() {
        let f = I8042Fixture()
        #expect(f.command(0xd0, replies: 1) == [0xcf])
        _ = f.command(0xd1, parameter: 0x03)
        #expect(f.machine.requests.isEmpty)
        #expect(f.command(0xd0, replies: 1) == [0x03])
        _ = f.command(0xdd)
        #expect(f.command(0xd0, replies: 1) == [0x01])
        _ = f.command(0xd1, parameter: 0x02)  // bit 0 low: CPU reset
        #expect(f.machine.requests == [.reset])
    }

    @Test func auxCommandsFindNoDevice() {
        let f = I8042Fixture()
        _ = f.command(0xa8)
        #expect(f.command(0x20, replies: 1) == [0x25])  // AUXDIS did not follow
        _ = f.command(0xd4, parameter: 0xff)
        _ = f.command(0xd3, parameter: 0x5a)
        #expect(f.status & 0x21 == 0)
        // The byte after 0xD4 did not reach the keyboard either.
        #expect(f.drain().isEmpty)
    }

    @Test func keyboardCommands() {
        let f = I8042Fixture()
        f.kbc.writeByte(dataPort, 0xff)
        #expect(f.drain() == [0xfa, 0xaa])
        f.kbc.writeByte(dataPort, 0xed)
        f.kbc.writeByte(dataPort, 0x07)
        #expect(f.drain() == [0xfa, 0xfa])
        f.kbc.writeByte(dataPort, 0xf0)
        f.kbc.writeByte(dataPort, 0x00)
        #expect(f.drain() == [0xfa, 0xfa, 0x02])
        f.kbc.writeByte(dataPort, 0xf0)
        f.kbc.writeByte(dataPort, 0x09)
        #expect(f.drain() == [0xfa, 0xfe])
        f.kbc.writeByte(dataPort, 0x12)
        #expect(f.drain() == [0xfe])
        // D2 puts a byte in the output buffer as if the keyboard sent it.
        _ = f.command(0xd2, parameter: 0x42)
        #expect(f.drain() == [0x42])
    }

    @Test func ctrlAltDel() {
        let f = I8042Fixture()
        #expect(f.kbc.sendCtrlAltDel())
        #expect(f.line.isHigh)
        #expect(f.drain() == [0x14, 0x11, 0xe0, 0x71])
        _ = f.command(0x60, parameter: 0x65)  // translation on
        #expect(f.kbc.sendCtrlAltDel())
        #expect(f.drain() == [0x1d, 0x38, 0xe0, 0x53])
        f.kbc.writeByte(dataPort, 0xf5)  // scanning off
        #expect(f.drain() == [0xfa])
        #expect(!f.kbc.sendCtrlAltDel())
    }

    @Test func keyboardQueueIsBoundedForLinuxFlush() {
        let f = I8042Fixture()
        #expect(f.kbc.injectKeyboardBytes([UInt8](repeating: 0x1c, count: 100)) == 15)
        #expect(!f.kbc.sendCtrlAltDel())
        _ = f.command(0x20)  // plus the controller's reply
        #expect(f.drain().count == 16)  // within i8042_flush's limit of 16
    }

    @Test func resetRestoresPowerOn() {
        let f = I8042Fixture()
        _ = f.command(0x60, parameter: 0x00)
        f.kbc.injectKeyboardBytes([1, 2, 3])
        f.kbc.reset()
        #expect(f.status == 0x1c)
        #expect(f.command(0x20, replies: 1) == [0x25])
    }
}
