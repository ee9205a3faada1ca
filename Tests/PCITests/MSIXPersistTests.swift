import DeviceModel
import Testing

@testable import PCI

/// Writes `dwords` one 4-byte access at a time; returns the vectors that changed.
private func writeTable(_ m: inout MSIXState, _ offset: UInt64, _ dwords: [UInt32]) -> [Int] {
    var changed: [Int] = []
    for (i, dword) in dwords.enumerated() {
        let vectors = withUnsafeBytes(of: dword.littleEndian) { m.writeTable(offset: offset + 4 * UInt64(i), from: $0) }
        changed += vectors.filter { !changed.contains($0) }
    }
    return changed
}

private func tableBytes(_ m: MSIXState) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: m.tableSize)
    bytes.withUnsafeMutableBytes { buffer in
        for offset in stride(from: 0, to: m.tableSize, by: 8) {
            m.readTable(offset: UInt64(offset), into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + 8)]))
        }
    }
    return bytes
}

private func pbaBytes(_ m: MSIXState) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: m.pbaSize)
    bytes.withUnsafeMutableBytes { m.readPBA(offset: 0, into: $0) }
    return bytes
}

private func messages(_ m: MSIXState) -> [MSIMessage?] {
    (0..<m.vectorCount).map { m.deliverableMessage($0) }
}

/// A driver's setup: five vectors programmed, MSI-X on, vector 3 masked with an interrupt
/// pending on it, vector 4 left masked (as reset leaves it).
private func busyMSIX(vectorCount: Int = 5) -> MSIXState {
    var m = MSIXState(vectorCount: vectorCount)
    for v in 0..<min(vectorCount, 4) {
        _ = writeTable(&m, UInt64(16 * v), [0xfee0_0000 | UInt32(v) << 12, 0, 0x40 + UInt32(v), 0])
    }
    _ = m.setControl(0x8000)
    _ = writeTable(&m, 16 * 3 + 12, [1])
    m.setPending(3, true)
    return m
}

@Suite struct MSIXPersistTests {
    @Test func savedStateHoldsTableControlAndPendingBits() throws {
        let m = busyMSIX()
        let s = m.savedState
        try s.validate()
        #expect(s.enabled && !s.functionMasked)
        #expect(s.table.count == 5)
        #expect(s.table[2] == MSIXTableEntry(messageAddressLow: 0xfee0_2000, messageAddressHigh: 0, messageData: 0x42, vectorControl: 0))
        #expect(s.table[3].vectorControl == 1 && s.table[4].vectorControl == 1)
        #expect(s.pendingBits == [1 << 3])
    }

    @Test func restoredVectorsBehaveLikeTheOriginal() throws {
        var original = busyMSIX()
        var restored = try MSIXState(restoring: original.savedState, vectorCount: 5)
        #expect(messages(restored) == messages(original))
        #expect(tableBytes(restored) == tableBytes(original))
        #expect(pbaBytes(restored) == pbaBytes(original))
        #expect(restored.enabled == original.enabled && restored.functionMasked == original.functionMasked)
        // The driver unmasks vector 3 and masks the function: same changes on both.
        #expect(writeTable(&original, 16 * 3 + 12, [0]) == writeTable(&restored, 16 * 3 + 12, [0]))
        #expect(original.setControl(0xc000) == restored.setControl(0xc000))
        #expect(original.setControl(0x8000) == restored.setControl(0x8000))
        original.setPending(3, false)
        restored.setPending(3, false)
        #expect(messages(restored) == messages(original))
        #expect(pbaBytes(restored) == pbaBytes(original))
        #expect(restored.savedState == original.savedState)
    }

    @Test(arguments: [1, 63, 64, 65, 128, 2048])
    func pendingBitArraySizesFollowTheVectorCount(vectorCount: Int) throws {
        var m = MSIXState(vectorCount: vectorCount)
        m.setPending(vectorCount - 1, true)
        m.setPending(0, true)
        let s = m.savedState
        #expect(s.pendingBits.count == (vectorCount + 63) / 64)
        try s.validate()
        let restored = try MSIXState(restoring: s, vectorCount: vectorCount)
        #expect(pbaBytes(restored) == pbaBytes(m))
        #expect(restored.isPending(vectorCount - 1))
    }

