import GuestMemory
import Synchronization
import SystemExtras
import Virtio
#if canImport(Glibc)
import Glibc
#endif

/// virtio-vsock (virtio 1.x §5.10) with Firecracker's hybrid host side: guest stream sockets
/// are relayed to AF_UNIX stream sockets.
///
/// - Host-initiated: a host process connects to `socketPath`, writes `CONNECT <port>\n`; once
///   the guest accepts, Skiff answers `OK <host port>\n` and relays bytes.
/// - Guest-initiated: a guest connection to CID 2, port P is connected to `socketPath_P`.
///
/// Flow control uses the spec's credit scheme (buf_alloc / fwd_cnt, credit update and request);
/// every buffer is bounded (see `VsockLimits`). The event queue is never used.
public final class VirtioVsock: VirtioDevice, Sendable {
    public static let queueSize: UInt16 = 256
    public static let rxQueue = 0
    public static let txQueue = 1
    public static let eventQueue = 2

    public let deviceType = VirtioDeviceType.vsock
    public let deviceFeatures: UInt64 = 0
    public let queueMaxSizes: [UInt16] = [VirtioVsock.queueSize, VirtioVsock.queueSize, VirtioVsock.queueSize]
    /// The guest's context ID (3 ... 2^32 - 2).
    public let guestCID: UInt32
    /// Where host processes connect; guest-initiated connections go to `socketPath_PORT`.
    public let socketPath: String
    public let limits: VsockLimits
    public let counters = VsockCounters()

    private let listener: Mutex<OwnedFileDescriptor?>
    private let listenerFD: Int32
    private let listenerIdentity: (UInt64, UInt64)?

    private struct Running {
        var worker: PausableWorker
        var muxer: VsockMuxer
        /// The event queue (the device uses it only to announce a transport reset).
        var events: SplitQueue
        var memory: GuestMemory
        var interrupt: any VirtioInterrupt
        /// A restored device owes the guest a VIRTIO_VSOCK_EVENT_TRANSPORT_RESET.
        var owesTransportReset = false
    }
    private let running = Mutex<Running?>(nil)
    private let closed = Atomic<Bool>(false)

    /// Whether `cid` may be a guest's context ID (0-2 are reserved, 2^32 - 1 is VMADDR_CID_ANY).
    public static func isValidGuestCID(_ cid: UInt64) -> Bool { cid >= 3 && cid < 0xffff_ffff }

