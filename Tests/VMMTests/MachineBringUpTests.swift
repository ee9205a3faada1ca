import DeviceModel
import KVM
import Synchronization
import Testing
@testable import VMM

/// Records bytes written to it.
final class RecordingDevice: BusDevice, @unchecked Sendable {
    let bytes = Mutex<[UInt8]>([])
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {}
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        if offset == 0, let b = data.first { bytes.withLock { $0.append(b) } }
    }
}

/// Turns a write into a debug-exit request.
final class ExitOnWrite: BusDevice, @unchecked Sendable {
    let control: any MachineControl
    init(_ control: any MachineControl) { self.control = control }
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {}
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        control.request(.debugExit(status: Int32(data.first ?? 0) << 1 | 1))
    }
}

@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct MachineBringUpTests {
    /// 32-bit code: print "Hi" on port 0x3f8, write 0x10 to port 0xf4, halt.
    static let program: [UInt8] = [
        0x66, 0xba, 0xf8, 0x03, 0xb0, 0x48, 0xee, 0xb0, 0x69, 0xee, 0xb0, 0x10, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd,
    ]

    @Test func protectedModeGuestWritesPortsAndExits() throws {
        let kvm = try KVMSystem()
        let supported = try kvm.supportedCPUID()
        let plan = BootLayout(writes: [(0x100000, Self.program[...], 0)], entry: .protectedMode(rip: 0x100000, eax: 0, ebx: 0))
        let machine = try Machine(kvm: kvm, memorySize: 32 << 20, vcpuCount: 1, cpuid: [supported], msrs: [], plan: plan, platformTables: [])
        let serial = RecordingDevice()
        try machine.pio.insert(serial, base: 0x3f8, length: 8)
        try machine.pio.insert(ExitOnWrite(machine.control), base: 0xf4, length: 1)
        let outcome = machine.run()
        #expect(outcome == .debugExit(status: 33))
        #expect(serial.bytes.withLock { $0 } == Array("Hi".utf8))
    }

    /// The same program reached through the 64-bit long-mode entry (identity-mapped).
    @Test func longModeGuestRuns() throws {
        let kvm = try KVMSystem()
        let supported = try kvm.supportedCPUID()
        let plan = BootLayout(writes: [(0x200000, Self.program[...], 0)], entry: .longMode(rip: 0x200000, rsi: 0x7000))
        let machine = try Machine(kvm: kvm, memorySize: 32 << 20, vcpuCount: 1, cpuid: [supported], msrs: [], plan: plan, platformTables: [])
        let serial = RecordingDevice()
        try machine.pio.insert(serial, base: 0x3f8, length: 8)
        try machine.pio.insert(ExitOnWrite(machine.control), base: 0xf4, length: 1)
        #expect(machine.run() == .debugExit(status: 33))
        #expect(serial.bytes.withLock { $0 } == Array("Hi".utf8))
    }
}
