import DeviceModel
import Testing

@testable import LegacyDevices

/// The device as the VMM would build it from one configuration.
private func makeFwCfg(kernelSize: Int = 300) throws -> FwCfg {
    let cfg = FwCfg(ramSize: 1 << 30, cpuCount: 2)
    try cfg.addFile(name: "etc/boot-order", data: Array("/pci@i0cf8/*@2\n".utf8))
    try cfg.addFile(name: "opt/kernel", data: (0..<kernelSize).map { UInt8(truncatingIfNeeded: $0 * 7) })
    try cfg.setItem(0x8003, data: [1, 2, 3, 4, 5, 6, 7, 8])
    return cfg
}

@Suite struct FwCfgPersistTests {
    @Test(arguments: [UInt16(0x0000), 0x0019, 0x0021, 0x8003, 0x0003])
    func readInProgressContinuesAfterRestore(key: UInt16) throws {
        let original = try makeFwCfg()
        original.select(key | 0x4000)  // the old write-channel bit is ignored
        let head = original.readData(3)
        let saved = original.saveState()
        #expect(saved.selectedKey == key)
        #expect(saved.readOffset == 3)
        try saved.validate()
        let restored = try makeFwCfg()
        restored.select(0x0001)  // something else selected before the restore
        try restored.restoreState(saved)
        #expect(restored.saveState() == saved)
        let rest = original.readData(400)
        #expect(restored.readData(400) == rest)
        #expect(head + rest.prefix(5) != [UInt8](repeating: 0, count: 8))
        #expect(restored.saveState() == original.saveState())
    }

    @Test func offsetAtTheEndAndUnknownKeysAreAccepted() throws {
        let original = try makeFwCfg()
        original.select(0x0000)
        _ = original.readData(10)  // past the 4-byte signature: stays at its end
        #expect(original.saveState().readOffset == 4)
        let restored = try makeFwCfg()
        try restored.restoreState(original.saveState())
        #expect(restored.readData(2) == [0, 0])
        try restored.restoreState(FwCfgState(selectedKey: 0x1234, readOffset: 0))
        #expect(restored.readData(1) == [0])
    }

    @Test func directoryOffsetIsCheckedBeforeTheDirectoryIsBuilt() throws {
        // Two files: 4 + 2 × 64 bytes, checked without reading (building) the directory first.
        let fresh = try makeFwCfg()
        try fresh.restoreState(FwCfgState(selectedKey: 0x0019, readOffset: 132))
        expectRestoreRefused(fresh, FwCfgState(selectedKey: 0x0019, readOffset: 133), component: "fw_cfg", field: "readOffset")
    }

    static let corruptions: [(String, FwCfgState)] = [
        ("selectedKey", FwCfgState(selectedKey: 0x4000, readOffset: 0)),
        ("readOffset", FwCfgState(selectedKey: 0x0000, readOffset: 5)),
        ("readOffset", FwCfgState(selectedKey: 0x0021, readOffset: 301)),
        ("readOffset", FwCfgState(selectedKey: 0x0fff, readOffset: 1)),
        ("readOffset", FwCfgState(selectedKey: 0x8003, readOffset: .max)),
    ]

    @Test(arguments: Self.corruptions)
    func corruptStateIsRefused(field: String, state: FwCfgState) throws {
        if field == "selectedKey" { expectInvalid(state, component: "fw_cfg", field: field) }
        let target = try makeFwCfg()
        target.select(0x0021)
        _ = target.readData(2)
        expectRestoreRefused(target, state, component: "fw_cfg", field: field)
        #expect(target.readData(1) == [14])  // byte 2 of opt/kernel, where the read was
    }

    /// The items are rebuilt from the destination's configuration: a file that is shorter
    /// there than the read position refuses the state.
    @Test func readOffsetIsCheckedAgainstTheRebuiltItem() throws {
        let original = try makeFwCfg(kernelSize: 300)
        original.select(0x0021)
        _ = original.readData(200)
        let smaller = try makeFwCfg(kernelSize: 100)
        expectRestoreRefused(smaller, original.saveState(), component: "fw_cfg", field: "readOffset")
    }

    @Test(arguments: [UInt64(0xf0c0_0001), 0xf0c0_0002])
    func randomHistoryThenLockstep(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let original = try makeFwCfg()
        let keys: [UInt16] = [0x0000, 0x0001, 0x0003, 0x0019, 0x0020, 0x0021, 0x4021, 0x8003, 0xffff]
        func step(_ devices: [FwCfg], _ random: inout SplitMix64) -> [[UInt8]] {
            if UInt8.random(in: 0..<6, using: &random) == 0 {
                let key = keys.randomElement(using: &random) ?? 0
                let access = GuestAccess(offset: 0, bytes: [UInt8(truncatingIfNeeded: key), UInt8(key >> 8)], isWrite: true)
                return devices.map { access.perform(on: $0) }
            }
            let access = GuestAccess.random(range: FwCfg.portRange, favouring: [1], using: &random)
            return devices.map { access.perform(on: $0) }
        }
        for _ in 0..<3_000 { _ = step([original], &random) }
        let restored = try makeFwCfg()
        try restored.restoreState(original.saveState())
        for i in 0..<3_000 {
            let results = step([original, restored], &random)
            if results[0] != results[1] {
                Issue.record("step \(i) after restore: original \(results[0]), restored \(results[1])")
                return
            }
        }
        #expect(original.saveState() == restored.saveState())
    }
}
