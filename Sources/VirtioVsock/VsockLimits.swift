/// Bounds on what one vsock device holds for the guest and the host.
public struct VsockLimits: Sendable, Equatable {
    /// Open connections at most (host- and guest-initiated together).
    public var maxConnections: Int = 1023
    /// Per-connection buffer for guest data the host socket has not taken: the buf_alloc we advertise.
    public var bufferSize: Int = 64 * 1024
    /// Guest data waiting for host sockets, all connections together. A connection whose data
    /// would pass it is reset (counted in `VsockCounters.budgetResets`), although the guest kept
    /// to its credit: without it, 1023 connections to host readers that stopped could hold
    /// 1023 x `bufferSize` (64 MiB).
    public var maxPendingBytes: Int = 16 << 20
    /// Send a credit update when the guest thinks fewer than this many bytes are free.
    public var creditUpdateThreshold: Int = 4 * 1024
    /// Seconds to wait for the host's CONNECT line, or for the guest's answer to a request.
    public var connectTimeout: Double = 2
    /// Seconds to wait for the guest's RST after a full shutdown before resetting.
    public var shutdownTimeout: Double = 2
    /// RST packets for unknown connections waiting for receive buffers.
    public var maxQueuedResets: Int = 256
    /// File descriptors kept free for the rest of the monitor (control API, snapshots, disks,
    /// TAP re-opens): connections stop at the open-files limit (RLIMIT_NOFILE) minus this many
    /// minus what was open when the device started, even below `maxConnections`, so a guest
    /// opening connections cannot take the last descriptors.
    public var descriptorReserve: Int = 128

    public init() {}
}
