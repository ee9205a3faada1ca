#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem
import SystemExtras
import Synchronization

/// Errors from guest memory access. Every guest-supplied address goes through these checks.
public enum GuestMemoryError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The range is not wholly inside one RAM region (it wraps, crosses a hole, or runs past RAM).
    case outOfBounds(address: UInt64, length: UInt64)
    /// Regions overlap or are empty or misaligned.
    case invalidLayout(String)
    /// mmap failed.
    case allocation(SystemError)

    public var description: String {
        switch self {
        case .outOfBounds(let a, let l): return "guest range 0x\(String(a, radix: 16)) + \(l) is outside guest RAM"
        case .invalidLayout(let s): return "invalid guest memory layout: \(s)"
        case .allocation(let e): return "cannot allocate guest memory: \(e)"
        }
    }
}

/// What backs guest RAM on the host.
public enum GuestMemoryBacking: Sendable, Equatable {
    /// Private anonymous memory (zero pages until touched).
    case anonymous
    /// One memfd shared by all regions (MAP_SHARED): another process can map the same RAM.
    case memfd
    /// A file mapped MAP_PRIVATE: pages load lazily from the file and are copied on the
    /// first write (snapshot restore and fork); the file is never written.
    case privateFile
}

/// One contiguous range of guest RAM backed by a host mapping.
public struct GuestMemoryRegion: Sendable {
    /// First guest-physical address.
    public let guestAddress: UInt64
    /// Length in bytes.
    public let size: UInt64
    /// The host mapping that backs it.
    public let mapping: MemoryMapping
    /// Offset of the region in the backing file (memfd or snapshot memory file).
    public let fileOffset: UInt64
    /// Pages the monitor itself wrote since the last take.
    public let dirtyPages: DirtyPageBitmap
    /// Pages given back to the host since the region was mapped (a private file mapping
    /// then reads zeros there, not the file: they differ from the file).
    public let discardedPages: DirtyPageBitmap

    public init(guestAddress: UInt64, size: UInt64, mapping: MemoryMapping, fileOffset: UInt64 = 0) {
        self.guestAddress = guestAddress
        self.size = size
        self.mapping = mapping
        self.fileOffset = fileOffset
        dirtyPages = DirtyPageBitmap(pages: Int(clamping: size / GuestMemory.pageSize))
        discardedPages = DirtyPageBitmap(pages: Int(clamping: size / GuestMemory.pageSize))
    }

    /// Host address of the region's first byte.
    public var hostAddress: UnsafeMutableRawPointer { unsafe mapping.base }

    /// One past the last guest-physical address.
    public var end: UInt64 { guestAddress + size }
}

/// The guest's physical RAM: bounds-checked access to a few mmap-backed regions.
///
/// Every method validates the whole range first (no wrap-around, no crossing between
/// regions, nothing past the end) and then copies; it never hands out pointers that
/// outlive the call except through `withHostPointer`, whose range it checks.
public final class GuestMemory: Sendable {
    /// Guest page size for dirty tracking and discards.
    public static let pageSize: UInt64 = 4096

    /// The regions, sorted by guest address and non-overlapping.
    public let regions: [GuestMemoryRegion]
    /// What backs the regions.
    public let backing: GuestMemoryBacking
    /// The memfd or file the regions map (nil for anonymous memory).
    public let backingFile: OwnedFileDescriptor?
    /// Whether the monitor's own writes are recorded in each region's `dirtyPages`.
    private let tracking = Atomic<Bool>(false)
    /// /proc/self/pagemap for a private file mapping, opened with it: the threads that read it
    /// later (snapshots, migrations) may not open files (seccomp, docs/seccomp.md).
    private let pagemap: OwnedFileDescriptor?

    /// Test seam (double-fetch tests): called after each `read`, `readBytes`, `load` and
    /// `loadAcquiring16` with the range just read. Set it before the memory is shared.
    nonisolated(unsafe) package var readObserver: ((_ address: UInt64, _ length: UInt64) -> Void)?

