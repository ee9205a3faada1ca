import DeviceModel
import Testing

@testable import PCI

/// The guest programs the function as firmware and a driver would: BARs moved, decoding and
/// bus mastering on, an interrupt line, MSI-X enabled and masked, the vendor capability's
/// writable byte, and BAR 4 left in the middle of a size probe.
private func driveIntoBusyState(_ c: inout PCIConfiguration) {
    c.write(offset: 0x10, size: 4, value: 0xd000_0000)
    c.write(offset: 0x18, size: 4, value: 0x4010_0000)
    c.write(offset: 0x1c, size: 4, value: 0x0000_0080)
    c.write(offset: PCIConfiguration.interruptLine, size: 1, value: 11)
    c.write(offset: PCIConfiguration.command, size: 2, value: 0x0407)  // I/O, memory, master, INTx off
    c.write(offset: 0x42, size: 2, value: 0xc000)  // MSI-X enable | function mask
    c.write(offset: 0x50, size: 1, value: 0x77)  // the vendor capability's writable byte
    c.write(offset: 0x20, size: 4, value: 0xffff_ffff)  // sizing BAR 4
}

@Suite struct PCIConfigurationPersistTests {
    @Test func savedStateHoldsTheSpaceAndTheBARs() throws {
        var c = makeLayout()
        driveIntoBusyState(&c)
        let s = c.savedState
        try s.validate()
        #expect(s.space.count == 256)
        #expect(s.bars == [
            PCIBARState(slot: 0, kind: .memory32, size: 0x10000, address: 0xd000_0000),
            PCIBARState(slot: 2, kind: .prefetchableMemory64, size: 0x10_0000, address: 0x80_4010_0000),
            PCIBARState(slot: 4, kind: .io, size: 0x100, address: 0xff00),
        ])
        #expect(s.space[0x3c] == 11)
        #expect(s.space[0x43] == 0xc0)
        #expect(s.space[0x50] == 0x77)
    }

    @Test func restoredConfigurationReadsAndBehavesLikeTheOriginal() throws {
        var original = makeLayout()
        driveIntoBusyState(&original)
        let saved = original.savedState
        var restored = try PCIConfiguration(restoring: saved, layout: makeLayout())
        #expect(restored.savedState == saved)
        #expect(everyRead(restored) == everyRead(original))
        #expect(restored.bars == original.bars)
        #expect(restored.command == original.command)
        #expect(restored.memoryDecodingEnabled && restored.busMasterEnabled)
        // The size probe finishes and the driver keeps writing: same results and BAR changes.
        let writes: [(Int, Int, UInt32)] = [
            (0x20, 4, 0x6000), (0x10, 4, 0xffff_ffff), (0x10, 4, 0xd000_0000), (0x04, 2, 0x0000),
            (0x00, 4, 0), (0x34, 1, 0x80), (0x42, 2, 0x8000), (0x3d, 1, 4), (0x1c, 2, 0x1234),
        ]
        for (offset, size, value) in writes {
            #expect(original.write(offset: offset, size: size, value: value) == restored.write(offset: offset, size: size, value: value))
        }
        #expect(everyRead(restored) == everyRead(original))
        #expect(restored.bars == original.bars)
    }

    /// A 64-bit BAR in the middle of a size probe sits at the very top of the address space:
    /// valid (its last byte is 2^64 − 1), and the probe reads back the same after a restore.
    @Test func sixtyFourBitBARBeingSizedIsValid() throws {
        var original = makeLayout()
        original.write(offset: 0x18, size: 4, value: 0xffff_ffff)
        original.write(offset: 0x1c, size: 4, value: 0xffff_ffff)
        let saved = original.savedState
        #expect(saved.bars[1].address == 0xffff_ffff_fff0_0000)
        try saved.validate()
        let restored = try PCIConfiguration(restoring: saved, layout: makeLayout())
        #expect(restored.read(offset: 0x18, size: 4) == 0xfff0_000c)
        #expect(restored.read(offset: 0x1c, size: 4) == 0xffff_ffff)
        #expect(everyRead(restored) == everyRead(original))
    }

    @Test func restoreInPlaceReplacesTheGuestContent() throws {
        var source = makeLayout()
        driveIntoBusyState(&source)
        var target = makeLayout()
        target.write(offset: 0x3c, size: 1, value: 5)
        try target.restore(source.savedState)
        #expect(everyRead(target) == everyRead(source))
    }

    /// States that are wrong on their own: `validate()` refuses them.
    static let invalid: [Corruption<PCIConfigurationState>] = [
        Corruption("space", "255 bytes") { $0.space.removeLast() },
        Corruption("space", "4096 bytes") { $0.space += [UInt8](repeating: 0, count: 3840) },
        Corruption("bars", "7 BARs") { $0.bars += [PCIBARState](repeating: $0.bars[2], count: 4) },
        Corruption("bars[2].slot", "slot 6") { $0.bars[2].slot = 6 },
        Corruption("bars[1].slot", "64-bit BAR in slot 5") { $0.bars[1].slot = 5 },
        Corruption("bars[2].slot", "slot taken by a 64-bit BAR's upper half") { $0.bars[2].slot = 3 },
        Corruption("bars[0].size", "not a power of two") { $0.bars[0].size = 0x18000 },
        Corruption("bars[0].size", "8 bytes") { $0.bars[0].size = 8 },
        Corruption("bars[0].size", "4 GiB 32-bit BAR") {
            $0.bars[0].size = 1 << 32
            $0.bars[0].address = 0
        },
        Corruption("bars[2].size", "64 KiB of I/O") {
            $0.bars[2].size = 0x10000
            $0.bars[2].address = 0
        },
        Corruption("bars[0].address", "not aligned to the size") {
            $0.bars[0].address = 0xd000_8000
            $0.encodeBARs()
        },
        Corruption("bars[0].address", "past 4 GiB for a 32-bit BAR") {
            $0.bars[0].address = 0x1_0000_0000
            $0.encodeBARs()
        },
        Corruption("bars[2].address", "past 64 KiB for I/O") {
            $0.bars[2].address = 0x10000
            $0.encodeBARs()
        },
        Corruption("space[0x10]", "BAR 0 register disagrees with the address") { $0.space[0x12] ^= 0x01 },
        Corruption("space[0x10]", "BAR 0 register has other type bits") { $0.space[0x10] |= 0x08 },
        Corruption("space[0x1c]", "upper half of BAR 2 disagrees") { $0.space[0x1c] ^= 0x80 },
    ]

    @Test(arguments: Self.invalid)
    func invalidStateIsRefused(_ corruption: Corruption<PCIConfigurationState>) {
        var source = makeLayout()
        driveIntoBusyState(&source)
        let bad = corruption.applied(to: source.savedState)
        expectRefused(component: "pci-config", field: corruption.field) { () throws(DeviceStateError) in try bad.validate() }
        var target = makeLayout()
        target.write(offset: 0x04, size: 2, value: 0x0002)
        let before = target
        expectRefused(component: "pci-config", field: corruption.field) { () throws(DeviceStateError) in try target.restore(bad) }
        #expect(everyRead(target) == everyRead(before))
        #expect(target.bars == before.bars)
    }

    /// States that are fine on their own but do not fit the device the constructor rebuilt.
    static let mismatched: [Corruption<PCIConfigurationState>] = [
        Corruption("space[0x0]", "vendor ID") { $0.space[0x00] = 0x35 },
        Corruption("space[0x3]", "device ID") { $0.space[0x03] = 0x10 },
        Corruption("space[0x4]", "command bit 3 (special cycles) is not writable") { $0.space[0x04] |= 0x08 },
        Corruption("space[0x6]", "status without the capabilities bit") { $0.space[0x06] = 0 },
        Corruption("space[0x8]", "revision") { $0.space[0x08] = 3 },
        Corruption("space[0xb]", "class code") { $0.space[0x0b] = 0x02 },
        Corruption("space[0xe]", "multi-function header type") { $0.space[0x0e] = 0x80 },
        Corruption("space[0x2c]", "subsystem vendor ID") { $0.space[0x2c] = 0 },
        Corruption("space[0x34]", "capabilities pointer") { $0.space[0x34] = 0x50 },
        Corruption("space[0x3d]", "interrupt pin") { $0.space[0x3d] = 2 },
        Corruption("space[0x40]", "capability ID") { $0.space[0x40] = 0x05 },
        Corruption("space[0x41]", "capability next pointer") { $0.space[0x41] = 0 },
        Corruption("space[0x42]", "MSI-X table size") { $0.space[0x42] = 0x07 },
        Corruption("space[0x43]", "reserved message-control bits") { $0.space[0x43] |= 0x20 },
        Corruption("space[0x45]", "MSI-X table offset") { $0.space[0x45] = 0x90 },
        Corruption("space[0x4d]", "vendor capability's next pointer") { $0.space[0x4d] = 0x40 },
        Corruption("space[0x4f]", "vendor capability's read-only byte") { $0.space[0x4f] = 0 },
        Corruption("space[0x24]", "unimplemented BAR 5") { $0.space[0x24] = 0x01 },
        Corruption("space[0xff]", "past the capabilities") { $0.space[0xff] = 1 },
        Corruption("bars", "a BAR missing") {
            $0.bars.removeLast()
            $0.space[0x20] = 0
            $0.space[0x21] = 0
        },
        Corruption("bars", "BAR 0 of another size") {
            $0.bars[0].size = 0x20000
            $0.bars[0].address = 0xd000_0000
            $0.encodeBARs()
        },
        Corruption("bars", "BAR 0 of another kind") {
            $0.bars[0].kind = .io
            $0.bars[0].size = 0x100
            $0.bars[0].address = 0x7000
            $0.encodeBARs()
        },
        Corruption("bars", "BAR 4 in slot 5") {
            $0.bars[2].slot = 5
            $0.space[0x20...0x23] = [0, 0, 0, 0]
            $0.encodeBARs()
        },
    ]

    @Test(arguments: Self.mismatched)
    func stateThatDoesNotFitTheRebuiltDeviceIsRefused(_ corruption: Corruption<PCIConfigurationState>) {
        var source = makeLayout()
        driveIntoBusyState(&source)
        let bad = corruption.applied(to: source.savedState)
        #expect(throws: Never.self) { try bad.validate() }
        expectRefused(component: "pci-config", field: corruption.field) { () throws(DeviceStateError) in
            _ = try PCIConfiguration(restoring: bad, layout: makeLayout())
        }
        var target = makeLayout()
        target.write(offset: 0x3c, size: 1, value: 9)
        let before = target
        expectRefused(component: "pci-config", field: corruption.field) { () throws(DeviceStateError) in try target.restore(bad) }
        #expect(everyRead(target) == everyRead(before))
    }

    @Test func errorsNameTheField() {
        var source = makeLayout()
        driveIntoBusyState(&source)
        var bad = source.savedState
        bad.space[0x0e] = 0x80
        do {
            _ = try PCIConfiguration(restoring: bad, layout: makeLayout())
        } catch {
            #expect(error.description.contains("header type"))
        }
        bad = source.savedState
        bad.space[0x41] = 0x60
        do {
            _ = try PCIConfiguration(restoring: bad, layout: makeLayout())
        } catch {
            #expect(error.description.contains("next pointer of capability 0x11 at 0x40"))
        }
    }

    @Test(arguments: [UInt64(0xc0f1_0001), 0xc0f1_0002, 0xc0f1_0003])
    func randomHistoryThenLockstep(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        func randomWrite(_ random: inout SeededRandom) -> (Int, Int, UInt32) {
            let size = [1, 2, 4].randomElement(using: &random) ?? 1
            let hot = [0x04, 0x10, 0x14, 0x18, 0x1c, 0x20, 0x3c, 0x42, 0x50]
            let offset = Bool.random(using: &random) ? (hot.randomElement(using: &random) ?? 0) : Int.random(in: 0..<256, using: &random)
            let value: UInt32 = Bool.random(using: &random) ? .max : .random(in: 0...UInt32.max, using: &random)
            return (offset, size, value)
        }
        var original = makeLayout()
        for _ in 0..<3_000 {
            let (offset, size, value) = randomWrite(&random)
            original.write(offset: offset, size: size, value: value)
        }
        let saved = original.savedState
        try saved.validate()
        var restored = try PCIConfiguration(restoring: saved, layout: makeLayout())
        for i in 0..<3_000 {
            let (offset, size, value) = randomWrite(&random)
            let a = original.write(offset: offset, size: size, value: value)
            let b = restored.write(offset: offset, size: size, value: value)
            let readOffset = Int.random(in: 0..<256, using: &random)
            let readSize = [1, 2, 4].randomElement(using: &random) ?? 4
            if a != b || original.read(offset: readOffset, size: readSize) != restored.read(offset: readOffset, size: readSize) {
                Issue.record("step \(i) after restore differs")
                return
            }
        }
        #expect(everyRead(restored) == everyRead(original))
        #expect(restored.bars == original.bars)
        #expect(restored.savedState == original.savedState)
    }
}
