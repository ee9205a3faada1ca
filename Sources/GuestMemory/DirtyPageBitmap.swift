import CSkiffSystem

/// One bit per 4 KiB guest page of one region, set by the monitor's own writes into guest
/// RAM (used rings, block reads, received frames, random bytes, boot writes). KVM's dirty
/// log only sees writes made by vCPUs; a snapshot or migration needs both.
///
/// Bits are set with relaxed atomic ORs from any thread and taken (read and cleared) with
/// atomic exchanges, so a write racing with a take is never lost: it lands in this round
/// or the next.
@safe public final class DirtyPageBitmap: @unchecked Sendable {
    // @unchecked: the words are only reached through the C atomics below.
    private let words: UnsafeMutablePointer<UInt64>
    /// Number of 64-bit words.
    public let wordCount: Int
    /// Number of pages covered.
    public let pageCount: Int

    public init(pages: Int) {
        pageCount = max(pages, 0)
        wordCount = (pageCount + 63) / 64
        unsafe words = UnsafeMutablePointer<UInt64>.allocate(capacity: max(wordCount, 1))
        unsafe words.initialize(repeating: 0, count: max(wordCount, 1))
    }

    deinit { unsafe words.deallocate() }

    /// Marks pages `first ..< first + count` (clamped to the bitmap).
    @inline(__always)
    public func mark(firstPage first: Int, count: Int) {
        guard first >= 0, first < pageCount, count > 0 else { return }
        let end = count > pageCount - first ? pageCount : first + count
        var page = first
        while page < end {
            let word = page >> 6
            let bit = page & 63
            let span = min(64 - bit, end - page)
            let mask: UInt64 = span == 64 ? ~0 : ((1 << UInt64(span)) - 1) << UInt64(bit)
            unsafe csystem_atomic_or64(words + word, mask)
            page += span
        }
    }

    /// Returns the bitmap and clears it.
    public func take() -> [UInt64] {
        var out = [UInt64](repeating: 0, count: wordCount)
        for i in 0..<wordCount { out[i] = unsafe csystem_atomic_exchange64(words + i, 0) }
        return out
    }

    /// Returns the bitmap without clearing it.
    public func peek() -> [UInt64] {
        (0..<wordCount).map { unsafe csystem_atomic_load64(words + $0) }
    }

    /// Sets every bit (everything counts as dirty, e.g. when tracking starts).
    public func markAll() {
        mark(firstPage: 0, count: pageCount)
    }
}
