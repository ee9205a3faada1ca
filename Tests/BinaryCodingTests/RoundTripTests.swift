import BinaryCoding
import Testing

struct RoundTripTests {
    @Test func integersAtTheirLimits() throws {
        #expect(try roundTrip([Int8.min, -1, 0, 1, .max]) == [Int8.min, -1, 0, 1, .max])
        #expect(try roundTrip([Int16.min, -1, 0, .max]) == [Int16.min, -1, 0, .max])
        #expect(try roundTrip([Int32.min, -1, 0, .max]) == [Int32.min, -1, 0, .max])
        #expect(try roundTrip([Int64.min, -1, 0, .max]) == [Int64.min, -1, 0, .max])
        #expect(try roundTrip([Int.min, -1, 0, .max]) == [Int.min, -1, 0, .max])
        #expect(try roundTrip([UInt8.min, 127, 128, .max]) == [UInt8.min, 127, 128, .max])
        #expect(try roundTrip([UInt16.min, .max]) == [UInt16.min, .max])
        #expect(try roundTrip([UInt32.min, .max]) == [UInt32.min, .max])
        #expect(try roundTrip([UInt64.min, 1 << 63, .max]) == [UInt64.min, 1 << 63, .max])
        #expect(try roundTrip([UInt.min, .max]) == [UInt.min, .max])
        // Top level, not in an array: single-value containers.
        #expect(try roundTrip(Int64.min) == Int64.min)
        #expect(try roundTrip(UInt64.max) == UInt64.max)
        #expect(try roundTrip(UInt8.max) == UInt8.max)
    }

    @Test func integersDecodeIntoAnyTypeThatHoldsThem() throws {
        #expect(try decode(Int.self, from: encode(UInt8(200))) == 200)
        #expect(try decode(Int8.self, from: encode(-1)) == -1)
        #expect(try decode(UInt16.self, from: encode(Int64(65535))) == 65535)
    }

    @Test func bools() throws {
        #expect(try roundTrip(true) == true)
        #expect(try roundTrip(false) == false)
        #expect(try roundTrip([true, false, true]) == [true, false, true])
    }

    @Test func floatsKeepTheirExactBits() throws {
        let floatBits: [UInt32] = [
            0x0000_0000, 0x8000_0000,  // +0, -0
            0x7F80_0000, 0xFF80_0000,  // ±infinity
            0x7FC0_0000, 0xFFC0_0001,  // quiet NaNs, one negative with a payload
            0x7FA0_0001,               // signalling NaN with a payload
            0x0000_0001, 0x3F80_0000,  // smallest subnormal, 1.0
        ]
        let floats = try roundTrip(floatBits.map(Float.init(bitPattern:)))
        #expect(floats.map(\.bitPattern) == floatBits)
        let doubleBits: [UInt64] = [
            0x0000_0000_0000_0000, 0x8000_0000_0000_0000,
            0x7FF0_0000_0000_0000, 0xFFF0_0000_0000_0000,
            0x7FF8_0000_0000_0000, 0xFFF8_0000_0000_0ABC,
            0x7FF4_0000_0000_0001,
            0x0000_0000_0000_0001, 0x3FF0_0000_0000_0000,
        ]
        let doubles = try roundTrip(doubleBits.map(Double.init(bitPattern:)))
        #expect(doubles.map(\.bitPattern) == doubleBits)
        #expect(try roundTrip(-0.0).bitPattern == (-0.0).bitPattern)
        #expect(try roundTrip(Float.nan).isNaN)
    }

    @Test(arguments: ["", "a", "héllo wörld", "日本語", "emoji 🚀 and flags 🇨🇭", "nul \u{0} inside", String(repeating: "x", count: 1000)])
    func strings(_ string: String) throws {
        #expect(try roundTrip(string) == string)
        #expect(try roundTrip([string]) == [string])
    }

    struct Optionals: Codable, Equatable {
        var present: Int?
        var absent: Int?
        var nested: Optionals2?
    }

    struct Optionals2: Codable, Equatable {
        var name: String?
        var bytes: [UInt8]?
    }

    @Test func optionals() throws {
        #expect(try roundTrip(Int?.none) == nil)
        #expect(try roundTrip(Int?.some(5)) == 5)
        #expect(try roundTrip([1, nil, 3] as [Int?]) == [1, nil, 3])
        let value = Optionals(present: 1, absent: nil, nested: Optionals2(name: nil, bytes: [1, 2]))
        #expect(try roundTrip(value) == value)
        #expect(try roundTrip(Optionals(present: nil, absent: nil, nested: nil)) == Optionals(present: nil, absent: nil, nested: nil))
        #expect(try roundTrip([UInt8]?.some([9])) == [9])
    }

