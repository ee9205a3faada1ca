import Units

/// Sizes in a spec, in the grammar of `skiff run --memory` (the `Units` target): a plain
/// number is MiB; K, M, G, ... are binary multiples ("256M", "1.5G", "65536K").
public enum SpecSize {
    /// Bytes for `text`, or nil when it is not a size or overflows.
    public static func parse(_ text: String) -> UInt64? {
        guard text.utf8.count <= 40 else { return nil }
        return try? ByteSize.parse(text, defaultUnitShift: ByteSize.mebibytes)
    }
}
