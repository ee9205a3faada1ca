import SystemExtras

/// A connection's ports: the host side's port and the guest's port.
struct VsockConnectionKey: Hashable {
    var localPort: UInt32
    var peerPort: UInt32
}

/// One host AF_UNIX stream relayed to one guest vsock stream, with its credit accounting
/// (virtio 1.x §5.10.6.3) and the control packets it still owes the guest.
final class VsockConnection {
    enum State: Equatable {
        /// Accepted on the device's socket; waiting for the host's `CONNECT <port>\n` line.
        case awaitingConnectLine
        /// REQUEST sent (or owed) to the guest; waiting for its RESPONSE.
        case connecting
        /// Data flows both ways.
        case established
    }

    /// Control packets owed to the guest, sent in this order as receive buffers allow.
    struct Owed: OptionSet {
        let rawValue: UInt8
        static let request = Owed(rawValue: 1)
        static let response = Owed(rawValue: 2)
        static let shutdown = Owed(rawValue: 4)
        static let creditUpdate = Owed(rawValue: 8)
        static let creditRequest = Owed(rawValue: 16)
    }

    let id: UInt64
    let socket: OwnedFileDescriptor
    var key: VsockConnectionKey?
    var state: State
    /// Bytes of the CONNECT line read so far.
    var connectLine: [UInt8] = []

    var owed: Owed = []
    /// SHUTDOWN flags owed to the guest.
    var shutdownFlags: UInt32 = 0

    // Guest-bound direction: what the guest told us about its receive buffer.
    var peerBufAlloc: UInt32 = 0
    var peerFwdCnt: UInt32 = 0
    /// Payload bytes sent to the guest (wrapping).
    var txCount: UInt32 = 0
    /// A CREDIT_REQUEST went out and no update came back yet.
    var creditRequested = false

    // Host-bound direction.
    /// Payload bytes received from the guest (wrapping).
    var rxCount: UInt32 = 0
    /// Payload bytes written to the host socket (wrapping): our fwd_cnt.
    var fwdCount: UInt32 = 0
    /// fwd_cnt in the last packet sent to the guest.
    var lastSentFwdCount: UInt32 = 0
    var pending: VsockByteQueue

    /// The host closed its sending side (read returned 0) / its socket hung up entirely.
    var hostReadClosed = false
    var hostHangup = false
    /// The guest will receive / send no more data (its SHUTDOWN flags).
    var guestReceiveClosed = false
    var guestSendClosed = false
    /// Shut down the host socket's write side once `pending` is flushed.
    var shutWriteAfterFlush = false
    var didShutWrite = false
    /// Reset the connection once `pending` is flushed (the guest closed both directions).
    var resetAfterFlush = false

    /// When the connection is reset if nothing else happens (connect and close timeouts).
    var deadline: Double?

    // Bookkeeping for the muxer's sets.
    var inReadSet = false
    var inWriteSet = false
    var queuedForControl = false
    var queuedForData = false

    init(id: UInt64, socket: OwnedFileDescriptor, key: VsockConnectionKey?, state: State, bufferCapacity: Int) {
        self.id = id
        self.socket = socket
        self.key = key
        self.state = state
        pending = VsockByteQueue(capacity: bufferCapacity)
    }

    /// Bytes the guest can still take: its buffer minus what is in flight (0 if it shrank its buffer).
    var peerCredit: UInt32 {
        let inFlight = txCount &- peerFwdCnt
        return inFlight >= peerBufAlloc ? 0 : peerBufAlloc - inFlight
    }

    /// Updates the guest's credit from any packet it sent.
    func updatePeerCredit(from h: VsockHeader) {
        peerBufAlloc = h.bufAlloc
        peerFwdCnt = h.fwdCnt
        if peerCredit > 0 { creditRequested = false }
    }

    /// Whether the host socket should be read: established, the guest still receives, credit left.
    var wantsHostData: Bool {
        state == .established && !hostReadClosed && !guestReceiveClosed && peerCredit > 0
    }
}
