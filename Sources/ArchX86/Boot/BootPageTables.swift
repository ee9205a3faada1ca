/// The identity map a 64-bit kernel entry needs: 0–4 GiB with 2 MiB pages, PML4 at
/// `Layout.pml4Address`, PDPT at `Layout.pdptAddress` and `Layout.pageDirectoryCount` page
/// directories from `Layout.pageDirectoriesAddress`.
public enum BootPageTables {
    /// Page-table entry bits.
    public static let present: UInt64 = 1 << 0
    public static let writable: UInt64 = 1 << 1
    /// PS: the page-directory entry maps a 2 MiB page.
    public static let pageSize: UInt64 = 1 << 7

    public static let tableSize = 4096
    public static let entriesPerTable = 512
    public static let largePageSize: UInt64 = 2 << 20

    /// CR3 for the identity map.
    public static var cr3: UInt64 { Layout.pml4Address }

    /// Bytes of guest-physical memory the map covers (1 GiB per page directory).
    public static var mappedSize: UInt64 { UInt64(Layout.pageDirectoryCount) * UInt64(entriesPerTable) * largePageSize }

    /// Whole 4 KiB tables to write into guest memory: PML4, PDPT, then each page directory.
    public static func identityMap() -> [(address: UInt64, bytes: [UInt8])] {
        let directories = min(Layout.pageDirectoryCount, entriesPerTable)
        var pml4 = [UInt8](repeating: 0, count: tableSize)
        pml4.storeLittleEndian(Layout.pdptAddress | present | writable, at: 0)

        var pdpt = [UInt8](repeating: 0, count: tableSize)
        var writes: [(address: UInt64, bytes: [UInt8])] = [(Layout.pml4Address, pml4), (Layout.pdptAddress, pdpt)]
        for directory in 0..<directories {
            let directoryAddress = Layout.pageDirectoriesAddress + UInt64(directory * tableSize)
            pdpt.storeLittleEndian(directoryAddress | present | writable, at: directory * 8)
            var table = [UInt8](repeating: 0, count: tableSize)
            for entry in 0..<entriesPerTable {
                let physical = UInt64(directory * entriesPerTable + entry) * largePageSize
                table.storeLittleEndian(physical | present | writable | pageSize, at: entry * 8)
            }
            writes.append((directoryAddress, table))
        }
        writes[1].bytes = pdpt
        return writes
    }
}
