import ArchX86

/// Placement rules shared by every format: each segment inside one RAM range, at or above 1 MiB
/// (the low megabyte holds the VMM's boot structures), below 4 GiB for 32-bit entries, and no two
/// segments overlapping.
enum SegmentValidation {
    /// The first address a kernel segment may use.
    static let lowestKernelAddress = Layout.highMemoryStart
    /// The end of the 32-bit address space.
    static let fourGiB: UInt64 = 1 << 32

    static func validate(_ segments: [LoadSegment], memoryMap: MemoryMap, below4GiB: Bool, format: String)
        throws(LoaderError)
    {
        var ranges: [(range: AddressRange, index: Int)] = []
        ranges.reserveCapacity(segments.count)
        for (index, segment) in segments.enumerated() {
            let range = try AddressRange.checked(
                start: segment.address, size: UInt64(segment.bytes.count),
                "\(format) segment \(index) (file bytes)")
            let full = try AddressRange.checked(
                start: range.end, size: segment.zeroFill, "\(format) segment \(index) (zero fill)")
            let whole = AddressRange(start: range.start, clampedEnd: full.end)
            try checkPlacement(whole, what: "\(format) segment \(index)", memoryMap: memoryMap, below4GiB: below4GiB)
            ranges.append((whole, index))
        }
        try checkNoOverlap(ranges.map { ($0.range, "\(format) segment \($0.index)") }, kind: "segments")
    }

    /// Refuses a range below 1 MiB, outside every RAM range, or (for 32-bit entries) above 4 GiB.
    static func checkPlacement(_ range: AddressRange, what: String, memoryMap: MemoryMap, below4GiB: Bool)
        throws(LoaderError)
    {
        if range.start < lowestKernelAddress {
            throw .reservedMemory(
                "\(what) at \(range) starts below \(hex(lowestKernelAddress)); the low megabyte holds the VMM's boot structures"
            )
        }
        if below4GiB && range.end > fourGiB {
            throw .outsideRAM("\(what) at \(range) ends above 4 GiB, out of reach of a 32-bit entry")
        }
        try checkInRAM(range, what: what, memoryMap: memoryMap)
    }

    /// Refuses a range that is not entirely inside one RAM range of the memory map.
    static func checkInRAM(_ range: AddressRange, what: String, memoryMap: MemoryMap) throws(LoaderError) {
        for ram in memoryMap.ramRanges {
            guard let ramRange = AddressRange(start: ram.address, size: ram.size) else { continue }
            if ramRange.contains(range) { return }
        }
        let ram = memoryMap.ramRanges.compactMap { AddressRange(start: $0.address, size: $0.size)?.description }
        throw .outsideRAM("\(what) at \(range) is not inside guest RAM (\(ram.joined(separator: ", ")))")
    }

    /// Refuses any two non-empty ranges that share a byte; sorts, so n log n.
    static func checkNoOverlap(_ items: [(AddressRange, String)], kind: String) throws(LoaderError) {
        let sorted = items.filter { !$0.0.isEmpty }.sorted { $0.0.start < $1.0.start }
        guard sorted.count > 1 else { return }
        for i in 1..<sorted.count {
            let previous = sorted[i - 1]
            let current = sorted[i]
            if previous.0.overlaps(current.0) {
                throw .overlap("\(kind) overlap: \(previous.1) at \(previous.0) and \(current.1) at \(current.0)")
            }
        }
    }
}
