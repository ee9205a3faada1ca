/// virtio-net feature bits, header layout and configuration offsets (virtio 1.x §5.1).
public enum VirtioNetFeature {
    /// The device takes frames with a partial checksum (NEEDS_CSUM) from the driver.
    public static let csum: UInt64 = 1 << 0
    /// The driver takes frames with a partial checksum.
    public static let guestCSUM: UInt64 = 1 << 1
    /// The MAC address in configuration space is valid.
    public static let mac: UInt64 = 1 << 5
    /// The driver takes TCPv4 / TCPv6 GSO frames.
    public static let guestTSO4: UInt64 = 1 << 7
    public static let guestTSO6: UInt64 = 1 << 8
    /// The device takes TCPv4 / TCPv6 GSO frames from the driver.
    public static let hostTSO4: UInt64 = 1 << 11
    public static let hostTSO6: UInt64 = 1 << 12
    /// Receive frames may span several buffers (`num_buffers` in the header).
    public static let mergeableRxBuffers: UInt64 = 1 << 15
    /// The status field (link state) in configuration space is valid.
    public static let status: UInt64 = 1 << 16

    /// The offload bits Skiff offers when the backend can change its offloads (TUNSETOFFLOAD).
    public static let offloads: UInt64 = csum | guestCSUM | guestTSO4 | guestTSO6 | hostTSO4 | hostTSO6
}

/// The `struct virtio_net_hdr` every frame carries (12 bytes with VERSION_1 or MRG_RXBUF).
public enum VirtioNetHeader {
    /// Size of the header in front of each frame, in both directions and on the TAP.
    public static let size = 12
    /// Byte offset of `num_buffers` (little-endian 16-bit).
    public static let numBuffersOffset = 10
    /// Largest frame (without the header) the device moves in either direction: a 64 KiB GSO frame.
    public static let maxFrameSize = 65536
}

/// Device configuration layout (§5.1.4).
enum VirtioNetConfig {
    static let macOffset = 0
    static let statusOffset = 6
    static let size = 8
    /// VIRTIO_NET_S_LINK_UP.
    static let linkUp: UInt16 = 1
}
