import DeviceModel
import Synchronization
import Testing

@testable import LegacyDevices

@Suite struct DebugExitTests {
    static let cases: [(UInt32, Int32, UInt8)] = [
        // (value written, status, what a shell sees as the exit code: status & 0xFF)
        (0, 1, 1),
        (1, 3, 3),
        (0x10, 33, 33),
        (0xff, 511, 255),
        (0xffff_ffff, -1, 255),
        (0x8000_0000, 1, 1),
    ]

    @Test(arguments: cases)
    func statuses(value: UInt32, status: Int32, exitCode: UInt8) {
        let machine = RecordingMachine()
        let device = DebugExit(machine: machine)
        let bytes = withUnsafeBytes(of: value.littleEndian) { Array($0) }
        device.write(0, bytes)
        #expect(machine.requests == [.debugExit(status: status)])
        #expect(UInt8(truncatingIfNeeded: status) == exitCode)
    }

    @Test func accessSizes() {
        let machine = RecordingMachine()
        let device = DebugExit(machine: machine)
        device.write(0, [0x10])
        device.write(0, [0x10, 0x00])
        device.write(0, [0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00])  // 8 bytes: ignored
        device.write(1, [0x10])  // not offset 0: ignored
        #expect(machine.requests == [.debugExit(status: 33), .debugExit(status: 33)])
        #expect(device.read(0, size: 4) == [0xff, 0xff, 0xff, 0xff])
    }
}

@Suite struct PostCodePortTests {
    @Test func recordsTheLastCode() {
        let seen = Mutex<[UInt8]>([])
        let port = PostCodePort { code in seen.withLock { $0.append(code) } }
        #expect(port.lastCode == nil)
        #expect(port.readByte(0) == 0xff)
        port.writeByte(0, 0x12)
        port.write(0, [0x34, 0x56])
        #expect(port.lastCode == 0x34)
        #expect(port.readByte(0) == 0x34)
        #expect(port.writeCount == 2)
        #expect(seen.withLock { $0 } == [0x12, 0x34])
    }
}

@Suite struct ACPIPowerManagementTests {
    @Test func s5PowersOff() {
        let machine = RecordingMachine()
        let pm = ACPIPowerManagement(machine: machine)
        let linuxS5: UInt8 = ((5 << 2) & 0x1c) | 0x20
        pm.writeByte(0, linuxS5)
        #expect(machine.requests == [.powerOff])
    }

    @Test func otherSleepWritesDoNothing() {
        let machine = RecordingMachine()
        let pm = ACPIPowerManagement(machine: machine)
        pm.writeByte(0, 5 << 2)  // S5 type without SLP_EN
        pm.writeByte(0, (3 << 2) | 0x20)  // S3
        pm.writeByte(1, 0x80)  // clear WAK_STS
        pm.writeByte(4, 0x02)  // not the reset value
        #expect(machine.requests.isEmpty)
        #expect(pm.readByte(1) == 0)
        #expect(pm.readByte(2) == 0xff)
    }

    @Test func customSleepTypeAndReset() {
        let machine = RecordingMachine()
        let pm = ACPIPowerManagement(machine: machine, s5SleepType: 7, resetValue: 0x0e)
        pm.writeByte(0, (5 << 2) | 0x20)
        #expect(machine.requests.isEmpty)
        pm.writeByte(0, (7 << 2) | 0x20)
        pm.writeByte(4, 0x0e)
        #expect(machine.requests == [.powerOff, .reset])
    }

    @Test func resetRegister() {
        let machine = RecordingMachine()
        let pm = ACPIPowerManagement(machine: machine)
        pm.writeByte(4, 0x01)
        #expect(machine.requests == [.reset])
    }
}

@Suite struct PCIResetControlTests {
    @Test func linuxRebootSequence() {
        let machine = RecordingMachine()
        let rcr = PCIResetControl(machine: machine)
        rcr.writeByte(0, 0x02)
        #expect(machine.requests.isEmpty)
        #expect(rcr.readByte(0) == 0x02)
        rcr.writeByte(0, 0x06)
        #expect(machine.requests == [.reset])
        rcr.writeByte(0, 0x0e)
        #expect(machine.requests == [.reset, .reset])
        #expect(rcr.readByte(0) == 0x0a)
    }
}
