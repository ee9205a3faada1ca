import GuestMemory

/// A run of consecutive balloon pages (4 KiB each, whatever the guest's page size).
public struct PageRange: Equatable, Sendable {
    /// First page frame number.
    public var first: UInt64
    /// Number of pages.
    public var count: UInt64

    public init(first: UInt64, count: UInt64) {
        self.first = first
        self.count = count
    }

    /// One past the last page frame number.
    public var end: UInt64 { first + count }
}

/// What handing pages back to the host did.
public struct DiscardResult: Equatable, Sendable {
    /// Pages whose memory went back to the host.
    public var discarded: UInt64 = 0
    /// Pages outside guest RAM (ignored).
    public var outsideRAM: UInt64 = 0
    /// Pages inside RAM that madvise refused (left as they were).
    public var failed: UInt64 = 0

    public init(discarded: UInt64 = 0, outsideRAM: UInt64 = 0, failed: UInt64 = 0) {
        self.discarded = discarded
        self.outsideRAM = outsideRAM
        self.failed = failed
    }

    static func += (a: inout DiscardResult, b: DiscardResult) {
        a.discarded += b.discarded
        a.outsideRAM += b.outsideRAM
        a.failed += b.failed
    }
}

/// Page-frame-number handling for the balloon: coalescing guest arrays into ranges and
/// returning ranges to the host with MADV_DONTNEED, page by page checked against guest RAM.
public enum BalloonPages {
    /// Balloon page size (virtio 1.x §5.5.6: addresses divided by 4096, independent of the guest's page size).
    public static let pageSize: UInt64 = 4096
    public static let pageShift: UInt64 = 12

    /// Sorts `pfns`, drops duplicates and merges neighbours into ranges.
    public static func coalesce(_ pfns: [UInt32]) -> [PageRange] {
        var ranges: [PageRange] = []
        for pfn in pfns.sorted() {
            let p = UInt64(pfn)
            if let last = ranges.last, p <= last.end {
                if p == last.end { ranges[ranges.count - 1].count += 1 }
                continue
            }
            ranges.append(PageRange(first: p, count: 1))
        }
        return ranges
    }

    /// Counts the pages of `range` that lie wholly inside guest RAM, split into pieces that
    /// each sit inside one region, without touching memory.
    public static func pieces(of range: PageRange, in memory: GuestMemory) -> (pieces: [(region: GuestMemoryRegion, offset: UInt64, length: UInt64)], outsideRAM: UInt64) {
        var pieces: [(GuestMemoryRegion, UInt64, UInt64)] = []
        // Pages from 2^52 on have no 64-bit address: they are outside RAM by definition.
        let addressablePages: UInt64 = 1 << (64 - pageShift)
        let (end, overflow) = range.first.addingReportingOverflow(range.count)
        let last = min(overflow ? UInt64.max : end, addressablePages)
        guard range.first < last else { return ([], range.count) }
        var outside = range.count - (last - range.first)
        var page = range.first
        while page < last {
            let address = page << pageShift
            guard let (region, offset) = memory.region(containing: address) else {
                // Skip the hole up to the next region's first whole page (or the end of the range).
                var next = last
                if let start = memory.regions.first(where: { $0.guestAddress > address })?.guestAddress {
                    next = min(last, start / pageSize + (start % pageSize == 0 ? 0 : 1))
                }
                let skip = max(next, page + 1) - page
                outside += skip
                page += skip
                continue
            }
            // Whole pages of this region from `address` on, up to the end of the range.
            let wholePages = (region.size - offset) / pageSize
            guard wholePages > 0 else {
                outside += 1  // the page straddles the end of the region
                page += 1
                continue
            }
            let take = min(wholePages, last - page)
            pieces.append((region, offset, take * pageSize))
            page += take
        }
        return (pieces, outside)
    }

    /// Gives the pages of `ranges` back to the host (their contents read as zero afterwards).
    public static func discard(_ ranges: [PageRange], in memory: GuestMemory) -> DiscardResult {
        var result = DiscardResult()
        for range in ranges {
            let (pieces, outside) = pieces(of: range, in: memory)
            result.outsideRAM += outside
            for piece in pieces {
                let pages = piece.length / pageSize
                guard piece.offset <= UInt64(Int.max), piece.length <= UInt64(Int.max) else {
                    result.failed += pages
                    continue
                }
                do {
                    try memory.discard(at: piece.region.guestAddress + piece.offset, length: piece.length)
                    result.discarded += pages
                } catch {
                    result.failed += pages
                }
            }
        }
        return result
    }

    /// Counts the pages of `ranges` inside and outside guest RAM without changing anything.
    public static func check(_ ranges: [PageRange], in memory: GuestMemory) -> (inside: UInt64, outsideRAM: UInt64) {
        var inside: UInt64 = 0
        var outside: UInt64 = 0
        for range in ranges {
            let (pieces, o) = pieces(of: range, in: memory)
            outside += o
            inside += pieces.reduce(0) { $0 + $1.length / pageSize }
        }
        return (inside, outside)
    }

    /// The whole 4 KiB pages inside the guest buffer `address ..< address + length`
    /// (a free-page report): the start rounds up and the end down.
    public static func wholePages(address: UInt64, length: UInt64) -> PageRange? {
        let (end, overflow) = address.addingReportingOverflow(length)
        guard !overflow else { return nil }
        let firstPage = address / pageSize + (address % pageSize == 0 ? 0 : 1)
        let endPage = end / pageSize
        guard endPage > firstPage else { return nil }
        return PageRange(first: firstPage, count: endPage - firstPage)
    }
}
