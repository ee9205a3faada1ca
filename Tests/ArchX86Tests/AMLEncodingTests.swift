import Testing

@testable import ArchX86

/// Decodes a PkgLength independently of the encoder: returns (encoded length, bytes used).
func decodePackageLength(_ bytes: [UInt8], at offset: Int = 0) -> (length: Int, size: Int) {
    let lead = bytes[offset]
    let following = Int(lead >> 6)
    if following == 0 { return (Int(lead & 0x3F), 1) }
    var length = Int(lead & 0x0F)
    for i in 0..<following {
        length |= Int(bytes[offset + 1 + i]) << (4 + 8 * i)
    }
    return (length, following + 1)
}

@Suite("AML PkgLength")
struct AMLPackageLengthTests {
    @Test("one-byte lengths up to 63 count themselves", arguments: [0, 1, 30, 62])
    func oneByte(body: Int) throws {
        #expect(try AML.packageLength(bodyLength: body) == [UInt8(body + 1)])
    }

    @Test("boundaries between the 1-, 2-, 3- and 4-byte forms")
    func boundaries() throws {
        // 63 bytes of body need 2 PkgLength bytes: total 65 = 0x41 → lead 0x41 (1 follow byte, nibble 1), then 0x04.
        #expect(try AML.packageLength(bodyLength: 63) == [0x41, 0x04])
        // Largest 2-byte: total 0xFFF.
        #expect(try AML.packageLength(bodyLength: 0xFFF - 2) == [0x4F, 0xFF])
        // Next body needs 3 bytes: total 0xFFE + 3 = 0x1001.
        #expect(try AML.packageLength(bodyLength: 0xFFE) == [0x81, 0x00, 0x01])
        // Largest 3-byte: total 0xFFFFF.
        #expect(try AML.packageLength(bodyLength: 0xFFFFF - 3) == [0x8F, 0xFF, 0xFF])
        // 4 bytes: total 0xFFFFE + 4 = 0x100002.
        #expect(try AML.packageLength(bodyLength: 0xFFFFE) == [0xC2, 0x00, 0x00, 0x01])
        // Largest encodable: total 2^28 - 1.
        #expect(try AML.packageLength(bodyLength: (1 << 28) - 5) == [0xCF, 0xFF, 0xFF, 0xFF])
    }

    @Test("lengths beyond 28 bits are rejected, not truncated")
    func tooLarge() {
        #expect(throws: AMLError.objectTooLarge((1 << 28) - 4)) { try AML.packageLength(bodyLength: (1 << 28) - 4) }
        #expect(throws: AMLError.self) { try AML.packageLength(bodyLength: -1) }
        #expect(throws: AMLError.self) { try AML.packageLength(bodyLength: Int.max) }
    }

    @Test("every encoding decodes to body plus its own size")
    func roundTrip() throws {
        var bodies = Array(0...300) + [4090, 4091, 4092, 4093, 4094, 4095, 4096, 70_000]
        bodies += [(1 << 20) - 4, (1 << 20) - 3, (1 << 20) - 2, (1 << 20), (1 << 28) - 5]
        for body in bodies {
            let encoded = try AML.packageLength(bodyLength: body)
            let (length, size) = decodePackageLength(encoded)
            #expect(size == encoded.count)
            #expect(length == body + encoded.count, "body \(body)")
            // Shortest form: one byte fewer would not have been enough.
            if encoded.count > 1 {
                let shorterLimit = encoded.count == 2 ? 0x3F : 1 << (4 + 8 * (encoded.count - 2))
                #expect(body + encoded.count - 1 >= shorterLimit, "body \(body) could use \(encoded.count - 1) bytes")
            }
        }
    }
}

@Suite("AML names")
struct AMLNameTests {
    @Test func segments() throws {
        #expect(try AML.nameSegment("_HID") == Array("_HID".utf8))
        #expect(try AML.nameSegment("RTC") == Array("RTC_".utf8))
        #expect(try AML.nameSegment("A") == Array("A___".utf8))
        #expect(try AML.nameSegment("S5_0") == Array("S5_0".utf8))
    }

