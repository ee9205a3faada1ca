import Glibc

// lseek whence values from <unistd.h> (_GNU_SOURCE), which the Glibc module does not export.
private let seekData: Int32 = 3
private let seekHole: Int32 = 4

/// A range of a disk image that the image itself holds (not its backing file): data, or a
/// range recorded as reading zeros.
public struct DiskExtent: Equatable, Sendable {
    public var offset: UInt64
    public var length: UInt64
    /// The image records the range as zeros (qcow2 zero clusters).
    public var zero: Bool

    public init(offset: UInt64, length: UInt64, zero: Bool) {
        self.offset = offset
        self.length = length
        self.zero = zero
    }
}

/// An image that can tell which ranges it holds itself, so a copy can skip holes and, for an
/// overlay, everything its backing file provides (migration without shared storage).
public protocol ExtentReporting {
    /// The ranges this image holds, in order, adjacent ranges of the same kind merged.
    func allocatedExtents() throws -> [DiskExtent]
}

extension RawImage: ExtentReporting {
    /// The file's data ranges (SEEK_DATA / SEEK_HOLE); holes read as zeros.
    public func allocatedExtents() throws -> [DiskExtent] {
        var extents: [DiskExtent] = []
        var position: off_t = 0
        let end = off_t(size)
        while position < end {
            let data = lseek(file.fd, position, seekData)
            if data < 0 {
                if errno == ENXIO { break }
                // A file system without SEEK_DATA: everything is data.
                return [DiskExtent(offset: 0, length: size, zero: false)]
            }
            var hole = lseek(file.fd, data, seekHole)
            if hole < 0 || hole > end { hole = end }
            if hole > data { extents.append(DiskExtent(offset: UInt64(data), length: UInt64(hole - data), zero: false)) }
            position = hole
        }
        return extents
    }
}

extension QCOW2Image: ExtentReporting {
    /// Clusters allocated in this image (data, compressed or zero); unallocated clusters come
    /// from the backing file (or read as zeros without one) and are not reported.
    public func allocatedExtents() throws -> [DiskExtent] {
        let clusterSize = geometry.clusterSize
        let total = size
        var extents: [DiskExtent] = []
        var offset: UInt64 = 0
        while offset < total {
            let length = min(clusterSize, total - offset)
            let kind: Bool?
            switch try lock.withLock({ try mapping(at: offset) }) {
            case .unallocated: kind = nil
            case .zero: kind = true
            case .data, .compressed: kind = false
            }
            if let zero = kind {
                if let last = extents.last, last.zero == zero, last.offset + last.length == offset {
                    extents[extents.count - 1].length += length
                } else {
                    extents.append(DiskExtent(offset: offset, length: length, zero: zero))
                }
            }
            offset += length
        }
        return extents
    }
}
