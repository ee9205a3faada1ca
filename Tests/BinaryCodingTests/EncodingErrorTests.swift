import BinaryCoding
import Testing

struct EncodingErrorTests {
    enum Keys: String, CodingKey { case a, items, count, field }

    struct SameKeyTwice: Encodable {
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(1, forKey: .a)
            try container.encode(2, forKey: .a)
        }
    }

    struct ManyKeysThenARepeat: Encodable {
        struct Key: CodingKey {
            var stringValue: String
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
            var intValue: Int? { nil }
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            for i in 0..<40 { try container.encode(true, forKey: Key(stringValue: "k\(i)")) }
            try container.encode(true, forKey: Key(stringValue: "k7"))
        }
    }

    @Test func duplicateKeysAreNotWritten() {
        #expect(encodingError(SameKeyTwice()) == .duplicateKey(path: "a", offset: 6))
        #expect(encodingError(ManyKeysThenARepeat())?.isDuplicateKey == true)
    }

    struct OutOfOrder: Encodable {
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            var items = container.nestedUnkeyedContainer(forKey: .items)
            try container.encode(1, forKey: .count)
            try items.encode(2)
        }
    }

    @Test func containersFilledOutOfOrderAreRefused() {
        let error = encodingError(OutOfOrder())
        #expect(error?.isInvalidValue == true)
        #expect(error?.description.hasPrefix("items: container written after a later value was started") == true)
    }

    @Test func depthLimit() {
        #expect(encodingError(Tree(depth: 64)) == nil)
        #expect(encodingError(Tree(depth: 65))
            == .limitExceeded(path: String(repeating: "[0]", count: 64), limit: .depth, value: 65, maximum: 64, offset: 128))
        #expect(encodingError(Tree(depth: 3), encoder: BinaryEncoder(maxDepth: 2))?.isLimitExceeded(.depth) == true)
    }

    final class Node: Encodable {
        var next: Node?
    }

    @Test func referenceCyclesFailInsteadOfOverflowingTheStack() {
        let node = Node()
        node.next = node
        #expect(encodingError(node)?.isLimitExceeded(.depth) == true)
        node.next = nil
    }

    struct Rejecting: Encodable {
        var useEncodingError: Bool
        struct Unencodable: Error, CustomStringConvertible { var description: String { "handle is closed" } }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(1, forKey: .a)
            guard !useEncodingError else {
                throw EncodingError.invalidValue(self, .init(codingPath: encoder.codingPath, debugDescription: "no encoding for this state"))
            }
            throw Unencodable()
        }
    }

    @Test func typesOwnErrorsSurfaceWithTheirMessage() {
        #expect(encodingError(["field": Rejecting(useEncodingError: true)]) == .invalidValue(path: "field", reason: "no encoding for this state"))
        #expect(encodingError([Rejecting(useEncodingError: false)]) == .invalidValue(path: "[0]", reason: "handle is closed"))
    }

    @Test func int128IsNotSupported() {
        #expect(encodingError(Int128(1))?.isInvalidValue == true)
        #expect(encodingError([UInt128(1)])?.isInvalidValue == true)
    }

    struct TwoValues: Encodable {
        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(1)
            try container.encode(2)
        }
    }

    struct KeyedThenUnkeyed: Encodable {
        func encode(to encoder: any Encoder) throws {
            var keyed = encoder.container(keyedBy: Keys.self)
            try keyed.encode(1, forKey: .a)
            var unkeyed = encoder.unkeyedContainer()
            try unkeyed.encode(2)
        }
    }

    @Test func misusedEncodersAreReported() {
        #expect(encodingError(TwoValues()) == .invalidValue(path: "", reason: "value encoded twice"))
        #expect(encodingError(["field": KeyedThenUnkeyed()])
            == .invalidValue(path: "field", reason: "array requested for a value already encoded as another kind"))
    }

    struct UnusedSuperEncoder: Encodable {
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            _ = container.superEncoder()
            try container.encode(true, forKey: .a)
            var items = container.nestedUnkeyedContainer(forKey: .items)
            _ = items.superEncoder()
        }
    }

    @Test func aSuperEncoderThatWritesNothingLeavesAnEmptyKeyedContainer() throws {
        #expect(try encode(UnusedSuperEncoder())
            == [0x0B, 0x03, 0x05] + Array("super".utf8) + [0x0B, 0x00, 0x01, 0x61, 0x03, 0x05] + Array("items".utf8) + [0x0A, 0x01, 0x0B, 0x00])
    }
}
