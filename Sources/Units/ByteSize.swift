/// Parses sizes the way QEMU's `-m` does: a plain number is MiB; suffixes K, M, G, T
/// (optionally followed by "iB" or "B") are binary multiples.
public enum ByteSize {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            switch self {
            case .invalid(let s): return "invalid size '\(s)': use a number with an optional K, M, G or T suffix (e.g. 256M, 2G)"
            }
        }
    }

    /// Bytes for `text`, e.g. "256M" → 268435456, "512" → 512 MiB.
    public static func parse(_ text: String, defaultUnitShift: UInt64 = 20) throws(Error) -> UInt64 {
        var s = Substring(text.trimmingCharacters(in: " "))
        guard !s.isEmpty else { throw .invalid(text) }
        for suffix in ["iB", "ib", "B", "b"] where s.hasSuffix(suffix) && s.count > suffix.count {
            let trimmed = s.dropLast(suffix.count)
            if let last = trimmed.last, "kKmMgGtT".contains(last) {
                s = trimmed
                break
            }
        }
        var shift = defaultUnitShift
        if let last = s.last, !last.isNumber {
            switch last {
            case "k", "K": shift = 10
            case "m", "M": shift = 20
            case "g", "G": shift = 30
            case "t", "T": shift = 40
            default: throw .invalid(text)
            }
            s = s.dropLast()
        }
        guard !s.isEmpty, s.allSatisfy(\.isNumber), let value = UInt64(s) else { throw .invalid(text) }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { throw .invalid(text) }
        return bytes
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}
