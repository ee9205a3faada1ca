import Synchronization

/// Connection, packet and drop counts of one vsock device, updated by its worker thread.
public final class VsockCounters: Sendable {
    /// Connections currently open (host- and guest-initiated, including ones still connecting).
    public let connections = Atomic<Int>(0)
    /// Connections that reached the established state.
    public let established = Atomic<UInt64>(0)
    /// The connection limit in force: `VsockLimits.maxConnections`, or fewer to keep
    /// `VsockLimits.descriptorReserve` descriptors free under the open-files limit.
    public let connectionCap = Atomic<Int>(0)
    /// Connections refused because the connection limit was reached.
    public let refused = Atomic<UInt64>(0)
    /// Guest connection requests to a host port with no listener at `PATH_port`.
    public let connectFailures = Atomic<UInt64>(0)
    /// Connections reset because the guest did not answer a request, or a close, in time.
    public let timeouts = Atomic<UInt64>(0)
    /// Host connections closed for a missing or malformed `CONNECT <port>` line.
    public let badConnectLines = Atomic<UInt64>(0)
    /// Transmit packets dropped: too short, wrong CIDs, wrong type, or a length beyond the chain or 64 KiB.
    public let badPackets = Atomic<UInt64>(0)
    /// Packets with an operation this device does not know.
    public let unknownOps = Atomic<UInt64>(0)
    /// Guest data waiting for host sockets now (all connections).
    public let pendingBytes = Atomic<Int>(0)
    /// Connections reset because their data would have passed `VsockLimits.maxPendingBytes`.
    public let budgetResets = Atomic<UInt64>(0)
    /// Connections reset because the guest sent more than its credit allowed.
    public let creditViolations = Atomic<UInt64>(0)
    /// RST packets not queued because the bounded reset queue was full.
    public let droppedResets = Atomic<UInt64>(0)
    /// Receive buffers too small for a packet header (returned empty).
    public let rxBadBuffers = Atomic<UInt64>(0)
    /// Times the device waited for receive buffers.
    public let rxStalls = Atomic<UInt64>(0)
    /// Payload bytes relayed to the guest and to the host.
    public let bytesToGuest = Atomic<UInt64>(0)
    public let bytesToHost = Atomic<UInt64>(0)
    /// accept(2) failures other than "nothing waiting" (the listener pauses for a second).
    public let acceptErrors = Atomic<UInt64>(0)
    /// Queue errors that put the device into DEVICE_NEEDS_RESET.
    public let queueErrors = Atomic<UInt64>(0)
    /// Times the worker woke up (a busy loop shows here first).
    public let wakeups = Atomic<UInt64>(0)

    /// Transport-reset events sent to the guest (after a restore).
    public let transportResets = Atomic<UInt64>(0)

    public init() {}
}
