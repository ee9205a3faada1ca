import BinaryCoding
import Testing

struct DecodingErrorTests {
    // MARK: Limits

    @Test func inputSizeIsCheckedFirst() throws {
        let bytes = try encode("hello")  // 7 bytes
        #expect(decodingError(String.self, bytes, limits: .init(maxInputSize: 6))
            == .limitExceeded(path: "", limit: .inputSize, value: 7, maximum: 6, offset: 0))
        #expect(try decode(String.self, from: bytes, limits: .init(maxInputSize: 7)) == "hello")
        // Garbage over the size limit fails on its size, not its content.
        #expect(decodingError(Int.self, [0xFF, 0xFF], limits: .init(maxInputSize: 1))
            == .limitExceeded(path: "", limit: .inputSize, value: 2, maximum: 1, offset: 0))
    }

    @Test func depth() throws {
        #expect(Tree.bytes(depth: 3) == [0x0A, 0x01, 0x0A, 0x01, 0x0A, 0x00])
        #expect(try encode(Tree(depth: 64)) == Tree.bytes(depth: 64))
        #expect(decodingError(Tree.self, Tree.bytes(depth: 64)) == nil)
        #expect(decodingError(Tree.self, Tree.bytes(depth: 65))
            == .limitExceeded(path: String(repeating: "[0]", count: 64), limit: .depth, value: 65, maximum: 64, offset: 128))
        #expect(decodingError(Tree.self, Tree.bytes(depth: 3), limits: .init(maxDepth: 2))
            == .limitExceeded(path: "[0][0]", limit: .depth, value: 3, maximum: 2, offset: 4))
    }

    @Test func veryDeepInputFailsWithoutExhaustingTheStack() {
        let bytes = Tree.bytes(depth: 200_000)
        #expect(decodingError(Tree.self, bytes)?.isLimitExceeded(.depth) == true)
        // Skipped as the value of an unknown key, it fails the same way. The keyed container is at
        // depth 1, the unknown value at offset 23, so its array at depth 65 is its 64th.
        let withDeepUnknown = [0x0B, 0x03, 0x06] + Array("memory".utf8) + [0x04, 0x01, 0x04] + Array("cpus".utf8) + [0x05, 0x02]
            + [0x04] + Array("junk".utf8) + bytes
        #expect(decodingError(RoundTripTests.ConfigV1.self, withDeepUnknown)
            == .limitExceeded(path: "junk", limit: .depth, value: 65, maximum: 64, offset: 23 + 2 * 63))
    }

    @Test func skippedValuesRespectTheDepthLimit() throws {
        struct Known: Decodable { var known: Int }
        func document(unknownDepth: Int) -> [UInt8] {
            [0x0B, 0x02, 0x05] + Array("known".utf8) + [0x05, 0x02, 0x07] + Array("unknown".utf8) + Tree.bytes(depth: unknownDepth)
        }
        // The keyed container is depth 1, so 63 arrays inside it reach depth 64.
        #expect(decodingError(Known.self, document(unknownDepth: 63)) == nil)
        #expect(decodingError(Known.self, document(unknownDepth: 64))?.isLimitExceeded(.depth) == true)
    }

    @Test func containerCount() throws {
        let limits = BinaryDecoder.Limits(maxContainerCount: 3)
        #expect(decodingError([Bool].self, try encode([true, true, true]), limits: limits) == nil)
        #expect(decodingError([Bool].self, try encode([true, true, true, false]), limits: limits)
            == .limitExceeded(path: "", limit: .containerCount, value: 4, maximum: 3, offset: 0))
        #expect(decodingError([String: Int].self, try encode(["a": 1, "b": 2, "c": 3, "d": 4]), limits: limits)
            == .limitExceeded(path: "", limit: .containerCount, value: 4, maximum: 3, offset: 0))
    }

    @Test func hugeCountsAndLengthsFailBeforeAllocating() {
        let huge = varint(1 << 60)
        let unlimited = BinaryDecoder.Limits(maxContainerCount: .max, maxStringLength: .max, maxByteStringLength: .max)
        #expect(decodingError([Int].self, [0x0A] + huge + [0x05, 0x00])
            == .limitExceeded(path: "", limit: .containerCount, value: 1 << 60, maximum: 1 << 20, offset: 0))
        #expect(decodingError([Int].self, [0x0A] + huge + [0x05, 0x00], limits: unlimited) == .truncated(path: "", offset: 0))
        #expect(decodingError([String: Int].self, [0x0B] + huge, limits: unlimited) == .truncated(path: "", offset: 0))
        #expect(decodingError([UInt8].self, [0x09] + huge + [1, 2, 3])
            == .limitExceeded(path: "", limit: .byteStringLength, value: 1 << 60, maximum: 256 << 20, offset: 0))
        #expect(decodingError([UInt8].self, [0x09] + huge + [1, 2, 3], limits: unlimited) == .truncated(path: "", offset: 0))
        #expect(decodingError(String.self, [0x08] + varint(UInt64(Int.max)) + [0x61], limits: unlimited) == .truncated(path: "", offset: 0))
        #expect(decodingError(String.self, [0x08] + varint(.max) + [0x61], limits: unlimited)
            == .limitExceeded(path: "", limit: .stringLength, value: .max, maximum: .max, offset: 0))
        // An array announcing more elements than bytes left, each needing at least one.
        #expect(decodingError([Int?].self, [0x0A, 0x03, 0x01, 0x01]) == .truncated(path: "", offset: 0))
    }

    @Test func stringAndKeyLengths() throws {
        let limits = BinaryDecoder.Limits(maxStringLength: 3)
        #expect(decodingError(String.self, try encode("abc"), limits: limits) == nil)
        #expect(decodingError(String.self, try encode("abcd"), limits: limits)
            == .limitExceeded(path: "", limit: .stringLength, value: 4, maximum: 3, offset: 0))
        #expect(decodingError(RoundTripTests.ConfigV1.self, try encode(RoundTripTests.ConfigV1(memory: 1, cpus: 1)), limits: limits)
            == .limitExceeded(path: "", limit: .stringLength, value: 6, maximum: 3, offset: 2))
    }

    @Test func byteStringLength() throws {
        let limits = BinaryDecoder.Limits(maxByteStringLength: 2)
        #expect(decodingError([UInt8].self, try encode([UInt8]([1, 2])), limits: limits) == nil)
        #expect(decodingError([[UInt8]].self, try encode([[UInt8]([1, 2, 3])]), limits: limits)
            == .limitExceeded(path: "[0]", limit: .byteStringLength, value: 3, maximum: 2, offset: 2))
    }

    // MARK: Truncation

    @Test func everyPrefixOfACompositeValueIsTruncated() throws {
        let bytes = try encode(MachineSnapshot.sample(xsaveSize: 256, msrCount: 6, cpuidCount: 4))
        for length in 0..<bytes.count {
            let error = decodingError(MachineSnapshot.self, Array(bytes.prefix(length)))
            #expect(error?.isTruncated == true, "prefix of \(length) bytes: \(String(describing: error))")
        }
        #expect(decodingError(MachineSnapshot.self, bytes) == nil)
    }

    @Test func truncatedScalars() {
        #expect(decodingError(Int.self, []) == .truncated(path: "", offset: 0))
        #expect(decodingError(UInt64.self, [0x04, 0x80]) == .truncated(path: "", offset: 0))
        #expect(decodingError(Double.self, [0x07, 1, 2, 3]) == .truncated(path: "", offset: 0))
        #expect(decodingError(Float.self, [0x06, 1, 2, 3]) == .truncated(path: "", offset: 0))
        #expect(decodingError([Float].self, [0x0A, 0x02, 0x06, 0, 0, 0, 0, 0x06, 0]) == .truncated(path: "[1]", offset: 7))
    }

    // MARK: Kinds and ranges

    struct FakeVCPU: Encodable { var lapic: String }
    struct FakeSnapshot: Encodable { var vcpus: [FakeVCPU] }
    struct RealVCPU: Decodable { var lapic: [UInt8] }
    struct RealSnapshot: Decodable { var vcpus: [RealVCPU] }

    @Test func typeMismatchesNameThePathAndBothKinds() throws {
        let bytes = try encode(FakeSnapshot(vcpus: [FakeVCPU(lapic: "a"), FakeVCPU(lapic: "b")]))
        let error = decodingError(RealSnapshot.self, bytes)
        #expect(error == .typeMismatch(path: "vcpus[0].lapic", expected: "bytes", found: "string", offset: 18))
        #expect(error?.description == "vcpus[0].lapic: expected bytes, found string at offset 18")

        #expect(decodingError(Bool.self, try encode(1)) == .typeMismatch(path: "", expected: "bool", found: "signed integer", offset: 0))
        #expect(decodingError(Bool.self, try encode(UInt8(1))) == .typeMismatch(path: "", expected: "bool", found: "unsigned integer", offset: 0))
        #expect(decodingError(Int.self, try encode(true)) == .typeMismatch(path: "", expected: "integer", found: "bool", offset: 0))
        #expect(decodingError(String.self, [0x01]) == .typeMismatch(path: "", expected: "string", found: "nil", offset: 0))
        #expect(decodingError(Float.self, try encode(1.0)) == .typeMismatch(path: "", expected: "float32", found: "float64", offset: 0))
        #expect(decodingError(Double.self, try encode(Float(1))) == .typeMismatch(path: "", expected: "float64", found: "float32", offset: 0))
        #expect(decodingError(MSR.self, try encode([1])) == .typeMismatch(path: "", expected: "keyed container", found: "array", offset: 0))
        #expect(decodingError([Int].self, try encode(MSR(index: 1, value: 2))) == .typeMismatch(path: "", expected: "array", found: "keyed container", offset: 0))
        #expect(decodingError([UInt8].self, try encode([1, 2] as [UInt16])) == .typeMismatch(path: "", expected: "bytes", found: "array", offset: 0))
        #expect(decodingError([Int].self, try encode([UInt8]([1]))) == .typeMismatch(path: "", expected: "array", found: "bytes", offset: 0))
    }

    struct WideMSR: Encodable { var index: UInt64, value: UInt64 }

    @Test func integersOutOfRange() throws {
        #expect(decodingError(UInt8.self, try encode(300)) == .integerOutOfRange(path: "", value: "300", type: "UInt8", offset: 0))
        #expect(decodingError(UInt.self, try encode(-1)) == .integerOutOfRange(path: "", value: "-1", type: "UInt", offset: 0))
        #expect(decodingError(Int64.self, try encode(UInt64.max))
            == .integerOutOfRange(path: "", value: "18446744073709551615", type: "Int64", offset: 0))
        #expect(decodingError(Int8.self, try encode(-129)) == .integerOutOfRange(path: "", value: "-129", type: "Int8", offset: 0))
        #expect(decodingError([UInt16].self, try encode([1, 65536])) == .integerOutOfRange(path: "[1]", value: "65536", type: "UInt16", offset: 4))
        #expect(decodingError(MSR.self, try encode(WideMSR(index: 1 << 40, value: 0)))
            == .integerOutOfRange(path: "index", value: "1099511627776", type: "UInt32", offset: 8))
    }

    @Test func nonCanonicalVarints() {
        #expect(decodingError(UInt64.self, [0x04, 0x80, 0x00]) == .malformedVarint(path: "", offset: 0))
        #expect(decodingError(UInt64.self, [0x04, 0xFF, 0x00]) == .malformedVarint(path: "", offset: 0))
        #expect(decodingError(UInt64.self, [0x04] + Array(repeating: 0xFF, count: 9) + [0x02]) == .malformedVarint(path: "", offset: 0))
        #expect(decodingError(UInt64.self, [0x04] + Array(repeating: 0x80, count: 10) + [0x01]) == .malformedVarint(path: "", offset: 0))
        #expect(decodingError(UInt64.self, [0x04] + Array(repeating: 0xFF, count: 9) + [0x01]) == nil)
        #expect(decodingError(Int.self, [0x05, 0x80, 0x80, 0x00]) == .malformedVarint(path: "", offset: 0))
        #expect(decodingError(String.self, [0x08, 0x81, 0x00, 0x61]) == .malformedVarint(path: "", offset: 0))
        #expect(decodingError([Int].self, [0x0A, 0x80, 0x00]) == .malformedVarint(path: "", offset: 0))
        #expect(decodingError([String: Int].self, [0x0B, 0x01, 0x81, 0x00, 0x61, 0x05, 0x00]) == .malformedVarint(path: "", offset: 2))
    }

    /// Overlong varints of every length, with more input after them and without.
    @Test func overlongVarintsOfEveryLength() {
        for length in 2...10 {
            let overlong = [UInt8](repeating: 0x80, count: length - 1) + [0x00]
            let padding: [UInt8] = [0x04, 0x01, 0x04, 0x02, 0x04, 0x03, 0x04, 0x04, 0x04, 0x05, 0x04, 0x06]
            #expect(decodingError(UInt64.self, [0x04] + overlong) == .malformedVarint(path: "", offset: 0), "length \(length)")
            #expect(decodingError([UInt64].self, [0x0A, 0x07, 0x04] + overlong + padding) == .malformedVarint(path: "[0]", offset: 2), "length \(length)")
            // Skipped (an unknown key) rather than read: the same check.
            #expect(decodingError(RoundTripTests.ConfigV1.self, [0x0B, 0x01, 0x01, 0x7A, 0x04] + overlong + padding)
                == .malformedVarint(path: "z", offset: 4), "length \(length)")
        }
        // Ten bytes is the most, and the tenth carries only the 64th bit.
        #expect(decodingError([UInt64].self, [0x0A, 0x01, 0x04] + Array(repeating: 0xFF, count: 10) + [0x01]) == .malformedVarint(path: "[0]", offset: 2))
        #expect(decodingError([UInt64].self, [0x0A, 0x02, 0x04] + Array(repeating: 0xFF, count: 9) + [0x01, 0x04, 0x00]) == nil)
    }

    @Test(arguments: [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0x80], [0x61, 0xF8, 0x88, 0x80, 0x80, 0x80]] as [[UInt8]])
    func invalidUTF8(_ utf8: [UInt8]) {
        #expect(decodingError(String.self, [0x08, UInt8(utf8.count)] + utf8) == .invalidUTF8(path: "", offset: 0))
        #expect(decodingError([String: Int].self, [0x0B, 0x01, UInt8(utf8.count)] + utf8 + [0x05, 0x00]) == .invalidUTF8(path: "", offset: 2))
    }

    @Test func duplicateKeys() throws {
        let small: [UInt8] = [0x0B, 0x02, 0x01, 0x61, 0x04, 0x01, 0x01, 0x61, 0x04, 0x02]
        #expect(decodingError([String: UInt8].self, small) == .duplicateKey(path: "a", offset: 6))
        // Even where the type reads other keys only.
        struct Other: Decodable { var b: Int? }
        #expect(decodingError(Other.self, small) == .duplicateKey(path: "a", offset: 6))
        // A container past the linear-search size, indexed by hash.
        var large: [UInt8] = [0x0B, 21]
        for i in 0..<20 { large += [0x03] + Array("k\(i + 10)".utf8) + [0x04, UInt8(i)] }
        #expect(decodingError([String: UInt8].self, large + [0x03] + Array("k29".utf8) + [0x04, 0x00])
            == .duplicateKey(path: "k29", offset: 2 + 20 * 6))
        #expect(try decode([String: UInt8].self, from: large + [0x03] + Array("k30".utf8) + [0x04, 0x00]).count == 21)
    }

    @Test func trailingBytes() throws {
        #expect(decodingError(Int.self, try encode(1) + [0x00]) == .trailingBytes(offset: 2, count: 1))
        #expect(decodingError(MSR.self, try encode(MSR(index: 1, value: 2)) + [0x01, 0x01]) == .trailingBytes(offset: 18, count: 2))
        #expect(decodingError([Int].self, try encode([1]) + [0x01]) == .trailingBytes(offset: 4, count: 1))
        #expect(decodingError(Tree.self, Tree.bytes(depth: 2) + [0x03]) == .trailingBytes(offset: 4, count: 1))
    }

    @Test func unknownTags() {
        #expect(decodingError(Int.self, [0x00]) == .unknownTag(path: "", tag: 0x00, offset: 0))
        #expect(decodingError(Int?.self, [0x0C]) == .unknownTag(path: "", tag: 0x0C, offset: 0))
        #expect(decodingError([Int].self, [0x0A, 0x01, 0xFF]) == .unknownTag(path: "[0]", tag: 0xFF, offset: 2))
        #expect(decodingError(Int.self, [0x0C])?.description == "top level: unknown tag 0x0c at offset 0")
        struct Known: Decodable { var known: Int? }
        #expect(decodingError(Known.self, [0x0B, 0x01, 0x01, 0x78, 0x0A, 0x01, 0x20]) == .unknownTag(path: "x", tag: 0x20, offset: 6))
    }

    // MARK: Types' own errors

    @Test func missingRequiredKeyNamesItsPath() throws {
        struct MaybeLAPIC: Encodable { var lapic: [UInt8]? }
        let error = decodingError(RealSnapshot.self, try encode(["vcpus": [MaybeLAPIC(lapic: [1]), MaybeLAPIC(lapic: nil)]]))
        #expect(error == .keyNotFound(path: "vcpus[1].lapic"))
        #expect(error?.description == "vcpus[1].lapic: required key not found")
    }

    struct Port: Codable {
        var number: UInt16
        init(from decoder: any Decoder) throws {
            number = try decoder.singleValueContainer().decode(UInt16.self)
            guard number != 0 else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "port 0 is reserved"))
            }
        }
    }

    struct Listener: Codable { var port: Port }

    struct VectorError: Error, CustomStringConvertible {
        var vector: Int
        var description: String { "vector \(vector) is out of range" }
    }

    struct Vector: Decodable {
        init(from decoder: any Decoder) throws {
            let vector = try decoder.singleValueContainer().decode(Int.self)
            guard vector < 256 else { throw VectorError(vector: vector) }
        }
    }

    struct Timer: Decodable {
        var mode: UInt8
        enum CodingKeys: CodingKey { case mode }
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            mode = try container.decode(UInt8.self, forKey: .mode)
            guard mode < 4 else { throw DecodingError.dataCorruptedError(forKey: .mode, in: container, debugDescription: "mode \(mode) unknown") }
        }
    }

    @Test func validatingInitializersSurfaceTheirMessage() throws {
        let error = decodingError(Listener.self, try encode(["port": 0]))
        #expect(error == .invalidValue(path: "port", reason: "port 0 is reserved"))
        #expect(error?.description == "port: port 0 is reserved")
        #expect(decodingError([String: [Vector]].self, try encode(["vectors": [32, 300]]))
            == .invalidValue(path: "vectors[1]", reason: "vector 300 is out of range"))
        #expect(decodingError([Timer].self, try encode([["mode": 9]])) == .invalidValue(path: "[0].mode", reason: "mode 9 unknown"))
        #expect(decodingError(RoundTripTests.Mode.self, try encode("bogus"))
            == .invalidValue(path: "", reason: "Cannot initialize Mode from invalid String value bogus"))
        #expect(decodingError(ByteLayoutTests.Command.self, try encode(["pause": [String: Int](), "balloon": [:]]))?.isInvalidValue == true)
    }

    struct Triple: Decodable {
        init(from decoder: any Decoder) throws {
            var container = try decoder.unkeyedContainer()
            for _ in 0..<3 { _ = try container.decode(UInt8.self) }
        }
    }

    struct BadBars: Encodable { var slot: UInt8 = 1, bars = 0 }

    @Test func typeMismatchInsideAHandWrittenInitializer() throws {
        #expect(decodingError(RoundTripTests.PCIDevice.self, try encode(BadBars()))
            == .typeMismatch(path: "bars", expected: "array", found: "signed integer", offset: 14))
    }

    @Test func readingPastTheEndOfAnArray() throws {
        #expect(decodingError(Triple.self, try encode([1, 2] as [UInt8]))?.isTypeMismatch == true)
        #expect(decodingError(Triple.self, try encode([1, 2] as [UInt16])) == .endOfArray(path: "[2]", count: 2))
        #expect(decodingError([Triple].self, try encode([[1, 2] as [UInt16]]))?.description == "[0][2]: the array has only 2 elements")
    }

    @Test func superDecoderNeedsItsKey() throws {
        struct NoSuper: Encodable { var slot: UInt8 = 1, bars: [UInt64] = [] }
        #expect(decodingError(RoundTripTests.PCIDevice.self, try encode(NoSuper())) == .keyNotFound(path: "super"))
    }

    @Test func descriptionsStayOnOneLineAndEscapeInputText() throws {
        let key = "line\nbreak \u{1B}[2J \"quoted\""
        let error = decodingError([String: Int].self, try encode([key: "x"]))
        let path = "[\"line\\u{a}break \\u{1b}[2J \\\"quoted\\\"\"]"
        #expect(error == .typeMismatch(path: path, expected: "integer", found: "string", offset: 3 + key.utf8.count))
        #expect(error?.description == path + ": expected integer, found string at offset 27")
        let long = decodingError(RoundTripTests.Mode.self, try encode(String(repeating: "\r", count: 1000)))
        #expect(long?.description.contains("\r") == false)
        #expect((long?.description.count ?? 0) < 2000)
    }

    struct Escaper: Decodable {
        enum Keys: CodingKey { case memory, cpus }
        let decoder: any Decoder
        let container: KeyedDecodingContainer<Keys>
        init(from decoder: any Decoder) throws {
            self.decoder = decoder
            container = try decoder.container(keyedBy: Keys.self)
        }
    }

    @Test func aDecoderUsedAfterDecodeReturnsFailsSafely() throws {
        let escaped = try decode(Escaper.self, from: encode(RoundTripTests.ConfigV1(memory: 1, cpus: 2)))
        #expect(throws: BinaryCodingError.self) { try escaped.container.decode(UInt64.self, forKey: .memory) }
        #expect(escaped.container.allKeys.isEmpty)
        #expect(!escaped.container.contains(.cpus))
        #expect(throws: BinaryCodingError.self) { try escaped.decoder.singleValueContainer() }
        #expect(throws: BinaryCodingError.self) { try escaped.decoder.unkeyedContainer() }
    }
}
