import DeviceModel
import Testing

@testable import LegacyDevices

extension FwCfg {
    func select(_ key: UInt16) {
        write(0, [UInt8(truncatingIfNeeded: key), UInt8(truncatingIfNeeded: key >> 8)])
    }

    func readData(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in readByte(1) }
    }
}

private func littleEndian(_ bytes: [UInt8]) -> UInt64 {
    bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
}

private func bigEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    bytes.reduce(0) { $0 << 8 | UInt64($1) }
}

@Suite struct FwCfgTests {
    @Test func signatureAndID() {
        let cfg = FwCfg(ramSize: 1 << 30, cpuCount: 2)
        cfg.select(0x0000)
        #expect(cfg.readData(4) == Array("QEMU".utf8))
        #expect(cfg.readData(2) == [0, 0])  // past the end
        cfg.select(0x0001)
        #expect(littleEndian(cfg.readData(4)) == 1)  // traditional interface, no DMA
        // Reselecting restarts at offset 0; the selector port also reads data (QEMU's combined region).
        cfg.select(0x0000)
        #expect(cfg.readByte(0) == UInt8(ascii: "Q"))
        #expect(cfg.readByte(1) == UInt8(ascii: "E"))
    }

    @Test func ramSizeAndCPUs() {
        let cfg = FwCfg(ramSize: 0x1_2345_6789, cpuCount: 3, maxCPUs: 8)
        cfg.select(0x0003)
        #expect(littleEndian(cfg.readData(8)) == 0x1_2345_6789)
        cfg.select(0x0005)
        #expect(littleEndian(cfg.readData(2)) == 3)
        cfg.select(0x000f)
        #expect(littleEndian(cfg.readData(2)) == 8)
        let defaults = FwCfg(ramSize: 0, cpuCount: 4)
        defaults.select(0x000f)
        #expect(littleEndian(defaults.readData(2)) == 4)
    }

    @Test func unknownSelectorReadsZero() {
        let cfg = FwCfg(ramSize: 1, cpuCount: 1)
        cfg.select(0x1234)
        #expect(cfg.readData(3) == [0, 0, 0])
        cfg.select(0x8000)  // architecture-specific table: empty
        #expect(cfg.readData(1) == [0])
    }

    @Test func writeChannelBitIsIgnored() {
        let cfg = FwCfg(ramSize: 1, cpuCount: 1)
        cfg.select(0x4000)
        #expect(cfg.readData(4) == Array("QEMU".utf8))
        cfg.select(0x4000)
        cfg.writeByte(1, 0x00)  // data writes are ignored
        #expect(cfg.readData(4) == Array("QEMU".utf8))
    }

    @Test func byteWritesDoNotSelect() {
        let cfg = FwCfg(ramSize: 1, cpuCount: 1)
        cfg.select(0x0001)
        cfg.writeByte(0, 0x00)
        #expect(littleEndian(cfg.readData(4)) == 1)
        #expect(cfg.read(1, size: 1) == [0])
        #expect(cfg.read(0, size: 2) == [0xff, 0xff])  // only byte reads are defined
    }

    @Test func fileDirectory() throws {
        let cfg = FwCfg(ramSize: 1, cpuCount: 1)
        let zebra = try cfg.addFile(name: "opt/zebra", data: Array("stripes".utf8))
        let boot = try cfg.addFile(name: "etc/boot-fail-wait", data: [5, 0, 0, 0])
        #expect(zebra == 0x0020)
        #expect(boot == 0x0021)
        cfg.select(0x0019)
        let header = cfg.readData(4)
        #expect(bigEndian(header[...]) == 2)
        var entries: [(name: String, size: UInt64, select: UInt16)] = []
        for _ in 0..<2 {
            let entry = cfg.readData(64)
            let nameBytes = entry[8..<64].prefix { $0 != 0 }
            #expect(entry[6..<8] == [0, 0])
            #expect(entry[63] == 0)
            entries.append((String(decoding: nameBytes, as: UTF8.self), bigEndian(entry[0..<4]), UInt16(bigEndian(entry[4..<6]))))
        }
        // Sorted by name, selectors as assigned.
        #expect(entries.map(\.name) == ["etc/boot-fail-wait", "opt/zebra"])
        #expect(entries.map(\.size) == [4, 7])
        #expect(entries.map(\.select) == [boot, zebra])
        cfg.select(zebra)
        #expect(cfg.readData(8) == Array("stripes".utf8) + [0])
    }

    @Test func fileNameRules() throws {
        let cfg = FwCfg(ramSize: 1, cpuCount: 1)
        #expect(throws: FwCfg.Error.emptyName) { try cfg.addFile(name: "", data: []) }
        let longest = String(repeating: "a", count: 55)
        try cfg.addFile(name: longest, data: [])
        #expect(throws: FwCfg.Error.nameTooLong(longest + "b")) { try cfg.addFile(name: longest + "b", data: []) }
        #expect(throws: FwCfg.Error.duplicateName(longest)) { try cfg.addFile(name: longest, data: [1]) }
    }

    @Test func fileSelectorsRunOut() throws {
        let cfg = FwCfg(ramSize: 1, cpuCount: 1)
        for i in 0..<(0x4000 - 0x20) {
            try cfg.addFile(name: "f\(i)", data: [])
        }
        #expect(throws: FwCfg.Error.tooManyFiles) { try cfg.addFile(name: "one-more", data: []) }
        cfg.select(0x0019)
        #expect(bigEndian(cfg.readData(4)[...]) == 0x3fe0)
    }
}

@Suite struct FwCfgFixedItemTests {
    @Test func setItem() throws {
        let cfg = FwCfg(ramSize: 1, cpuCount: 1)
        try cfg.setItem(0x0002, data: [1, 2])
        try cfg.setItem(0x8003, data: [9])
        cfg.select(0x0002)
        #expect(cfg.readData(3) == [1, 2, 0])
        cfg.select(0xc003)  // bit 14 ignored, bit 15 kept
        #expect(cfg.readData(1) == [9])
        #expect(throws: FwCfg.Error.reservedSelector(0x0019)) { try cfg.setItem(0x0019, data: []) }
        #expect(throws: FwCfg.Error.reservedSelector(0x0020)) { try cfg.setItem(0x0020, data: []) }
        #expect(throws: FwCfg.Error.reservedSelector(0x4025)) { try cfg.setItem(0x4025, data: []) }
    }
}
