/// Sizes as people type them, one grammar for every option that takes one (`run --memory`,
/// `--console-log-size`, `--disk bw=`, `skiff image create|resize`, ...):
///
///     size   = number [unit]
///     number = digits [ "." digits ]          (a fraction needs a unit above bytes)
///     unit   = "B" | ("K"|"M"|"G"|"T"|"P"|"E") ["B" | "iB"]     (any case)
///
/// Units are binary multiples as in QEMU (`K`, `KB` and `KiB` all mean 1024 bytes). A plain
/// number takes the caller's default unit: MiB for `--memory` (like QEMU's `-m`), bytes for
/// image sizes and rates (like `qemu-img`).
public enum ByteSize {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        /// Not a size at all.
        case invalid(String)
        /// More than 2^64 - 1 bytes.
        case tooLarge(String)
        /// A fraction that does not come to a whole number of bytes (`1.1K`, `0.5B`).
        case fractionalBytes(String)

        public var description: String {
            switch self {
            case .invalid(let s):
                return "invalid size '\(s)': use a number with an optional unit B, K, M, G, T, P or E (powers of 1024; K, KB and KiB are the same), e.g. 256M or 1.5G"
            case .tooLarge(let s):
                return "size '\(s)' is too large"
            case .fractionalBytes(let s):
                return "size '\(s)' is not a whole number of bytes"
            }
        }
    }

    /// The shift of a plain number's unit: 0 for bytes, 20 for MiB.
    public static let bytes: UInt64 = 0
    public static let mebibytes: UInt64 = 20

    /// Bytes for `text`, e.g. "256M" → 268435456; "512" → 512 MiB with the default unit,
    /// 512 bytes with `defaultUnitShift: ByteSize.bytes`.
    public static func parse(_ text: String, defaultUnitShift: UInt64 = mebibytes) throws(Error) -> UInt64 {
        var s = Substring(text)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        // The unit: everything after the last digit.
        var unitStart = s.endIndex
        while unitStart > s.startIndex, let c = s[s.index(before: unitStart)].asciiValue, !(c >= 0x30 && c <= 0x39) {
            unitStart = s.index(before: unitStart)
        }
        let number = s[..<unitStart]
        guard let shift = unitShift(s[unitStart...], default: defaultUnitShift) else { throw .invalid(text) }
        // The number: digits, optionally a fraction.
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.utf8.allSatisfy(isDigit) else { throw .invalid(text) }
        guard let value = UInt64(whole) else { throw .tooLarge(text) }
        let multiplier: UInt64 = 1 << shift
        let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { throw .tooLarge(text) }
        guard parts.count == 2 else { return bytes }
        let fraction = parts[1]
        guard !fraction.isEmpty, fraction.utf8.count <= 18, fraction.utf8.allSatisfy(isDigit), let digits = UInt64(fraction) else {
            throw .invalid(text)
        }
        // digits / 10^n of the unit, exactly.
        var divisor: UInt64 = 1
        for _ in 0..<fraction.utf8.count { divisor *= 10 }
        let product = digits.multipliedFullWidth(by: multiplier)
        guard product.high < divisor else { throw .tooLarge(text) }
        let (quotient, remainder) = divisor.dividingFullWidth(product)
        guard remainder == 0 else { throw .fractionalBytes(text) }
        let (total, overflow2) = bytes.addingReportingOverflow(quotient)
        guard !overflow2 else { throw .tooLarge(text) }
        return total
    }

    /// The shift a unit suffix stands for, nil when it is not one.
    private static func unitShift(_ unit: Substring, default defaultShift: UInt64) -> UInt64? {
        if unit.isEmpty { return defaultShift }
        let lower = unit.lowercased()
        if lower == "b" { return 0 }
        guard let letter = lower.first else { return nil }
        let shift: UInt64
        switch letter {
        case "k": shift = 10
        case "m": shift = 20
        case "g": shift = 30
        case "t": shift = 40
        case "p": shift = 50
        case "e": shift = 60
        default: return nil
        }
        switch lower.dropFirst() {
        case "", "b", "ib": return shift
        default: return nil
        }
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
}