    @Test("invalid segments", arguments: ["", "ABCDE", "1ABC", "ab", "A-B", "PCI.", "É"])
    func invalidSegments(segment: String) {
        #expect(throws: AMLError.invalidNameSegment(segment)) { try AML.nameSegment(segment) }
    }

    @Test func paths() throws {
        #expect(try AML.nameString("COM1") == Array("COM1".utf8))
        #expect(try AML.nameString("\\_SB") == [0x5C] + Array("_SB_".utf8))
        #expect(try AML.nameString("\\_SB.PCI0") == [0x5C, 0x2E] + Array("_SB_PCI0".utf8))
        #expect(try AML.nameString("\\_SB.PCI0.COM1") == [0x5C, 0x2F, 3] + Array("_SB_PCI0COM1".utf8))
        #expect(try AML.nameString("^^FOO") == [0x5E, 0x5E] + Array("FOO_".utf8))
        #expect(try AML.nameString("^A.B") == [0x5E, 0x2E] + Array("A___B___".utf8))
        #expect(try AML.nameString("\\") == [0x5C, 0x00])
    }

    @Test("invalid paths", arguments: ["", "A..B", "\\_SB.", ".A", "\\^A", "A B"])
    func invalidPaths(path: String) {
        #expect(throws: AMLError.self) { try AML.nameString(path) }
    }

    @Test("more than 255 segments")
    func tooManySegments() {
        let path = Array(repeating: "A", count: 256).joined(separator: ".")
        #expect(throws: AMLError.invalidNamePath(path)) { try AML.nameString(path) }
    }
}

@Suite("AML data objects")
struct AMLDataTests {
    @Test func integers() {
        #expect(AML.integer(0) == [0x00])
        #expect(AML.integer(1) == [0x01])
        #expect(AML.integer(2) == [0x0A, 0x02])
        #expect(AML.integer(0xFF) == [0x0A, 0xFF])
        #expect(AML.integer(0x100) == [0x0B, 0x00, 0x01])
        #expect(AML.integer(0xFFFF) == [0x0B, 0xFF, 0xFF])
        #expect(AML.integer(0x1_0000) == [0x0C, 0x00, 0x00, 0x01, 0x00])
        #expect(AML.integer(0xFFFF_FFFF) == [0x0C, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(AML.integer(0x1_0000_0000) == [0x0E, 0, 0, 0, 0, 1, 0, 0, 0])
        #expect(AML.integer(0x0123_4567_89AB_CDEF) == [0x0E, 0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01])
        #expect(AML.integer(UInt64.max) == [0x0E] + Array(repeating: 0xFF, count: 8))
    }

    @Test func strings() throws {
        #expect(try AML.string("LNRO0005") == [0x0D] + Array("LNRO0005".utf8) + [0x00])
        #expect(try AML.string("") == [0x0D, 0x00])
        #expect(throws: AMLError.self) { try AML.string("caf\u{E9}") }
        #expect(throws: AMLError.self) { try AML.string("a\u{0}b") }
    }

    @Test("EISA IDs", arguments: [
        ("PNP0A03", UInt32(0x030A_D041)), ("PNP0A08", 0x080A_D041), ("PNP0501", 0x0105_D041),
        ("PNP0303", 0x0303_D041), ("PNP0B00", 0x000B_D041), ("PNP0C02", 0x020C_D041), ("ABC1234", 0x3412_4304),
    ])
    func eisaIDs(id: String, value: UInt32) throws {
        #expect(try AML.eisaIDValue(id) == value)
        #expect(try AML.eisaID(id) == [0x0C, UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF), UInt8((value >> 16) & 0xFF), UInt8(value >> 24)])
    }

    @Test("invalid EISA IDs", arguments: ["pnp0501", "PNP050", "PNP05011", "PNP050G", "PN10501", "PNP0a03", ""])
    func invalidEISAIDs(id: String) {
        #expect(throws: AMLError.invalidEISAID(id)) { try AML.eisaIDValue(id) }
    }

