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

/// One contiguous range of guest RAM backed by a host mapping.
public struct GuestMemoryRegion: Sendable {
    /// First guest-physical address.
    public let guestAddress: UInt64
    /// Length in bytes.
    public let size: UInt64
    /// The host mapping that backs it.
    public let mapping: MemoryMapping

    /// Host address of the region's first byte.
    public var hostAddress: UnsafeMutableRawPointer { mapping.base }

    /// One past the last guest-physical address.
    public var end: UInt64 { guestAddress + size }
}

/// The guest's physical RAM: bounds-checked access to a few mmap-backed regions.
///
/// Every method validates the whole range first (no wrap-around, no crossing between
/// regions, nothing past the end) and then copies; it never hands out pointers that
/// outlive the call except through `withHostPointer`, whose range it checks.
public final class GuestMemory: Sendable {
    /// The regions, sorted by guest address and non-overlapping.
    public let regions: [GuestMemoryRegion]

    /// Test seam (double-fetch tests): called after each `read`, `readBytes`, `load` and
    /// `loadAcquiring16` with the range just read. Set it before the memory is shared.
    nonisolated(unsafe) package var readObserver: ((_ address: UInt64, _ length: UInt64) -> Void)?

    /// Allocates anonymous memory for each (address, size) range.
    public convenience init(ranges: [(address: UInt64, size: UInt64)]) throws(GuestMemoryError) {
        var regions: [GuestMemoryRegion] = []
        for r in ranges {
            guard r.size > 0, r.size % 4096 == 0, r.address % 4096 == 0, r.size <= UInt64(Int.max) else {
                throw .invalidLayout("region 0x\(String(r.address, radix: 16)) size \(r.size) is empty or not page aligned")
            }
            do {
                let m = try MemoryMapping.anonymous(size: Int(r.size))
                regions.append(GuestMemoryRegion(guestAddress: r.address, size: r.size, mapping: m))
            } catch {
                throw .allocation(error)
            }
        }
        try self.init(regions: regions)
    }

    /// Uses existing mappings as guest RAM.
    public init(regions: [GuestMemoryRegion]) throws(GuestMemoryError) {
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
            return r.hostAddress + Int(offset)
        }
        return nil
    }

    /// Whether `address ..< address + length` is wholly inside guest RAM.
    public func contains(_ address: UInt64, length: UInt64) -> Bool {
        host(address, length) != nil
    }

    /// Copies guest memory into `buffer`.
    public func read(at address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(GuestMemoryError) {
        guard let p = host(address, UInt64(buffer.count)) else { throw .outOfBounds(address: address, length: UInt64(buffer.count)) }
        guard let dst = buffer.baseAddress else { return }
        dst.copyMemory(from: p, byteCount: buffer.count)
        readObserver?(address, UInt64(buffer.count))
    }

    /// Copies `buffer` into guest memory.
    public func write(at address: UInt64, from buffer: UnsafeRawBufferPointer) throws(GuestMemoryError) {
        guard let p = host(address, UInt64(buffer.count)) else { throw .outOfBounds(address: address, length: UInt64(buffer.count)) }
        guard let src = buffer.baseAddress else { return }
        p.copyMemory(from: src, byteCount: buffer.count)
    }

    /// Writes bytes at `address`.
    public func write<C: Collection<UInt8>>(_ bytes: C, at address: UInt64) throws(GuestMemoryError) {
        guard let p = host(address, UInt64(bytes.count)) else { throw .outOfBounds(address: address, length: UInt64(bytes.count)) }
        let copied: Bool? = bytes.withContiguousStorageIfAvailable { buf in
            if let base = buf.baseAddress { p.copyMemory(from: base, byteCount: buf.count) }
            return true
        }
        if copied == true { return }
        var i = 0
        for b in bytes {
            p.storeBytes(of: b, toByteOffset: i, as: UInt8.self)
            i += 1
        }
    }

    /// Reads `count` bytes at `address`.
    public func readBytes(at address: UInt64, count: Int) throws(GuestMemoryError) -> [UInt8] {
        guard count >= 0, let p = host(address, UInt64(count)) else { throw .outOfBounds(address: address, length: UInt64(max(count, 0))) }
        defer { readObserver?(address, UInt64(count)) }
        return [UInt8](UnsafeRawBufferPointer(start: p, count: count))
    }

    /// Fills `length` bytes at `address` with zero.
    public func zero(at address: UInt64, length: UInt64) throws(GuestMemoryError) {
        guard let p = host(address, length) else { throw .outOfBounds(address: address, length: length) }
        p.initializeMemory(as: UInt8.self, repeating: 0, count: Int(length))
    }

    /// Reads a little-endian integer.
    public func load<T: FixedWidthInteger>(_ type: T.Type = T.self, at address: UInt64) throws(GuestMemoryError) -> T {
        guard let p = host(address, UInt64(MemoryLayout<T>.size)) else {
            throw .outOfBounds(address: address, length: UInt64(MemoryLayout<T>.size))
        }
        defer { readObserver?(address, UInt64(MemoryLayout<T>.size)) }
        return T(littleEndian: p.loadUnaligned(as: T.self))
    }

    /// Writes a little-endian integer.
    public func store<T: FixedWidthInteger>(_ value: T, at address: UInt64) throws(GuestMemoryError) {
        guard let p = host(address, UInt64(MemoryLayout<T>.size)) else {
            throw .outOfBounds(address: address, length: UInt64(MemoryLayout<T>.size))
        }
        p.storeBytes(of: value.littleEndian, as: T.self)
    }

    /// Reads a naturally aligned 16-bit value with acquire ordering (virtqueue ring indices).
    public func loadAcquiring16(at address: UInt64) throws(GuestMemoryError) -> UInt16 {
        guard address % 2 == 0, let p = host(address, 2) else { throw .outOfBounds(address: address, length: 2) }
        let atomic = UnsafeAtomic16(p)
        defer { readObserver?(address, 2) }
        return UInt16(littleEndian: atomic.loadAcquiring())
    }

    /// Writes a naturally aligned 16-bit value with release ordering (virtqueue ring indices).
    public func storeReleasing16(_ value: UInt16, at address: UInt64) throws(GuestMemoryError) {
        guard address % 2 == 0, let p = host(address, 2) else { throw .outOfBounds(address: address, length: 2) }
        UnsafeAtomic16(p).storeReleasing(value.littleEndian)
    }

    /// Runs `body` with a host pointer to `address ..< address + length` after checking the range.
    ///
    /// The pointer must not escape `body`; the guest may change the bytes concurrently.
    public func withHostPointer<R>(at address: UInt64, length: UInt64, _ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        guard let p = host(address, length), length <= UInt64(Int.max) else { throw GuestMemoryError.outOfBounds(address: address, length: length) }
        return try body(UnsafeMutableRawBufferPointer(start: p, count: Int(length)))
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
struct UnsafeAtomic16 {
    let pointer: UnsafeMutableRawPointer
    init(_ p: UnsafeMutableRawPointer) { pointer = p }

    func loadAcquiring() -> UInt16 {
        let v = pointer.assumingMemoryBound(to: UInt16.self).pointee
        atomicFenceAcquire()
        return v
    }

    func storeReleasing(_ v: UInt16) {
        atomicFenceRelease()
        pointer.assumingMemoryBound(to: UInt16.self).pointee = v
    }
}

@inline(__always) func atomicFenceAcquire() { atomicMemoryFence(ordering: .acquiring) }
@inline(__always) func atomicFenceRelease() { atomicMemoryFence(ordering: .releasing) }
