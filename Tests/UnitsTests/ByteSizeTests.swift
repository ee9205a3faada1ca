import Testing
import Units

/// The one size grammar every size option uses.
struct ByteSizeTests {
    @Test(arguments: [
        // Every spelling of a unit means the same binary multiple.
        ("1K", 1 << 10), ("1k", 1 << 10), ("1KB", 1 << 10), ("1kb", 1 << 10), ("1KiB", 1 << 10), ("1kib", 1 << 10),
        ("256M", 256 << 20), ("256MB", 256 << 20), ("256MiB", 256 << 20), ("256mb", 256 << 20),
        ("2G", 2 << 30), ("2GiB", 2 << 30), ("3T", 3 << 40), ("1P", 1 << 50), ("1PiB", 1 << 50), ("2E", 2 << 60),
        ("512B", 512), ("512b", 512), ("0", 0), (" 64M ", 64 << 20),
        // Fractions that come to whole bytes.
        ("1.5G", 3 << 29), ("0.5K", 512), ("2.25M", 9 << 18), ("1.0T", 1 << 40),
    ] as [(String, UInt64)])
    func spellingsOfAUnit(text: String, bytes: UInt64) throws {
        #expect(try ByteSize.parse(text, defaultUnitShift: ByteSize.bytes) == bytes)
        #expect(try ByteSize.parse(text, defaultUnitShift: ByteSize.mebibytes) == bytes)
    }

    @Test func aPlainNumberTakesTheCallersUnit() throws {
        #expect(try ByteSize.parse("512") == 512 << 20)
        #expect(try ByteSize.parse("512", defaultUnitShift: ByteSize.bytes) == 512)
        #expect(try ByteSize.parse("1.5") == 3 << 19)
        #expect(throws: ByteSize.Error.fractionalBytes("1.5")) { try ByteSize.parse("1.5", defaultUnitShift: ByteSize.bytes) }
    }

    @Test(arguments: ["", " ", "M", "lots", "12Q", "1MM", "1Mi", "1 M", "1iB", "-1G", "+1G", "1.G", ".5G", "1.5.5G", "1e3", "0x10", "1,5G", "١٢M"])
    func notASize(text: String) {
        #expect(throws: ByteSize.Error.invalid(text)) { try ByteSize.parse(text) }
    }

    @Test func tooLargeAndInexactValuesAreRefused() throws {
        #expect(throws: ByteSize.Error.tooLarge("16E")) { try ByteSize.parse("16E") }
        #expect(throws: ByteSize.Error.tooLarge("99999999999999999999")) { try ByteSize.parse("99999999999999999999", defaultUnitShift: 0) }
        #expect(throws: ByteSize.Error.tooLarge("17179869184G")) { try ByteSize.parse("17179869184G") }
        #expect(throws: ByteSize.Error.tooLarge("16.5E")) { try ByteSize.parse("16.5E") }
        #expect(throws: ByteSize.Error.fractionalBytes("1.1K")) { try ByteSize.parse("1.1K") }
        #expect(throws: ByteSize.Error.fractionalBytes("0.5B")) { try ByteSize.parse("0.5B") }
        #expect(try ByteSize.parse("18446744073709551615", defaultUnitShift: 0) == UInt64.max)
        #expect(try ByteSize.parse("15.5E") == 31 << 59)
    }

    @Test func messagesNameTheText() {
        #expect(ByteSize.Error.invalid("lots").description.contains("'lots'"))
        #expect(ByteSize.Error.invalid("lots").description.contains("256M"))
        #expect(ByteSize.Error.tooLarge("16E").description == "size '16E' is too large")
    }
}