    struct DoubleOptional: Codable, Equatable {
        var value: Int??
    }

    /// Swift's own `Optional` coding collapses `.some(nil)` to nil (it encodes `.some(.none)` as
    /// plain nil), in this format as in JSON; the outer level survives only where it is absent.
    @Test func nestedOptionalsCollapseAsSwiftCodesThem() throws {
        #expect(try roundTrip(Int??.some(.some(4))) == .some(.some(4)))
        #expect(try roundTrip(Int??.some(.none)) == .none)
        #expect(try roundTrip(Int??.none) == .none)
        #expect(try roundTrip(DoubleOptional(value: .some(.some(4)))) == DoubleOptional(value: .some(.some(4))))
        #expect(try roundTrip(DoubleOptional(value: .some(.none))) == DoubleOptional(value: .none))
        #expect(try roundTrip(DoubleOptional(value: .none)) == DoubleOptional(value: .none))
    }

    @Test func nestedStructsAndArraysOfStructs() throws {
        let snapshot = MachineSnapshot.sample()
        #expect(try roundTrip(snapshot) == snapshot)
        #expect(try roundTrip([snapshot.vcpus[0].msrs, []]) == [snapshot.vcpus[0].msrs, []])
    }

    struct Blobs: Codable, Equatable {
        var empty: [UInt8]
        var one: [UInt8]
        var page: [UInt8]
        var pages: [[UInt8]]
        var contiguous: ContiguousArray<UInt8>
    }

    @Test(arguments: [0, 1, 4096])
    func byteArraysAreByteStrings(count: Int) throws {
        let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let encoded = try encode(bytes)
        let header: [UInt8] = count < 128 ? [0x09, UInt8(count)] : [0x09, 0x80, 0x20]
        #expect(encoded == header + bytes)
        #expect(try decode([UInt8].self, from: encoded) == bytes)
        #expect(try roundTrip(ContiguousArray(bytes)) == ContiguousArray(bytes))

        let blobs = Blobs(empty: [], one: [0xAB], page: bytes, pages: [bytes, [1]], contiguous: ContiguousArray(bytes))
        let encodedBlobs = try encode(blobs)
        #expect(try decode(Blobs.self, from: encodedBlobs) == blobs)
        // Every byte array is stored once, as its bytes: the encoding is barely larger than them.
        let payload = 0 + 1 + count + (count + 1) + count
        #expect(encodedBlobs.count < payload + 70)
    }

    @Test func dictionaries() throws {
        let small = ["one": 1, "two": 2, "": 0, "with space": -5]
        #expect(try roundTrip(small) == small)
        // More than 16 keys: the decoder looks them up in a hash table.
        let large = Dictionary(uniqueKeysWithValues: (0..<300).map { ("key\($0)", $0) })
        #expect(try roundTrip(large) == large)
        let intKeys = [1: "a", -7: "b", 1000: "c"]
        #expect(try roundTrip(intKeys) == intKeys)
        #expect(try roundTrip([String: Int]()) == [:])
    }

    enum Mode: String, Codable { case hardware, emulated }
    enum Level: UInt8, Codable { case low = 1, high = 200 }

    @Test func enumsWithRawValues() throws {
        #expect(try roundTrip(Mode.emulated) == .emulated)
        #expect(try roundTrip([Level.low, .high]) == [.low, .high])
        #expect(try encode(Level.high) == encode(UInt8(200)))
    }