    @Test func buffers() throws {
        #expect(try AML.buffer([0xAA, 0xBB]) == [0x11, 0x05, 0x0A, 0x02, 0xAA, 0xBB])
        #expect(try AML.buffer([]) == [0x11, 0x02, 0x00])
        let big = try AML.buffer(Array(repeating: 0x55, count: 300))
        #expect(big[0] == 0x11)
        let (length, size) = decodePackageLength(big, at: 1)
        #expect(size == 2)
        #expect(length == big.count - 1)
        #expect(Array(big[(1 + size)..<(1 + size + 3)]) == [0x0B, 0x2C, 0x01])  // WordConst 300
    }

    @Test func packages() throws {
        #expect(try AML.package([AML.integer(5), AML.integer(0)]) == [0x12, 0x05, 0x02, 0x0A, 0x05, 0x00])
        #expect(try AML.package([]) == [0x12, 0x02, 0x00])

        // 255 elements still use PackageOp with a one-byte count; 256 need VarPackageOp.
        let p255 = try AML.package(Array(repeating: AML.integer(1), count: 255))
        #expect(p255[0] == 0x12)
        let (len255, size255) = decodePackageLength(p255, at: 1)
        #expect(len255 == p255.count - 1)
        #expect(p255[1 + size255] == 255)

        let p256 = try AML.package(Array(repeating: AML.integer(1), count: 256))
        #expect(p256[0] == 0x13)
        let (len256, size256) = decodePackageLength(p256, at: 1)
        #expect(len256 == p256.count - 1)
        #expect(Array(p256[(1 + size256)..<(1 + size256 + 3)]) == [0x0B, 0x00, 0x01])
    }
}

@Suite("AML named objects")
struct AMLTermTests {
    @Test func name() throws {
        #expect(try AML.name("_UID", AML.integer(1)) == [0x08] + Array("_UID".utf8) + [0x01])
        #expect(try AML.name("\\_S5", AML.integer(0)) == [0x08, 0x5C] + Array("_S5_".utf8) + [0x00])
    }

    @Test func device() throws {
        let device = try AML.device("COM1", [AML.name("_UID", AML.integer(1))])
        // ExtOpPrefix DeviceOp PkgLength NameSeg TermList
        #expect(device == [0x5B, 0x82, 0x0B] + Array("COM1".utf8) + [0x08] + Array("_UID".utf8) + [0x01])
    }

    @Test func scopeWithLargeBody() throws {
        let devices = try (0..<10).map { try AML.device("D00\($0)", [AML.name("_UID", AML.integer(UInt64($0)))]) }
        let scope = try AML.scope("\\_SB", devices)
        #expect(scope[0] == 0x10)
        let (length, size) = decodePackageLength(scope, at: 1)
        #expect(size == 2)
        #expect(length == scope.count - 1)
        #expect(Array(scope[(1 + size)..<(1 + size + 5)]) == [0x5C] + Array("_SB_".utf8))
    }

    @Test func methods() throws {
        let sta = try AML.method("_STA", [AML.returnValue(AML.integer(0x0F))])
        #expect(sta == [0x14, 0x09] + Array("_STA".utf8) + [0x00, 0xA4, 0x0A, 0x0F])
        let serialized = try AML.method("FOO", argumentCount: 3, serialized: true, syncLevel: 2, [])
        #expect(serialized == [0x14, 0x06] + Array("FOO_".utf8) + [0x03 | 0x08 | 0x20])
        #expect(throws: AMLError.invalidMethodFlags(argumentCount: 8, syncLevel: 0)) { try AML.method("FOO", argumentCount: 8, []) }
        #expect(throws: AMLError.invalidMethodFlags(argumentCount: 0, syncLevel: 16)) { try AML.method("FOO", syncLevel: 16, []) }
    }

    @Test("device helper emits _HID, _UID, _STA and _CRS in order")
    func deviceHelper() throws {
        let bytes = try AML.device("VR00", hardwareID: .string("LNRO0005"), uniqueID: 7, resources: [.irqNoFlags([5])])
        let expected = try AML.device(
            "VR00",
            [
                AML.name("_HID", AML.string("LNRO0005")),
                AML.name("_UID", AML.integer(7)),
                AML.method("_STA", [AML.returnValue(AML.integer(0x0F))]),
                AML.name("_CRS", AML.resourceTemplate([.irqNoFlags([5])])),
            ])
        #expect(bytes == expected)
    }
}
