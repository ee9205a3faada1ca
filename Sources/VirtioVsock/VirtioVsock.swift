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
public final class VirtioVsock: VirtioDevice, @unchecked Sendable {
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
        var worker: VirtioWorker
        var muxer: VsockMuxer
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
            data[i] = !overflow && at >= 0 && at < 8 ? UInt8(truncatingIfNeeded: cid >> (8 * UInt64(at))) : 0
        }
    }

    /// The CID is read-only; writes are ignored.
    public func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {}

    public func activate(_ a: VirtioActivation) throws(VirtioDeviceError) {
        guard !closed.load(ordering: .acquiring) else { throw VirtioDeviceError("virtio-vsock: closed") }
        guard a.queues.count >= 3, a.notifiers.count >= 3, a.queues[Self.rxQueue].ready, a.queues[Self.txQueue].ready else {
            throw VirtioDeviceError("virtio-vsock: receive and transmit queues must be enabled")
        }
        do {
            let muxer = try VsockMuxer(activation: a, guestCID: UInt64(guestCID), socketPath: socketPath, listenerFD: listenerFD,
                                       limits: limits, counters: counters)
            let worker = try VirtioWorker(name: "virtio-vsock", notifiers: Array(a.notifiers.prefix(3)), backends: muxer.backends) { source, events in
                muxer.handle(source, events: events)
            }
            muxer.attach(worker)
            running.withLock { $0 = Running(worker: worker, muxer: muxer) }
        } catch {
            throw VirtioDeviceError("virtio-vsock: \(error)")
        }
        // Run the muxer once so it starts watching its sockets.
        a.notifiers[Self.rxQueue].signal()
    }

    /// Stops the worker and drops every connection (the guest's sockets are gone after a reset).
    public func reset() {
        let r = running.withLock { $0.take() }
        r?.worker.stop()
        r?.muxer.release()
    }

    /// Stops the device, closes the listening socket and removes its path (machine teardown).
    public func close() {
        closed.store(true, ordering: .releasing)
        reset()
        listener.withLock { $0 = nil }
        if let id = listenerIdentity, let now = UnixSocket.identity(path: socketPath), id == now {
            unlink(socketPath)
        }
    }

    deinit { close() }
}