    @Test func enumsWithAssociatedValues() throws {
        let devices = MachineSnapshot.sample().devices
        #expect(try roundTrip(devices) == devices)
        for device in devices { #expect(try roundTrip(device) == device) }
    }

    class Device: Codable {
        var name: String
        init(name: String) { self.name = name }
    }

    final class PCIDevice: Device {
        var slot: UInt8
        var bars: [UInt64]
        init(name: String, slot: UInt8, bars: [UInt64]) {
            self.slot = slot
            self.bars = bars
            super.init(name: name)
        }
        enum CodingKeys: String, CodingKey { case slot, bars }
        required init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            slot = try container.decode(UInt8.self, forKey: .slot)
            bars = try container.decode([UInt64].self, forKey: .bars)
            try super.init(from: container.superDecoder())
        }
        override func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(slot, forKey: .slot)
            try container.encode(bars, forKey: .bars)
            try super.encode(to: container.superEncoder())
        }
    }

    @Test func classHierarchyWithSuperEncoder() throws {
        let device = PCIDevice(name: "virtio-net", slot: 3, bars: [0xFE00_0000, 0])
        let bytes = try encode(device)
        let decoded = try decode(PCIDevice.self, from: bytes)
        #expect(decoded.name == "virtio-net")
        #expect(decoded.slot == 3)
        #expect(decoded.bars == [0xFE00_0000, 0])
        // The superclass is the entry "super" holding a keyed container.
        struct Layout: Decodable {
            var superclass: [String: String]
            enum CodingKeys: String, CodingKey { case superclass = "super" }
        }
        #expect(try decode(Layout.self, from: bytes).superclass == ["name": "virtio-net"])
    }

    /// A subclass that shares its encoder with the superclass (`super.encode(to: encoder)`)
    /// continues the same keyed container.
    final class SharedContainerDevice: Device {
        var irq: UInt8
        init(name: String, irq: UInt8) {
            self.irq = irq
            super.init(name: name)
        }
        enum CodingKeys: String, CodingKey { case irq }
        required init(from decoder: any Decoder) throws {
            irq = try decoder.container(keyedBy: CodingKeys.self).decode(UInt8.self, forKey: .irq)
            try super.init(from: decoder)
        }
        override func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(irq, forKey: .irq)
            try super.encode(to: encoder)
        }
    }

    @Test func subclassSharingTheSuperclassContainer() throws {
        let bytes = try encode(SharedContainerDevice(name: "uart", irq: 4))
        let decoded = try decode(SharedContainerDevice.self, from: bytes)
        #expect(decoded.name == "uart" && decoded.irq == 4)
        struct Flat: Decodable { var irq: UInt8; var name: String }
        #expect(try decode(Flat.self, from: bytes).irq == 4)
    }

    /// Unkeyed `superEncoder()`/`superDecoder()`: the superclass is the next element.
    struct Tagged: Codable, Equatable {
        var tag: UInt8
        var device: String
        init(tag: UInt8, device: String) {
            self.tag = tag
            self.device = device
        }
        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            tag = try container.decode(UInt8.self)
            device = try container.superDecoder().singleValueContainer().decode(String.self)
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.unkeyedContainer()
            try container.encode(tag)
            var single = container.superEncoder().singleValueContainer()
            try single.encode(device)
        }
    }

    @Test func unkeyedSuperEncoder() throws {
        let value = Tagged(tag: 7, device: "rtc")
        #expect(try roundTrip(value) == value)
        #expect(try encode(value) == [0x0A, 0x02, 0x04, 0x07, 0x08, 0x03] + Array("rtc".utf8))
    }

    struct ConfigV1: Codable, Equatable {
        var memory: UInt64
        var cpus: Int
    }

    struct ConfigV2: Codable, Equatable {
        var memory: UInt64
        var hugePages: Bool
        var cpus: Int
        var topology: [String: [Int]]
        var firmware: [UInt8]?
    }

    @Test func unknownKeysAreIgnored() throws {
        let newer = ConfigV2(memory: 1 << 30, hugePages: true, cpus: 4, topology: ["socket0": [0, 1]], firmware: [1, 2, 3])
        #expect(try decode(ConfigV1.self, from: encode(newer)) == ConfigV1(memory: 1 << 30, cpus: 4))
    }

    @Test func encodingIsDeterministic() throws {
        let first = try encode(MachineSnapshot.sample())
        let second = try encode(MachineSnapshot.sample())
        #expect(first == second)
    }

    @Test func decodesFromARawBufferWithoutCopying() throws {
        let snapshot = MachineSnapshot.sample()
        let bytes = try encode(snapshot)
        let decoded = try bytes.withUnsafeBytes { buffer in
            try BinaryDecoder().decode(MachineSnapshot.self, from: buffer)
        }
        #expect(decoded == snapshot)
    }

    @Test func largeArraysSpliceTheirCount() throws {
        let elements = (0..<300).map { UInt16($0) }
        let bytes = try encode(elements)
        #expect(Array(bytes.prefix(3)) == [0x0A, 0xAC, 0x02])
        #expect(try decode([UInt16].self, from: bytes) == elements)
        // Nested: the splice moves the inner array's bytes, and the outer array's count follows.
        let nested = [elements, [], elements]
        #expect(try roundTrip(nested) == nested)
        let wide = (0..<200).map { MSR(index: UInt32($0), value: UInt64($0) << 40) }
        #expect(try roundTrip(["msrs": wide]) == ["msrs": wide])
    }
}
