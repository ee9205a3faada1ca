import Testing

@testable import ArchX86

@Suite("AML resource descriptors")
struct AMLResourceTests {
    @Test func io() throws {
        #expect(try AMLResource.io(minimum: 0x3F8, maximum: 0x3F8, alignment: 1, length: 8).encoded() == [0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08])
        #expect(throws: AMLError.self) { try AMLResource.io(minimum: 2, maximum: 1, alignment: 1, length: 1).encoded() }
    }

    @Test func irqNoFlags() throws {
        #expect(try AMLResource.irqNoFlags([4]).encoded() == [0x22, 0x10, 0x00])
        #expect(try AMLResource.irqNoFlags([8]).encoded() == [0x22, 0x00, 0x01])
        #expect(try AMLResource.irqNoFlags([1, 15]).encoded() == [0x22, 0x02, 0x80])
        #expect(throws: AMLError.self) { try AMLResource.irqNoFlags([16]).encoded() }
        #expect(throws: AMLError.self) { try AMLResource.irqNoFlags([]).encoded() }
    }

    @Test func memory32Fixed() throws {
        #expect(
            try AMLResource.memory32Fixed(base: 0xE000_0000, length: 0x1000_0000, writable: true).encoded()
                == [0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xE0, 0x00, 0x00, 0x00, 0x10])
        #expect(throws: AMLError.self) { try AMLResource.memory32Fixed(base: 0xFFFF_F000, length: 0x2000, writable: false).encoded() }
        #expect(throws: AMLError.self) { try AMLResource.memory32Fixed(base: 0, length: 0, writable: false).encoded() }
    }

    @Test("WordBusNumber 0–255 as a producer with fixed min and max")
    func wordBusNumber() throws {
        let bytes = try AMLResource.wordBusNumber(minimum: 0, maximum: 255).encoded()
        #expect(bytes == [0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00, 0, 0, 0x00, 0x00, 0xFF, 0x00, 0, 0, 0x00, 0x01])
    }

    @Test func wordIO() throws {
        let bytes = try AMLResource.wordIO(minimum: 0x0D00, maximum: 0xFFFF).encoded()
        #expect(bytes == [0x88, 0x0D, 0x00, 0x01, 0x0C, 0x03, 0, 0, 0x00, 0x0D, 0xFF, 0xFF, 0, 0, 0x00, 0xF3])
        // 0x0000–0xFFFF would need a length of 0x10000.
        #expect(throws: AMLError.self) { try AMLResource.wordIO(minimum: 0, maximum: 0xFFFF).encoded() }
        #expect(throws: AMLError.self) { try AMLResource.wordIO(minimum: 5, maximum: 4).encoded() }
    }

    @Test func dwordMemory() throws {
        let bytes = try AMLResource.dwordMemory(base: 0xC000_0000, length: 0x2000_0000, cacheability: .nonCacheable, writable: true).encoded()
        var expected: [UInt8] = [0x87, 0x17, 0x00, 0x00, 0x0C, 0x01]
        for value: UInt32 in [0, 0xC000_0000, 0xDFFF_FFFF, 0, 0x2000_0000] {
            expected += [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF), UInt8((value >> 16) & 0xFF), UInt8(value >> 24)]
        }
        #expect(bytes == expected)
        #expect(bytes.count == 3 + 23)
        #expect(throws: AMLError.self) { try AMLResource.dwordMemory(base: 0xF000_0000, length: 0x2000_0000, cacheability: .cacheable, writable: true).encoded() }
        #expect(throws: AMLError.self) { try AMLResource.dwordMemory(base: 0, length: 0, cacheability: .cacheable, writable: true).encoded() }
    }

    @Test func qwordMemory() throws {
        let bytes = try AMLResource.qwordMemory(base: 0x40_0000_0000, length: 0x40_0000_0000, cacheability: .prefetchable, writable: false).encoded()
        #expect(bytes.count == 3 + 43)
        #expect(Array(bytes[0..<6]) == [0x8A, 0x2B, 0x00, 0x00, 0x0C, 0x06])
        let maximum = bytes[22..<30].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        #expect(maximum == 0x7F_FFFF_FFFF)
        #expect(throws: AMLError.self) { try AMLResource.qwordMemory(base: UInt64.max, length: 2, cacheability: .cacheable, writable: true).encoded() }
    }

    @Test func extendedInterrupt() throws {
        #expect(
            try AMLResource.interrupt(gsis: [5], edgeTriggered: true, activeLow: false, shared: false).encoded()
                == [0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00])
        #expect(
            try AMLResource.interrupt(gsis: [16, 17], edgeTriggered: false, activeLow: true, shared: true).encoded()
                == [0x89, 0x0A, 0x00, 0x0D, 0x02, 16, 0, 0, 0, 17, 0, 0, 0])
        #expect(throws: AMLError.self) { try AMLResource.interrupt(gsis: [], edgeTriggered: true, activeLow: false, shared: false).encoded() }
    }

    @Test("template ends with an end tag; checksum 0 by default")
    func templateDefault() throws {
        let template = try AML.resourceTemplate([.irqNoFlags([4])])
        #expect(template == [0x11, 0x08, 0x0A, 0x05, 0x22, 0x10, 0x00, 0x79, 0x00])
    }

    @Test("computed checksum makes descriptor bytes sum to zero")
    func templateChecksum() throws {
        let resources: [AMLResource] = [
            .io(minimum: 0x3F8, maximum: 0x3F8, alignment: 1, length: 8), .irqNoFlags([4]),
            .dwordMemory(base: 0xC000_0000, length: 0x1000, cacheability: .cacheable, writable: true),
        ]
        let template = try AML.resourceTemplate(resources, computeChecksum: true)
        let (_, size) = decodePackageLength(template, at: 1)
        let data = Array(template[(1 + size + 2)...])  // skip BufferOp, PkgLength, ByteConst size
        #expect(data.count == 8 + 3 + 26 + 2)
        #expect(data[data.count - 2] == 0x79)
        #expect(data.reduce(UInt8(0), &+) == 0)
        #expect(data.last != 0)
    }
}
