/// What a virtio-blk device offers and the limits it enforces on every request.
public struct VirtioBlockConfiguration: Sendable, Equatable {
    /// Queue size offered (a power of two).
    public var queueSize: UInt16 = 256
    /// `size_max`: the largest single segment the driver should send.
    public var segmentSizeMax: UInt32 = 1 << 20
    /// `seg_max`: the most data segments per request (queue size minus header and status).
    public var segmentsMax: UInt32 = 254
    /// `max_discard_sectors` and `max_write_zeroes_sectors` per segment.
    public var rangeSectorsMax: UInt32 = UInt32.max >> 9
    /// `max_discard_seg` and `max_write_zeroes_seg`.
    public var rangeSegmentsMax: UInt32 = 16
    /// `discard_sector_alignment` and the topology's minimum I/O size, in 512-byte sectors.
    public var ioSizeSectors: UInt32 = 8
    /// Offer DISCARD and WRITE_ZEROES.
    public var rangeCommands = true

    public init() {}

    /// Most data bytes one read or write may carry (`seg_max` × `size_max`); larger
    /// requests fail with IOERR so one request cannot keep the device busy without bound.
    public var requestBytesMax: UInt64 { UInt64(segmentsMax) * UInt64(segmentSizeMax) }
}

/// The device configuration structure (virtio 1.x §5.2.4), laid out once: capacity and
/// limits do not change while the device exists.
struct VirtioBlockConfigSpace {
    static let size = 60
    let bytes: [UInt8]

    init(capacitySectors: UInt64, configuration c: VirtioBlockConfiguration) {
        var b = [UInt8](repeating: 0, count: Self.size)
        func put<T: FixedWidthInteger>(_ v: T, _ offset: Int) {
            for i in 0..<MemoryLayout<T>.size { b[offset + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) }
        }
        put(capacitySectors, 0)
        put(c.segmentSizeMax, 8)
        put(c.segmentsMax, 12)
        // geometry (16..19) stays zero: VIRTIO_BLK_F_GEOMETRY is not offered.
        put(UInt32(VirtioBlockLayout.sectorSize), 20)
        // topology: 4 KiB physical blocks (2^3 logical blocks), aligned, minimum I/O size.
        b[24] = 3
        b[25] = 0
        put(UInt16(truncatingIfNeeded: c.ioSizeSectors), 26)
        put(UInt32(0), 28)
        // writeback (32), unused0 (33), num_queues (34): no CONFIG_WCE, no MQ.
        if c.rangeCommands {
            put(c.rangeSectorsMax, 36)
            put(c.rangeSegmentsMax, 40)
            put(c.ioSizeSectors, 44)
            put(c.rangeSectorsMax, 48)
            put(c.rangeSegmentsMax, 52)
            b[56] = 1  // write_zeroes_may_unmap
        }
        bytes = b
    }

    /// Copies `data.count` bytes at `offset`; bytes past the structure read as zero.
    func read(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count {
            let (o, overflow) = offset.addingReportingOverflow(i)
            unsafe data[i] = !overflow && o >= 0 && o < bytes.count ? bytes[o] : 0
        }
    }
}
