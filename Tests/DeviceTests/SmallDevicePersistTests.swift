import DeviceModel
import Synchronization
import Testing

@testable import LegacyDevices

@Suite struct PostCodePortPersistTests {
    @Test func lastCodeReadsBackAfterRestore() throws {
        let original = PostCodePort()
        original.write(0, [0x34, 0x56])
        let saved = original.saveState()
        #expect(saved == PostCodePortState(lastCode: 0x34))
        let seen = Mutex<[UInt8]>([])
        let restored = PostCodePort { code in seen.withLock { $0.append(code) } }
        try restored.restoreState(saved)
        #expect(restored.readByte(0) == 0x34)
        #expect(restored.lastCode == 0x34)
        #expect(seen.withLock { $0 }.isEmpty)  // restoring is not a guest write
        #expect(restored.writeCount == 0)
    }

    @Test func neverWrittenStaysAllOnes() throws {
        let restored = PostCodePort()
        restored.writeByte(0, 0x99)
        try restored.restoreState(PostCodePort().saveState())
        #expect(restored.lastCode == nil)
        #expect(restored.readByte(0) == 0xff)
    }

    @Test(arguments: [UInt64(0x0080_0001)])
    func randomHistoryThenLockstep(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let original = PostCodePort()
        for _ in 0..<2_000 { GuestAccess.random(range: 1, using: &random).perform(on: original) }
        let restored = PostCodePort()
        try restored.restoreState(original.saveState())
        for _ in 0..<2_000 {
            let access = GuestAccess.random(range: 1, using: &random)
            #expect(access.perform(on: original) == access.perform(on: restored))
        }
        #expect(original.saveState() == restored.saveState())
    }
}

@Suite struct PCIResetControlPersistTests {
    @Test func registerReadsBackAndRestoreNeverResets() throws {
        let machine = RecordingMachine()
        let original = PCIResetControl(machine: machine)
        original.writeByte(0, 0x0a)  // system and full reset armed, CPU reset not requested
        let saved = original.saveState()
        #expect(saved == PCIResetControlState(register: 0x0a))
        let target = RecordingMachine()
        let restored = PCIResetControl(machine: target)
        try restored.restoreState(saved)
        #expect(restored.readByte(0) == 0x0a)
        #expect(target.requests.isEmpty)
        restored.writeByte(0, 0x0e)  // Linux's hard reset after a restore still works
        #expect(target.requests == [.reset])
    }

    @Test(arguments: [UInt8(0x04), 0x01, 0x0e, 0xf0])
    func registerBitsThatNeverStickAreRefused(register: UInt8) {
        let machine = RecordingMachine()
        let device = PCIResetControl(machine: machine)
        device.writeByte(0, 0x02)
        let bad = PCIResetControlState(register: register)
        expectInvalid(bad, component: "pci-reset-control", field: "register")
        expectRestoreRefused(device, bad, component: "pci-reset-control", field: "register")
        #expect(device.readByte(0) == 0x02)
        #expect(machine.requests.isEmpty)
    }

    @Test(arguments: [UInt64(0x0cf9_0001)])
    func randomHistoryThenLockstep(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let machines = [RecordingMachine(), RecordingMachine()]
        let original = PCIResetControl(machine: machines[0])
        for _ in 0..<2_000 { GuestAccess.random(range: 1, using: &random).perform(on: original) }
        let restored = PCIResetControl(machine: machines[1])
        try restored.restoreState(original.saveState())
        let before = machines[0].requests.count
        for _ in 0..<2_000 {
            let access = GuestAccess.random(range: 1, using: &random)
            #expect(access.perform(on: original) == access.perform(on: restored))
        }
        #expect(Array(machines[0].requests.dropFirst(before)) == machines[1].requests)
        #expect(original.saveState() == restored.saveState())
    }
}
