#if canImport(Glibc)
import Glibc
#endif
import BinaryCoding

/// How guest RAM is laid out in a snapshot's memory file: the regions back to back, page
/// aligned, zero pages left as holes (the file is sparse), so the file can be mapped
/// MAP_PRIVATE as guest RAM and pages load only when the guest touches them.
///
/// A diff image holds only the pages written since its parent snapshot; `pages` says which
/// (a dirty page that is now all zeros is a hole that the bitmap still marks).
public struct MemoryImage: Codable, Sendable, Equatable {
    public struct Region: Codable, Sendable, Equatable {
        public var guestAddress: UInt64
        public var size: UInt64
        public var fileOffset: UInt64
        public init(guestAddress: UInt64, size: UInt64, fileOffset: UInt64) {
            self.guestAddress = guestAddress
            self.size = size
            self.fileOffset = fileOffset
        }
    }

    public static let pageSize: UInt64 = 4096
    /// Largest guest RAM a snapshot may describe (4 TiB).
    public static let maxMemory: UInt64 = 4 << 40

    public var regions: [Region]
    /// Size of the memory file in bytes.
    public var fileSize: UInt64
    /// CRC-64/XZ over every non-zero page written, each prefixed by its page number (UInt64
    /// LE, counted across the regions): identifies the contents without hashing holes.
    public var digest: UInt64
    /// Pages with content (non-zero) in the file.
    public var pagesWritten: UInt64
    /// For a diff image: one bit per page (regions in order), set for each page the image
    /// holds; nil for a full image.
    public var pages: [UInt64]?

    /// Total pages of guest RAM.
    public var pageCount: UInt64 { regions.reduce(0) { $0 + $1.size / Self.pageSize } }

    /// Checks the layout: page-aligned, non-overlapping, within `maxMemory`, the file big
    /// enough, and a diff bitmap of the right length.
    public func validate() throws(SnapshotError) {
        guard !regions.isEmpty, regions.count <= 64 else { throw .invalid(section: "memory", reason: "\(regions.count) regions") }
        var total: UInt64 = 0
        var lastEnd: UInt64 = 0
        var fileEnd: UInt64 = 0
        for r in regions {
            guard r.size > 0, r.size % Self.pageSize == 0, r.guestAddress % Self.pageSize == 0, r.fileOffset % Self.pageSize == 0 else {
                throw .invalid(section: "memory", reason: "region 0x\(String(r.guestAddress, radix: 16)) is not page aligned")
            }
            let (end, o1) = r.guestAddress.addingReportingOverflow(r.size)
            let (fend, o2) = r.fileOffset.addingReportingOverflow(r.size)
            let (t, o3) = total.addingReportingOverflow(r.size)
            guard !o1, !o2, !o3, t <= Self.maxMemory else { throw .invalid(section: "memory", reason: "regions overflow") }
            guard r.guestAddress >= lastEnd else { throw .invalid(section: "memory", reason: "regions overlap or are out of order") }
            guard r.fileOffset >= fileEnd else { throw .invalid(section: "memory", reason: "regions overlap in the file") }
            lastEnd = end
            fileEnd = fend
            total = t
        }
        guard fileSize >= fileEnd, fileSize <= Self.maxMemory else {
            throw .invalid(section: "memory", reason: "file size \(fileSize) does not hold the regions (\(fileEnd) bytes)")
        }
        if let pages {
            guard UInt64(pages.count) == (pageCount + 63) / 64 else {
                throw .invalid(section: "memory", reason: "diff bitmap of \(pages.count) words for \(pageCount) pages")
            }
        }
        guard pagesWritten <= pageCount else { throw .invalid(section: "memory", reason: "\(pagesWritten) pages written of \(pageCount)") }
    }
}

