import Testing
@testable import GuestMemory

struct GuestMemoryTests {
    /// RAM like a 3.5 GiB VM would have, scaled down: [0, 1 MiB) and [4 MiB, 6 MiB).
    func makeMemory() throws -> GuestMemory {
        try GuestMemory(ranges: [(0, 1 << 20), (4 << 20, 2 << 20)])
    }

    @Test func readsAndWritesInsideRegions() throws {
        let m = try makeMemory()
        try m.store(UInt64(0x1122_3344_5566_7788), at: 0x1000)
        #expect(try m.load(UInt64.self, at: 0x1000) == 0x1122_3344_5566_7788)
        #expect(try m.readBytes(at: 0x1000, count: 2) == [0x88, 0x77])
        try m.write([1, 2, 3], at: (6 << 20) - 3)  // ends exactly at the end of RAM
        #expect(try m.readBytes(at: (6 << 20) - 3, count: 3) == [1, 2, 3])
        #expect(m.totalSize == 3 << 20)
    }

    static let outside: [(UInt64, Int)] = [
        (0x0F_FFFF, 2),                       // crosses the end of the first region
        (0x20_0000, 1),                       // in the hole
        (0x5F_FFFF, 2),                       // one byte past the end of RAM
        (UInt64.max, 1),                      // wraps
        (UInt64.max - 3, 8),                  // wraps mid-access
        (0x3F_FFFF, 2),                       // starts in the hole, ends in RAM
    ]

    @Test(arguments: outside)
    func rangesOutsideRAMAreRejected(address: UInt64, count: Int) throws {
        let m = try makeMemory()
        #expect(!m.contains(address, length: UInt64(count)))
        #expect(throws: GuestMemoryError.self) { _ = try m.readBytes(at: address, count: count) }
        #expect(throws: GuestMemoryError.self) { try m.write([UInt8](repeating: 0xaa, count: count), at: address) }
        #expect(throws: GuestMemoryError.self) { try m.zero(at: address, length: UInt64(count)) }
    }

    @Test func negativeCountsAndHugeLengthsAreRejected() throws {
        let m = try makeMemory()
        #expect(throws: GuestMemoryError.self) { _ = try m.readBytes(at: 0, count: -1) }
        #expect(throws: GuestMemoryError.self) { try m.zero(at: 0, length: UInt64.max) }
        #expect(throws: (any Error).self) { try m.withHostPointer(at: 0, length: 1 << 40, writing: false) { _ in } }
    }

    @Test func invalidLayoutsAreRefused() throws {
        #expect(throws: GuestMemoryError.self) { _ = try GuestMemory(ranges: [(0, 0)]) }
        #expect(throws: GuestMemoryError.self) { _ = try GuestMemory(ranges: [(0, 4097)]) }
        #expect(throws: GuestMemoryError.self) { _ = try GuestMemory(ranges: [(0, 1 << 20), (0x8000, 1 << 20)]) }
    }

    @Test func ringIndicesUseAtomicAlignedAccess() throws {
        let m = try makeMemory()
        try m.storeReleasing16(0xbeef, at: 0x2002)
        #expect(try m.loadAcquiring16(at: 0x2002) == 0xbeef)
        #expect(throws: GuestMemoryError.self) { _ = try m.loadAcquiring16(at: 0x2003) }
        #expect(throws: GuestMemoryError.self) { try m.storeReleasing16(1, at: (1 << 20) - 1) }
    }

    @Test func regionLookup() throws {
        let m = try makeMemory()
        let r = try #require(m.region(containing: (4 << 20) + 10))
        #expect(r.region.guestAddress == 4 << 20 && r.offset == 10)
        #expect(m.region(containing: 2 << 20) == nil)
    }
}
