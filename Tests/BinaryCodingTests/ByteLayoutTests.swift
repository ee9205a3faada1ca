import BinaryCoding
import Testing

/// The exact bytes of small values: these pin the format, so any change to it fails here.
struct ByteLayoutTests {
    @Test func scalars() throws {
        #expect(try encode(Int?.none) == [0x01])
        #expect(try encode(false) == [0x02])
        #expect(try encode(true) == [0x03])
        #expect(try encode(UInt8(0)) == [0x04, 0x00])
        #expect(try encode(UInt8(127)) == [0x04, 0x7F])
        #expect(try encode(UInt8(128)) == [0x04, 0x80, 0x01])
        #expect(try encode(UInt16(300)) == [0x04, 0xAC, 0x02])
        #expect(try encode(UInt64.max) == [0x04] + Array(repeating: 0xFF, count: 9) + [0x01])
        #expect(try encode(0) == [0x05, 0x00])
        #expect(try encode(-1) == [0x05, 0x01])
        #expect(try encode(1) == [0x05, 0x02])
        #expect(try encode(Int8(-64)) == [0x05, 0x7F])
        #expect(try encode(Int64.min) == [0x05] + Array(repeating: 0xFF, count: 9) + [0x01])
        #expect(try encode(Int64.max) == [0x05, 0xFE] + Array(repeating: 0xFF, count: 8) + [0x01])
        #expect(try encode(Float(1)) == [0x06, 0x00, 0x00, 0x80, 0x3F])
        #expect(try encode(-0.0) == [0x07, 0, 0, 0, 0, 0, 0, 0, 0x80])
        #expect(try encode(Double(bitPattern: 0x0102_0304_0506_0708)) == [0x07, 8, 7, 6, 5, 4, 3, 2, 1])
        #expect(try encode("") == [0x08, 0x00])
        #expect(try encode("hé") == [0x08, 0x03, 0x68, 0xC3, 0xA9])
        #expect(try encode([UInt8]([1, 2])) == [0x09, 0x02, 0x01, 0x02])
        #expect(try encode(ContiguousArray<UInt8>([3])) == [0x09, 0x01, 0x03])
    }

    struct Point: Codable { var x = 1, y = -1 }
    struct Sparse: Codable {
        var absent: Int?
        var b: UInt8
    }
    enum Command: Codable, Equatable {
        case pause
        case balloon(mib: UInt32)
        case send(UInt8, String)
    }

    @Test func containers() throws {
        #expect(try encode([UInt16]([1, 2])) == [0x0A, 0x02, 0x04, 0x01, 0x04, 0x02])
        #expect(try encode([Int]()) == [0x0A, 0x00])
        #expect(try encode([[UInt8]]([[7], []])) == [0x0A, 0x02, 0x09, 0x01, 0x07, 0x09, 0x00])
        #expect(try encode(Point()) == [0x0B, 0x02, 0x01, 0x78, 0x05, 0x02, 0x01, 0x79, 0x05, 0x01])
        // A nil optional field is left out.
        #expect(try encode(Sparse(absent: nil, b: 9)) == [0x0B, 0x01, 0x01, 0x62, 0x04, 0x09])
        #expect(try encode(["k": true]) == [0x0B, 0x01, 0x01, 0x6B, 0x03])
    }

    @Test func enumsWithAssociatedValues() throws {
        #expect(try encode(Command.pause) == [0x0B, 0x01, 0x05] + Array("pause".utf8) + [0x0B, 0x00])
        #expect(try encode(Command.balloon(mib: 512))
            == [0x0B, 0x01, 0x07] + Array("balloon".utf8) + [0x0B, 0x01, 0x03] + Array("mib".utf8) + [0x04, 0x80, 0x04])
        #expect(try encode(Command.send(1, "a"))
            == [0x0B, 0x01, 0x04] + Array("send".utf8) + [0x0B, 0x02, 0x02] + Array("_0".utf8) + [0x04, 0x01]
                + [0x02] + Array("_1".utf8) + [0x08, 0x01, 0x61])
    }

    @Test func superclassUnderTheKeySuper() throws {
        let device = RoundTripTests.PCIDevice(name: "n", slot: 3, bars: [])
        #expect(try encode(device)
            == [0x0B, 0x03, 0x04] + Array("slot".utf8) + [0x04, 0x03, 0x04] + Array("bars".utf8) + [0x0A, 0x00]
                + [0x05] + Array("super".utf8) + [0x0B, 0x01, 0x04] + Array("name".utf8) + [0x08, 0x01, 0x6E])
    }

    struct Silent: Codable {
        init() {}
        init(from decoder: any Decoder) throws {}
        func encode(to encoder: any Encoder) throws {}
    }

    struct HoldsSilent: Codable { var silent = Silent() }

    @Test func aValueThatWritesNothingIsAnEmptyKeyedContainer() throws {
        #expect(try encode(Silent()) == [0x0B, 0x00])
        #expect(try encode(HoldsSilent()) == [0x0B, 0x01, 0x06] + Array("silent".utf8) + [0x0B, 0x00])
        #expect(try encode([Silent(), Silent()]) == [0x0A, 0x02, 0x0B, 0x00, 0x0B, 0x00])
    }

    /// Every varint length, read both near the end of the input and with more input after it
    /// (the decoder reads up to eight bytes at once when it can).
    @Test func varintsOfEveryLength() throws {
        for bits in 0...64 {
            let value: UInt64 = bits == 64 ? .max : (1 << UInt64(bits)) - 1
            let length = max(1, (bits + 6) / 7)
            let encoded = try encode(value)
            #expect(encoded == [0x04] + varint(value), "\(bits) bits")
            #expect(encoded.count == 1 + length, "\(bits) bits")
            #expect(try decode(UInt64.self, from: encoded) == value)
            #expect(try decode([UInt64].self, from: encode([value, value, 1, 2, 3, 4, 5, 6, 7, 8])) == [value, value, 1, 2, 3, 4, 5, 6, 7, 8])
        }
    }

    @Test func countsOf128AndMoreTakeMoreBytes() throws {
        let bytes = try encode([Bool](repeating: true, count: 128))
        #expect(bytes == [0x0A, 0x80, 0x01] + Array(repeating: 0x03, count: 128))
        let keyed = try encode(Dictionary(uniqueKeysWithValues: (0..<200).map { ("\($0)", $0) }))
        #expect(Array(keyed.prefix(3)) == [0x0B, 0xC8, 0x01])
    }
}