/// Writes guest RAM into a memory file: runs of non-zero pages with one pwrite each, holes
/// elsewhere.
public enum MemoryImageWriter {
    /// One region of guest RAM as the host maps it (a raw pointer the caller keeps valid).
    @unsafe public struct Source {
        public var guestAddress: UInt64
        public var host: UnsafeRawPointer
        public var size: UInt64
        public init(guestAddress: UInt64, host: UnsafeRawPointer, size: UInt64) {
            unsafe self.guestAddress = guestAddress
            unsafe self.host = unsafe host
            unsafe self.size = size
        }
    }

    /// Writes `sources` to `fd` (an empty file) and returns the image description. With
    /// `selection` (one bitmap per region) only the selected pages are written: a diff.
    public static func write(_ sources: [Source], to fd: Int32, path: String, selection: [[UInt64]]? = nil) throws(SnapshotError) -> MemoryImage {
        var regions: [MemoryImage.Region] = []
        var offset: UInt64 = 0
        for unsafe s in unsafe sources {
            unsafe regions.append(.init(guestAddress: s.guestAddress, size: s.size, fileOffset: offset))
            unsafe offset += s.size
        }
        guard ftruncate(fd, off_t(offset)) == 0 else { throw .io(path: path, reason: unsafe "cannot size the memory file: \(String(cString: strerror(errno)))") }
        var hasher = CRC64.Hasher()
        var written: UInt64 = 0
        var globalPage: UInt64 = 0
        let totalPages = offset / MemoryImage.pageSize
        var diffBitmap = [UInt64](repeating: 0, count: selection == nil ? 0 : Int((totalPages + 63) / 64))
        let pageSize = Int(MemoryImage.pageSize)
        for unsafe (index, s) in unsafe sources.enumerated() {
            let pages = unsafe Int(s.size / MemoryImage.pageSize)
            let chosen = selection.map { index < $0.count ? $0[index] : [] }
            var runStart: Int?
            func flush(_ end: Int) throws(SnapshotError) {
                guard let start = runStart else { return }
                runStart = nil
                try unsafe pwriteAll(fd, s.host + start * pageSize, (end - start) * pageSize, off_t(regions[index].fileOffset) + off_t(start * pageSize), path)
            }
            for page in 0..<pages {
                var selected = true
                if let chosen {
                    let word = page >> 6
                    selected = word < chosen.count && chosen[word] & (1 << UInt64(page & 63)) != 0
                    if selected {
                        let bit = globalPage + UInt64(page)
                        diffBitmap[Int(bit >> 6)] |= 1 << (bit & 63)
                    }
                }
                let p = unsafe s.host + page * pageSize
                if unsafe selected && !isZeroPage(p) {
                    var number = (globalPage + UInt64(page)).littleEndian
                    unsafe withUnsafeBytes(of: &number) { unsafe hasher.update($0) }
                    unsafe hasher.update(UnsafeRawBufferPointer(start: p, count: pageSize))
                    written += 1
                    if let start = runStart, page - start >= 256 { try flush(page) }
                    if runStart == nil { runStart = page }
                } else {
                    try flush(page)
                }
            }
            try flush(pages)
            globalPage += UInt64(pages)
        }
        return MemoryImage(regions: regions, fileSize: offset, digest: hasher.value, pagesWritten: written,
                           pages: selection == nil ? nil : diffBitmap)
    }

    /// Whether the 4 KiB page at `p` is all zeros.
    @inline(__always)
    public static func isZeroPage(_ p: UnsafeRawPointer) -> Bool {
        let words = unsafe p.assumingMemoryBound(to: UInt64.self)
        var acc: UInt64 = 0
        var i = 0
        while i < 512 {
            unsafe acc |= words[i] | words[i + 1] | words[i + 2] | words[i + 3] | words[i + 4] | words[i + 5] | words[i + 6] | words[i + 7]
            if acc != 0 { return false }
            i += 8
        }
        return true
    }

    private static func pwriteAll(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int, _ offset: off_t, _ path: String) throws(SnapshotError) {
        var done = 0
        while done < count {
            let n = unsafe pwrite(fd, p + done, count - done, offset + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, reason: unsafe "write: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}
