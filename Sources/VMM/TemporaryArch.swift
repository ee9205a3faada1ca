// Bring-up stand-ins until the ArchX86 helpers land; removed at merge.
enum GDTEntry {
    static func encode(flags: UInt16, base: UInt32, limit: UInt32) -> UInt64 {
        let f = UInt64(flags), b = UInt64(base), l = UInt64(limit)
        return ((b & 0xff00_0000) << 32) | ((f & 0x0000_f0ff) << 40) | ((l & 0x000f_0000) << 32) | ((b & 0x00ff_ffff) << 16) | (l & 0x0000_ffff)
    }
}

enum ControlRegisters {
    static let cr0PE: UInt64 = 1
    static let cr0ET: UInt64 = 1 << 4
    static let cr0PG: UInt64 = 1 << 31
    static let cr4PAE: UInt64 = 1 << 5
    static let eferLME: UInt64 = 1 << 8
    static let eferLMA: UInt64 = 1 << 10
}

import ArchX86
enum BootPageTables {
    static func identityMap() -> [(address: UInt64, bytes: [UInt8])] {
        func le(_ v: [UInt64]) -> [UInt8] { v.flatMap { x in (0..<8).map { UInt8(truncatingIfNeeded: x >> (8 * $0)) } } }
        var writes: [(UInt64, [UInt8])] = []
        writes.append((Layout.pml4Address, le([Layout.pdptAddress | 3])))
        writes.append((Layout.pdptAddress, le((0..<4).map { Layout.pageDirectoriesAddress + UInt64($0) * 0x1000 | 3 })))
        for d in 0..<4 {
            writes.append((Layout.pageDirectoriesAddress + UInt64(d) * 0x1000, le((0..<512).map { (UInt64(d * 512 + $0) << 21) | 0x83 })))
        }
        return writes
    }
}