    /// Allocates guest RAM for each (address, size) range: anonymous memory, or one memfd
    /// holding the ranges back to back.
    public convenience init(ranges: [(address: UInt64, size: UInt64)], backing: GuestMemoryBacking = .anonymous) throws(GuestMemoryError) {
        try Self.checkRanges(ranges)
        var regions: [GuestMemoryRegion] = []
        switch backing {
        case .anonymous:
            for r in ranges {
                do {
                    let m = try MemoryMapping.anonymous(size: Int(r.size))
                    regions.append(GuestMemoryRegion(guestAddress: r.address, size: r.size, mapping: m))
                } catch {
                    throw .allocation(error)
                }
            }
            try self.init(regions: regions)
        case .memfd:
            let total = ranges.reduce(UInt64(0)) { $0 + $1.size }
            let fd = unsafe csystem_memfd_create("skiff-guest-ram", UInt32(MFD_CLOEXEC))
            guard fd >= 0 else { throw .allocation(.current("memfd_create")) }
            let file = OwnedFileDescriptor(taking: fd)
            guard ftruncate(fd, off_t(total)) == 0 else { throw .allocation(.current("ftruncate memfd to \(total) bytes")) }
            var offset: UInt64 = 0
            for r in ranges {
                do {
                    let m = try MemoryMapping.file(fd, size: Int(r.size), offset: Int64(offset), shared: true)
                    regions.append(GuestMemoryRegion(guestAddress: r.address, size: r.size, mapping: m, fileOffset: offset))
                } catch {
                    throw .allocation(error)
                }
                offset += r.size
            }
            try self.init(regions: regions, backing: .memfd, backingFile: file)
        case .privateFile:
            throw .invalidLayout("a private file mapping needs a file (use GuestMemory(mapping:ranges:))")
        }
    }

    /// Maps `file` MAP_PRIVATE as guest RAM: each range reads its pages from `fileOffset` in
    /// the file, lazily, and writes stay in this process (the file never changes).
    public convenience init(mapping file: OwnedFileDescriptor, ranges: [(address: UInt64, size: UInt64, fileOffset: UInt64)]) throws(GuestMemoryError) {
        try Self.checkRanges(ranges.map { ($0.address, $0.size) })
        var regions: [GuestMemoryRegion] = []
        for r in ranges {
            guard r.fileOffset % Self.pageSize == 0, r.fileOffset <= UInt64(Int64.max) else {
                throw .invalidLayout("file offset \(r.fileOffset) is not page aligned")
            }
            do {
                let m = try MemoryMapping.file(file.rawValue, size: Int(r.size), offset: Int64(r.fileOffset), shared: false)
                regions.append(GuestMemoryRegion(guestAddress: r.address, size: r.size, mapping: m, fileOffset: r.fileOffset))
            } catch {
                throw .allocation(error)
            }
        }
        try self.init(regions: regions, backing: .privateFile, backingFile: file)
    }

    private static func checkRanges(_ ranges: [(address: UInt64, size: UInt64)]) throws(GuestMemoryError) {
        for r in ranges {
            guard r.size > 0, r.size % pageSize == 0, r.address % pageSize == 0, r.size <= UInt64(Int.max) else {
                throw .invalidLayout("region 0x\(String(r.address, radix: 16)) size \(r.size) is empty or not page aligned")
            }
        }
    }