    static let corruptions: [Corruption<MSIXSavedState>] = [
        Corruption("table", "no vectors") {
            $0.table = []
            $0.pendingBits = []
        },
        Corruption("table", "2049 vectors") {
            $0.table = [MSIXTableEntry](repeating: $0.table[0], count: 2049)
            $0.pendingBits = [UInt64](repeating: 0, count: 33)
        },
        Corruption("table[1].vectorControl", "reserved bit") { $0.table[1].vectorControl = 0x2 },
        Corruption("table[4].vectorControl", "all ones") { $0.table[4].vectorControl = .max },
        Corruption("pendingBits", "no words") { $0.pendingBits = [] },
        Corruption("pendingBits", "two words for five vectors") { $0.pendingBits.append(0) },
        Corruption("pendingBits[0]", "vector 5 of 5 pending") { $0.pendingBits[0] |= 1 << 5 },
        Corruption("pendingBits[0]", "bit 63 of 5") { $0.pendingBits[0] |= 1 << 63 },
    ]

    @Test(arguments: Self.corruptions)
    func invalidStateIsRefused(_ corruption: Corruption<MSIXSavedState>) {
        let bad = corruption.applied(to: busyMSIX().savedState)
        expectRefused(component: "msix", field: corruption.field) { () throws(DeviceStateError) in try bad.validate() }
        var target = MSIXState(vectorCount: 5)
        _ = writeTable(&target, 0, [0xfee0_0000, 0, 0x31, 0])
        _ = target.setControl(0x8000)
        let before = target.savedState
        expectRefused(component: "msix", field: corruption.field) { () throws(DeviceStateError) in try target.restore(bad) }
        #expect(target.savedState == before)
        #expect(target.deliverableMessage(0) == MSIMessage(addressLow: 0xfee0_0000, addressHigh: 0, data: 0x31))
    }

    @Test(arguments: [3, 6, 64])
    func vectorCountMustMatchTheDevice(vectorCount: Int) {
        let saved = busyMSIX().savedState  // five vectors
        expectRefused(component: "msix", field: "table") { () throws(DeviceStateError) in
            _ = try MSIXState(restoring: saved, vectorCount: vectorCount)
        }
        var target = MSIXState(vectorCount: vectorCount)
        let before = target.savedState
        expectRefused(component: "msix", field: "table") { () throws(DeviceStateError) in try target.restore(saved) }
        #expect(target.savedState == before)
    }

    @Test func messageControlInTheConfigurationSpaceMustAgree() throws {
        let m = busyMSIX()  // enabled, not function-masked
        try m.checkMessageControl(0x8004)  // table size bits do not matter here
        expectRefused(component: "msix", field: "enabled") { () throws(DeviceStateError) in try m.checkMessageControl(0x0004) }
        expectRefused(component: "msix", field: "enabled") { () throws(DeviceStateError) in try m.checkMessageControl(0xc004) }
    }

    @Test(arguments: [UInt64(0x4d51_0001), 0x4d51_0002, 0x4d51_0003])
    func randomHistoryThenLockstep(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let vectorCount = 70
        func step(_ states: inout [MSIXState], _ random: inout SeededRandom) -> [String] {
            switch UInt8.random(in: 0..<10, using: &random) {
            case 0:
                let control = UInt16.random(in: 0...UInt16.max, using: &random)
                return states.indices.map { "\(states[$0].setControl(control))" }
            case 1:
                let vector = Int.random(in: -1...vectorCount, using: &random)
                let on = Bool.random(using: &random)
                return states.indices.map { i in
                    states[i].setPending(vector, on)
                    return "\(states[i].isPending(vector))"
                }
            default:
                let size = [4, 8, 2].randomElement(using: &random) ?? 4
                let offset = UInt64.random(in: 0..<UInt64(vectorCount * 16 + 16), using: &random) & ~UInt64(size == 2 ? 1 : 3)
                let dwords = (0..<2).map { _ in Bool.random(using: &random) ? UInt32.random(in: 0...1, using: &random) : .random(in: 0...UInt32.max, using: &random) }
                return states.indices.map { i in
                    dwords.withUnsafeBytes { "\(states[i].writeTable(offset: offset, from: UnsafeRawBufferPointer(rebasing: $0[0..<size])))" }
                }
            }
        }
        var original = [MSIXState(vectorCount: vectorCount)]
        for _ in 0..<3_000 { _ = step(&original, &random) }
        let saved = original[0].savedState
        try saved.validate()
        var both = [original[0], try MSIXState(restoring: saved, vectorCount: vectorCount)]
        for i in 0..<3_000 {
            let results = step(&both, &random)
            if results[0] != results[1] || messages(both[0]) != messages(both[1]) {
                Issue.record("step \(i) after restore differs: \(results)")
                return
            }
        }
        #expect(tableBytes(both[0]) == tableBytes(both[1]))
        #expect(pbaBytes(both[0]) == pbaBytes(both[1]))
        #expect(both[0].savedState == both[1].savedState)
    }
}
