import GuestMemory
import Synchronization
import SystemExtras
import Virtio

/// virtio-net (virtio 1.x §5.1) over a frame backend such as a TAP interface: one receive
/// and one transmit queue, the MAC address and link status in configuration space,
/// mergeable receive buffers, and checksum/TSO offloads when the backend can change its
/// offloads (TUNSETOFFLOAD). The worker thread waits in epoll on the backend and the two
/// queue notifiers; it stops reading the backend while the driver has no receive buffers.
public final class VirtioNet: VirtioDevice, Sendable {
    public static let queueSize: UInt16 = 256
    public static let rxQueue = 0
    public static let txQueue = 1

    public let deviceType = VirtioDeviceType.net
    public let deviceFeatures: UInt64
    public let queueMaxSizes: [UInt16] = [VirtioNet.queueSize, VirtioNet.queueSize]
    public let mac: MACAddress
    public let backend: any VirtioNetBackend
    /// Frame, byte and drop counts.
    public let counters = VirtioNetCounters()
    /// Limits what the guest receives (frame bytes, header excluded, and frames).
    public let receiveLimiter: RateLimiter
    /// Limits what the guest sends.
    public let transmitLimiter: RateLimiter

    private struct Running {
        var worker: PausableWorker
        var engine: VirtioNetEngine
    }
    private let running = Mutex<Running?>(nil)
    private let closed = Atomic<Bool>(false)

    /// - Parameters:
    ///   - backend: where frames go; the device owns it from now on.
    ///   - mac: the address in configuration space (a random locally administered one if nil).
    ///   - receiveLimiter, transmitLimiter: rate limits per direction (none by default).
    public init(backend: any VirtioNetBackend, mac: MACAddress? = nil,
                receiveLimiter: RateLimiter = RateLimiter(), transmitLimiter: RateLimiter = RateLimiter()) {
        self.backend = backend
        self.receiveLimiter = receiveLimiter
        self.transmitLimiter = transmitLimiter
        self.mac = mac ?? MACAddress.random()
        var features = VirtioNetFeature.mac | VirtioNetFeature.status | VirtioNetFeature.mergeableRxBuffers
        if backend.supportsOffloads { features |= VirtioNetFeature.offloads }
        deviceFeatures = features
    }

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        var config = mac.bytes
        config.append(UInt8(truncatingIfNeeded: VirtioNetConfig.linkUp))
        config.append(UInt8(truncatingIfNeeded: VirtioNetConfig.linkUp >> 8))
        for i in 0..<data.count {
            let (at, overflow) = offset.addingReportingOverflow(i)
            unsafe data[i] = !overflow && at >= 0 && at < config.count ? config[at] : 0
        }
    }

    /// The MAC address is read-only here (no VIRTIO_NET_F_CTRL_MAC_ADDR); writes are ignored.
    public func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {}

    public func activate(_ a: VirtioActivation) throws(VirtioDeviceError) {
        guard !closed.load(ordering: .acquiring) else { throw VirtioDeviceError("virtio-net: backend closed") }
        guard a.queues.count >= 2, a.notifiers.count >= 2, a.queues[Self.rxQueue].ready, a.queues[Self.txQueue].ready else {
            throw VirtioDeviceError("virtio-net: receive and transmit queues must both be enabled")
        }
        if backend.supportsOffloads {
            do {
                try backend.setOffloads(Self.tunOffloads(features: a.features))
            } catch {
                throw VirtioDeviceError("virtio-net: \(error)")
            }
        }
        let timer: TimerFD
        do {
            timer = try TimerFD()
        } catch {
            throw VirtioDeviceError("virtio-net: \(error)")
        }
        let engine = VirtioNetEngine(activation: a, backendFD: backend.fd, counters: counters, timer: timer,
                                     rxLimiter: receiveLimiter, txLimiter: transmitLimiter)
        let notifiers = Array(a.notifiers.prefix(2))
        let fd = backend.fd
        let timerFD = timer.fd.rawValue
        // The backend starts unwatched; the engine turns EPOLLIN on once it knows its worker
        // (resuming signals the queues, which runs the engine once).
        let worker = PausableWorker(notifiers: notifiers) { () throws(SystemError) in
            try VirtioWorker(name: "virtio-net", role: .virtioNet, notifiers: notifiers, backends: [(fd: fd, events: 0), (fd: timerFD, events: TimerFD.readableEvents)]) { source, events in
                engine.handle(source, events: events)
            }
        }
        running.withLock { $0 = Running(worker: worker, engine: engine) }
        guard !a.startPaused else { return }
        do {
            try worker.resume { engine.attach($0) }
        } catch {
            running.withLock { $0 = nil }
            throw VirtioDeviceError("virtio-net: \(error)")
        }
    }

    /// Stops the worker after the frame batch it is moving; received frames not yet placed
    /// are dropped (as on a wire), a frame the backend could not take yet is completed.
    public func pause() {
        guard let r = running.withLock({ $0 }) else { return }
        r.worker.pause()
        r.engine.release()
        r.engine.quiesce()
    }

    public func resume() {
        guard let r = running.withLock({ $0 }) else { return }
        do {
            try r.worker.resume { r.engine.attach($0) }
        } catch {
            r.engine.markBackendFailed()
        }
    }

    public func pausedQueues() -> [SplitQueue]? {
        running.withLock { $0?.engine.queues }
    }

    /// Receive chains the device holds (taken from the ring, not filled yet), while paused.
    public var heldReceiveChains: [UInt16] {
        running.withLock { $0?.engine.heldReceiveHeads } ?? []
    }

    /// Takes back receive chains a snapshot says the device held (restore, before `resume()`).
    public func restoreHeldReceiveChains(_ heads: [UInt16]) throws(VirtioDeviceError) {
        guard let engine = running.withLock({ $0?.engine }) else { throw VirtioDeviceError("virtio-net: not active") }
        try engine.restoreHeldReceiveChains(heads)
    }

    /// TUN_F_* bits for the receive offloads the driver accepted.
    static func tunOffloads(features: UInt64) -> UInt32 {
        guard features & VirtioNetFeature.guestCSUM != 0 else { return 0 }
        var flags: UInt32 = 0x01  // TUN_F_CSUM
        if features & VirtioNetFeature.guestTSO4 != 0 { flags |= 0x02 }
        if features & VirtioNetFeature.guestTSO6 != 0 { flags |= 0x04 }
        return flags
    }

    public func reset() {
        let r = running.withLock { $0.take() }
        r?.worker.pause()
        r?.engine.release()
        if backend.supportsOffloads { try? backend.setOffloads(0) }
    }

    /// Stops the device and closes its backend (machine teardown; a TAP this process created disappears).
    public func close() {
        closed.store(true, ordering: .releasing)
        reset()
        backend.close()
    }
}
