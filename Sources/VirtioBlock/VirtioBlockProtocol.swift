/// virtio-blk feature bits (virtio 1.x §5.2.3).
public enum VirtioBlockFeature {
    /// `size_max` holds the largest segment.
    public static let sizeMax: UInt64 = 1 << 1
    /// `seg_max` holds the most segments per request.
    public static let segmentMax: UInt64 = 1 << 2
    /// The disk is read-only.
    public static let readOnly: UInt64 = 1 << 5
    /// `blk_size` holds the logical block size.
    public static let blockSize: UInt64 = 1 << 6
    /// VIRTIO_BLK_T_FLUSH is supported.
    public static let flush: UInt64 = 1 << 9
    /// `topology` holds physical block and I/O size hints.
    public static let topology: UInt64 = 1 << 10
    /// VIRTIO_BLK_T_DISCARD is supported.
    public static let discard: UInt64 = 1 << 13
    /// VIRTIO_BLK_T_WRITE_ZEROES is supported.
    public static let writeZeroes: UInt64 = 1 << 14
}

/// Request types (virtio 1.x §5.2.6).
public enum VirtioBlockRequestType: UInt32, Sendable {
    case read = 0
    case write = 1
    case flush = 4
    case getID = 8
    case getLifetime = 10
    case discard = 11
    case writeZeroes = 13
    case secureErase = 14
}

/// The status byte the device writes last (virtio 1.x §5.2.6).
public enum VirtioBlockStatus: UInt8, Sendable {
    case ok = 0
    case ioError = 1
    case unsupported = 2
}

/// Sizes of the protocol.
public enum VirtioBlockLayout {
    /// Every request starts with type (le32), reserved (le32) and sector (le64).
    public static let headerSize: UInt64 = 16
    /// Sectors are always 512 bytes, whatever `blk_size` says.
    public static let sectorSize: UInt64 = 512
    /// GET_ID returns exactly this many bytes.
    public static let idSize = 20
    /// One DISCARD / WRITE_ZEROES segment: sector (le64), num_sectors (le32), flags (le32).
    public static let rangeSegmentSize: UInt64 = 16
    /// The only defined DISCARD / WRITE_ZEROES flag (unmap, write-zeroes only).
    public static let unmapFlag: UInt32 = 1
}