    /// Uses existing mappings as guest RAM.
    public init(regions: [GuestMemoryRegion], backing: GuestMemoryBacking = .anonymous, backingFile: OwnedFileDescriptor? = nil) throws(GuestMemoryError) {
        self.backing = backing
        self.backingFile = backingFile
        if backing == .privateFile {
            let fd = unsafe open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)
            pagemap = fd >= 0 ? OwnedFileDescriptor(taking: fd) : nil
        } else {
            pagemap = nil
        }
        let sorted = regions.sorted { $0.guestAddress < $1.guestAddress }
        for r in sorted {
            guard r.size > 0, r.size <= UInt64(r.mapping.size) else { throw .invalidLayout("region size mismatch") }
            guard !r.guestAddress.addingReportingOverflow(r.size).overflow else { throw .invalidLayout("region wraps") }
        }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.end > b.guestAddress {
            throw .invalidLayout("regions at 0x\(String(a.guestAddress, radix: 16)) and 0x\(String(b.guestAddress, radix: 16)) overlap")
        }
        self.regions = sorted
    }

    /// Total RAM in bytes.
    public var totalSize: UInt64 { regions.reduce(0) { $0 + $1.size } }

    /// The host pointer for `address ..< address + length`, if the whole range lies in one region.
    @inline(__always)
    private func host(_ address: UInt64, _ length: UInt64) -> UnsafeMutableRawPointer? {
        for r in regions where address >= r.guestAddress {
            let offset = address - r.guestAddress
            guard offset < r.size || (offset == r.size && length == 0) else { continue }
            guard length <= r.size - offset else { return nil }
            return unsafe r.hostAddress + Int(offset)
        }
        return nil
    }

    /// Whether `address ..< address + length` is wholly inside guest RAM.
    public func contains(_ address: UInt64, length: UInt64) -> Bool {
        unsafe host(address, length) != nil
    }

    /// Copies guest memory into `buffer`.
    public func read(at address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(GuestMemoryError) {
        guard let p = unsafe host(address, UInt64(buffer.count)) else { throw .outOfBounds(address: address, length: UInt64(buffer.count)) }
        guard let dst = buffer.baseAddress else { return }
        unsafe dst.copyMemory(from: p, byteCount: buffer.count)
        unsafe readObserver?(address, UInt64(buffer.count))
    }

    /// Copies `buffer` into guest memory.
    public func write(at address: UInt64, from buffer: UnsafeRawBufferPointer) throws(GuestMemoryError) {
        guard let p = unsafe host(address, UInt64(buffer.count)) else { throw .outOfBounds(address: address, length: UInt64(buffer.count)) }
        guard let src = buffer.baseAddress else { return }
        unsafe p.copyMemory(from: src, byteCount: buffer.count)
        noteWrite(address, UInt64(buffer.count))
    }

    /// Writes bytes at `address`.
    public func write<C: Collection<UInt8>>(_ bytes: C, at address: UInt64) throws(GuestMemoryError) {
        guard let p = unsafe host(address, UInt64(bytes.count)) else { throw .outOfBounds(address: address, length: UInt64(bytes.count)) }
        noteWrite(address, UInt64(bytes.count))
        let copied: Bool? = bytes.withContiguousStorageIfAvailable { buf in
            if let base = buf.baseAddress { unsafe p.copyMemory(from: base, byteCount: buf.count) }
            return true
        }
        if copied == true { return }
        var i = 0
        for b in bytes {
            unsafe p.storeBytes(of: b, toByteOffset: i, as: UInt8.self)
            i += 1
        }
    }

    /// Reads `count` bytes at `address`.
    public func readBytes(at address: UInt64, count: Int) throws(GuestMemoryError) -> [UInt8] {
        guard count >= 0, let p = unsafe host(address, UInt64(count)) else { throw .outOfBounds(address: address, length: UInt64(max(count, 0))) }
        defer { unsafe readObserver?(address, UInt64(count)) }
        return unsafe [UInt8](UnsafeRawBufferPointer(start: p, count: count))
    }

    /// Fills `length` bytes at `address` with zero.
    public func zero(at address: UInt64, length: UInt64) throws(GuestMemoryError) {
        guard let p = unsafe host(address, length) else { throw .outOfBounds(address: address, length: length) }
        unsafe p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(length))
        noteWrite(address, length)
    }

    /// Reads a little-endian integer.
    public func load<T: FixedWidthInteger>(_ type: T.Type = T.self, at address: UInt64) throws(GuestMemoryError) -> T {
        guard let p = unsafe host(address, UInt64(MemoryLayout<T>.size)) else {
            throw .outOfBounds(address: address, length: UInt64(MemoryLayout<T>.size))
        }
        defer { unsafe readObserver?(address, UInt64(MemoryLayout<T>.size)) }
        return unsafe T(littleEndian: p.loadUnaligned(as: T.self))
    }

    /// Writes a little-endian integer.
    public func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(GuestMemoryError) {
        guard let p = unsafe host(address, UInt64(MemoryLayout<T>.size)) else {
            throw .outOfBounds(address: address, length: UInt64(MemoryLayout<T>.size))
        }
        unsafe p.storeBytes(of: value.littleEndian, as: T.self)
        noteWrite(address, UInt64(MemoryLayout<T>.size))
    }

    /// Reads a naturally aligned 16-bit value with acquire ordering (virtqueue ring indices).
    public func loadAcquiring16(at address: UInt64) throws(GuestMemoryError) -> UInt16 {
        guard address % 2 == 0, let p = unsafe host(address, 2) else { throw .outOfBounds(address: address, length: 2) }
        let atomic = unsafe UnsafeAtomic16(p)
        defer { unsafe readObserver?(address, 2) }
        return unsafe UInt16(littleEndian: atomic.loadAcquiring())
    }

    /// Writes a naturally aligned 16-bit value with release ordering (virtqueue ring indices).
    public func storeReleasing16(_ value: UInt16, at address: UInt64) throws(GuestMemoryError) {
        guard address % 2 == 0, let p = unsafe host(address, 2) else { throw .outOfBounds(address: address, length: 2) }
        unsafe UnsafeAtomic16(p).storeReleasing(value.littleEndian)
        noteWrite(address, 2)
    }

    /// Runs `body` with a host pointer to `address ..< address + length` after checking the range.
    ///
    /// The pointer must not escape `body`; the guest may change the bytes concurrently.
    /// `writing` says whether `body` may store through the pointer (the pages then count as
    /// written by the monitor for dirty tracking).
    public func withHostPointer<R>(at address: UInt64, length: UInt64, writing: Bool, _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        guard let p = unsafe host(address, length), length <= UInt64(Int.max) else { throw GuestMemoryError.outOfBounds(address: address, length: length) }
        if writing { noteWrite(address, length) }
        return try unsafe body(UnsafeMutableRawBufferPointer(start: p, count: Int(length)))
    }

    /// Lets the kernel's same-page merging (KSM) share identical pages of guest RAM with other
    /// VMs (MADV_MERGEABLE); it only has an effect while ksmd runs (/sys/kernel/mm/ksm/run).
    public func allowSamePageMerging() throws(GuestMemoryError) {
        for r in regions {
            guard unsafe madvise(r.hostAddress, Int(r.size), MADV_MERGEABLE) == 0 else { throw .allocation(.current("madvise MADV_MERGEABLE")) }
        }
    }

    // MARK: Dirty tracking and discards

    /// Starts recording the monitor's writes into `dirtyPages` (each region's bitmap is cleared).
    public func startDirtyTracking() {
        for r in regions { _ = r.dirtyPages.take() }
        tracking.store(true, ordering: .sequentiallyConsistent)
    }

    /// Stops recording the monitor's writes.
    public func stopDirtyTracking() {
        tracking.store(false, ordering: .sequentiallyConsistent)
    }

    /// Whether the monitor's writes are being recorded.
    public var isTrackingDirtyPages: Bool { tracking.load(ordering: .relaxed) }

    @inline(__always)
    private func noteWrite(_ address: UInt64, _ length: UInt64) {
        guard length > 0, tracking.load(ordering: .relaxed) else { return }
        for r in regions where address >= r.guestAddress && address - r.guestAddress < r.size {
            let first = (address - r.guestAddress) / Self.pageSize
            let last = (address - r.guestAddress + length - 1) / Self.pageSize
            r.dirtyPages.mark(firstPage: Int(first), count: Int(last - first + 1))
            return
        }
    }

    /// Gives `length` bytes at `address` (whole pages inside one region) back to the host;
    /// the guest reads zeros there afterwards whatever the backing: anonymous memory is
    /// dropped (MADV_DONTNEED), a shared memfd gets a hole punched, and a private file
    /// mapping gets fresh anonymous pages mapped over the range — dropping its copies would
    /// bring the file's old contents back. Counts as a monitor write for dirty tracking.
    public func discard(at address: UInt64, length: UInt64) throws(GuestMemoryError) {
        guard address % Self.pageSize == 0, length % Self.pageSize == 0, let p = unsafe host(address, length), length <= UInt64(Int.max) else {
            throw .outOfBounds(address: address, length: length)
        }
        guard length > 0 else { return }
        let n = Int(length)
        switch backing {
        case .anonymous:
            guard unsafe madvise(p, n, MADV_DONTNEED) == 0 else { throw .allocation(.current("madvise MADV_DONTNEED")) }
        case .memfd:
            guard unsafe madvise(p, n, MADV_REMOVE) == 0 else { throw .allocation(.current("madvise MADV_REMOVE")) }
        case .privateFile:
            let q = unsafe mmap(p, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0)
            guard let q = unsafe q, unsafe q != MAP_FAILED else { throw .allocation(.current("mmap MAP_FIXED over a private file mapping")) }
            if let (r, offset) = region(containing: address) {
                r.discardedPages.mark(firstPage: Int(offset / Self.pageSize), count: Int(length / Self.pageSize))
            }
        }
        noteWrite(address, length)
    }

    /// For a private file mapping: the pages that no longer read as the file does — written
    /// (the kernel copied them: /proc/self/pagemap shows them as anonymous) or given back to
    /// the host — one bitmap per region. This is what a VM restored from a snapshot has
    /// changed since, without tracking its writes from the start.
    public func pagesChangedFromFile() throws(GuestMemoryError) -> [[UInt64]] {
        guard backing == .privateFile else { throw .invalidLayout("guest RAM does not map a file") }
        guard let fd = pagemap?.rawValue else { throw .allocation(SystemError("open /proc/self/pagemap (when the file was mapped)", code: ENOENT)) }
        var result: [[UInt64]] = []
        let chunk = 4096
        var entries = [UInt64](repeating: 0, count: chunk)
        for r in regions {
            let pages = Int(r.size / Self.pageSize)
            var bitmap = r.discardedPages.peek()
            let firstVirtualPage = unsafe UInt(bitPattern: r.hostAddress) / UInt(Self.pageSize)
            var page = 0
            while page < pages {
                let n = min(chunk, pages - page)
                let offset = off_t((firstVirtualPage + UInt(page)) * 8)
                let got = unsafe entries.withUnsafeMutableBytes { unsafe pread(fd, $0.baseAddress, n * 8, offset) }
                guard got == n * 8 else { throw .allocation(.current("read /proc/self/pagemap")) }
                for i in 0..<n {
                    let e = entries[i]
                    let present = e & (1 << 63) != 0
                    let swapped = e & (1 << 62) != 0
                    let fileOrShared = e & (1 << 61) != 0
                    if (present && !fileOrShared) || swapped {
                        let p = page + i
                        bitmap[p >> 6] |= 1 << UInt64(p & 63)
                    }
                }
                page += n
            }
            result.append(bitmap)
        }
        return result
    }

    /// The region and offset holding `address`, for callers that need a host mapping (snapshots, balloon).
    public func region(containing address: UInt64) -> (region: GuestMemoryRegion, offset: UInt64)? {
        for r in regions where address >= r.guestAddress && address - r.guestAddress < r.size {
            return (r, address - r.guestAddress)
        }
        return nil
    }
}

/// A 16-bit atomic view of guest memory.
@unsafe struct UnsafeAtomic16 {
    let pointer: UnsafeMutableRawPointer
    init(_ p: UnsafeMutableRawPointer) { unsafe pointer = p }

    func loadAcquiring() -> UInt16 {
        let v = unsafe pointer.assumingMemoryBound(to: UInt16.self).pointee
        atomicFenceAcquire()
        return v
    }

    func storeReleasing(_ v: UInt16) {
        atomicFenceRelease()
        unsafe pointer.assumingMemoryBound(to: UInt16.self).pointee = v
    }
}

@inline(__always) func atomicFenceAcquire() { atomicMemoryFence(ordering: .acquiring) }
@inline(__always) func atomicFenceRelease() { atomicMemoryFence(ordering: .releasing) }