    /// Creates the device and starts listening on `socketPath` (which must not exist).
    public init(guestCID: UInt32, socketPath: String, limits: VsockLimits = VsockLimits()) throws(SystemError) {
        guard Self.isValidGuestCID(UInt64(guestCID)) else { throw SystemError("vsock CID \(guestCID) must be between 3 and 4294967294", code: EINVAL) }
        // The longest guest-initiated path, PATH_4294967295, must fit too.
        guard socketPath.utf8.count + 11 <= UnixSocket.maxPathLength else {
            throw SystemError("vsock socket path '\(socketPath)' is longer than \(UnixSocket.maxPathLength - 11) bytes", code: ENAMETOOLONG)
        }
        self.guestCID = guestCID
        self.socketPath = socketPath
        self.limits = limits
        let fd = try UnixSocket.listen(path: socketPath)
        listenerFD = fd.rawValue
        listener = Mutex(fd)
        listenerIdentity = UnixSocket.identity(path: socketPath)
    }

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        let cid = UInt64(guestCID)
        for i in 0..<data.count {
            let (at, overflow) = offset.addingReportingOverflow(i)
            unsafe data[i] = !overflow && at >= 0 && at < 8 ? UInt8(truncatingIfNeeded: cid >> (8 * UInt64(at))) : 0
        }
    }

    /// The CID is read-only; writes are ignored.
    public func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {}

    public func activate(_ a: VirtioActivation) throws(VirtioDeviceError) {
        guard !closed.load(ordering: .acquiring) else { throw VirtioDeviceError("virtio-vsock: closed") }
        guard a.queues.count >= 3, a.notifiers.count >= 3, a.queues[Self.rxQueue].ready, a.queues[Self.txQueue].ready else {
            throw VirtioDeviceError("virtio-vsock: receive and transmit queues must be enabled")
        }
        let muxer: VsockMuxer
        do {
            muxer = try VsockMuxer(activation: a, guestCID: UInt64(guestCID), socketPath: socketPath, listenerFD: listenerFD,
                                   limits: limits, counters: counters)
        } catch {
            throw VirtioDeviceError("virtio-vsock: \(error)")
        }
        let notifiers = Array(a.notifiers.prefix(3))
        let backends = muxer.backends
        // Resuming signals the queues, which runs the muxer once so it starts watching its sockets.
        let worker = PausableWorker(notifiers: notifiers) { () throws(SystemError) in
            try VirtioWorker(name: "virtio-vsock", role: .virtioVsock, notifiers: notifiers, backends: backends) { source, events in
                muxer.handle(source, events: events)
            }
        }
        running.withLock {
            $0 = Running(worker: worker, muxer: muxer, events: a.queues[Self.eventQueue], memory: a.memory, interrupt: a.interrupt)
        }
        guard !a.startPaused else { return }
        do {
            try worker.resume { muxer.attach($0) }
        } catch {
            running.withLock { $0 = nil }
            throw VirtioDeviceError("virtio-vsock: \(error)")
        }
    }

    /// Stops the worker and drops every connection (the guest's sockets are gone after a reset).
    public func reset() {
        let r = running.withLock { $0.take() }
        r?.worker.pause()
        r?.muxer.release()
    }

    /// Stops the worker after its current batch; host connections stay open.
    public func pause() {
        guard let r = running.withLock({ $0 }) else { return }
        r.worker.pause()
        r.muxer.release()
    }

    public func resume() {
        guard let r = running.withLock({ $0 }) else { return }
        if r.owesTransportReset { announceTransportReset() }
        do {
            try r.worker.resume { r.muxer.attach($0) }
        } catch {
            r.muxer.markBroken()
        }
    }

    public func pausedQueues() -> [SplitQueue]? {
        running.withLock { r in r.map { $0.muxer.queues + [$0.events] } }
    }

    /// The receive chain the device holds (taken, not filled), while paused.
    public var heldReceiveChain: UInt16? {
        running.withLock { $0?.muxer.heldReceiveHead }
    }

    /// Prepares a restored device (before `resume()`): takes back the receive chain it held
    /// and arranges for the guest to be told that every connection is gone — host sockets do
    /// not survive a snapshot — with a transport-reset event, as Firecracker does.
    public func restoreAfterSnapshot(heldReceiveChain: UInt16?) throws(VirtioDeviceError) {
        guard let muxer = running.withLock({ $0?.muxer }) else { throw VirtioDeviceError("virtio-vsock: not active") }
        try muxer.restoreHeldReceiveChain(heldReceiveChain)
        running.withLock { $0?.owesTransportReset = true }
    }

    /// Whether the driver activated the device.
    public var isActive: Bool { running.withLock { $0 != nil } }

    /// Transport-reset events delivered to the guest.
    public var transportResets: UInt64 { counters.transportResets.load(ordering: .relaxed) }

    /// Puts VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (id 0) in the guest's next event buffer.
    private func announceTransportReset() {
        var signal: (any VirtioInterrupt)?
        running.withLock { r in
            guard var state = r, state.owesTransportReset, state.events.ready else { return }
            defer { r = state }
            state.owesTransportReset = false
            do {
                guard let chain = try state.events.pop(memory: state.memory) else { return }
                var writer = ChainWriter(memory: state.memory, chain: chain)
                var id: UInt32 = 0
                _ = unsafe withUnsafeBytes(of: &id) { unsafe writer.write($0) }
                try state.events.pushUsed(head: chain.head, length: writer.written, memory: state.memory)
                counters.transportResets.add(1, ordering: .relaxed)
                if state.events.needsNotification(memory: state.memory) { signal = state.interrupt }
            } catch {
                state.interrupt.deviceBroken()
            }
        }
        signal?.signalQueue(Self.eventQueue)
    }

    /// Stops the device, closes the listening socket and removes its path (machine teardown).
    public func close() {
        closed.store(true, ordering: .releasing)
        reset()
        listener.withLock { $0 = nil }
        if let id = listenerIdentity, let now = UnixSocket.identity(path: socketPath), id == now {
            unsafe unlink(socketPath)
        }
    }

    deinit { close() }
}
