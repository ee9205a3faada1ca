/// Guest memory statistics from the balloon's stats queue (virtio 1.x §5.5.6.3): an array of
/// 10-byte entries, each a little-endian 16-bit tag and 64-bit value.
///
/// Entries with tags the device does not know are ignored (§5.5.6.3.2); a later entry with
/// the same tag replaces an earlier one.
public struct BalloonStatistics: Sendable, Equatable {
    /// The statistics Skiff knows: the spec's tags 0–9 and Linux's extensions 10–15.
    public enum Tag: UInt16, Sendable, CaseIterable, Comparable {
        case swapIn = 0, swapOut, majorFaults, minorFaults, freeMemory, totalMemory, availableMemory, diskCaches
        case hugetlbAllocations, hugetlbFailures, oomKills, allocationStalls, asyncScans, directScans, asyncReclaims, directReclaims

        /// The name Linux and QEMU use for the statistic.
        public var name: String {
            switch self {
            case .swapIn: return "swap-in"
            case .swapOut: return "swap-out"
            case .majorFaults: return "major-faults"
            case .minorFaults: return "minor-faults"
            case .freeMemory: return "free-memory"
            case .totalMemory: return "total-memory"
            case .availableMemory: return "available-memory"
            case .diskCaches: return "disk-caches"
            case .hugetlbAllocations: return "hugetlb-allocations"
            case .hugetlbFailures: return "hugetlb-failures"
            case .oomKills: return "oom-kills"
            case .allocationStalls: return "alloc-stalls"
            case .asyncScans: return "async-scans"
            case .directScans: return "direct-scans"
            case .asyncReclaims: return "async-reclaims"
            case .directReclaims: return "direct-reclaims"
            }
        }

        public static func < (a: Tag, b: Tag) -> Bool { a.rawValue < b.rawValue }
    }

    /// Size of one entry in the guest's buffer.
    public static let entrySize = 10

    /// The values the guest supplied, by tag.
    public private(set) var values: [Tag: UInt64] = [:]
    /// Entries whose tag Skiff does not know (ignored).
    public private(set) var unknownEntries = 0

    public init() {}

    /// Parses whole entries from `bytes`; a trailing partial entry is ignored.
    public init(parsing bytes: some Collection<UInt8>) {
        var entry: [UInt8] = []
        entry.reserveCapacity(Self.entrySize)
        for b in bytes {
            entry.append(b)
            guard entry.count == Self.entrySize else { continue }
            let rawTag = UInt16(entry[0]) | UInt16(entry[1]) << 8
            var value: UInt64 = 0
            for i in 0..<8 { value |= UInt64(entry[2 + i]) << (8 * UInt64(i)) }
            if let tag = Tag(rawValue: rawTag) {
                values[tag] = value
            } else {
                unknownEntries += 1
            }
            entry.removeAll(keepingCapacity: true)
        }
    }

    public subscript(tag: Tag) -> UInt64? { values[tag] }

    /// One `name value` line per statistic, in tag order.
    public var lines: [String] {
        values.keys.sorted().compactMap { tag in values[tag].map { "\(tag.name) \($0)" } }
    }
}
