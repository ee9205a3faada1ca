import GuestMemory
import Storage
import Synchronization
import SystemExtras
import Virtio

/// virtio-blk (virtio 1.x §5.2) over a `BlockDevice` (raw or qcow2 image).
///
/// One request queue served by the device's own worker thread, so disk I/O never runs on a
/// vCPU thread. Requests: IN, OUT, FLUSH (completed only after the backend's flush, i.e.
/// fdatasync, returned), GET_ID, DISCARD, WRITE_ZEROES; anything else is UNSUPP. A read-only
/// disk offers VIRTIO_BLK_F_RO and refuses every change with IOERR. A chain that breaks
/// the queue rules marks the device DEVICE_NEEDS_RESET; a well-formed chain carrying a bad
/// request only gets an error status.
public final class VirtioBlock: VirtioDevice, Sendable {
    public let deviceType = VirtioDeviceType.block
    public let deviceFeatures: UInt64
    public let queueMaxSizes: [UInt16]
    /// Request counters.
    public let statistics = VirtioBlockStatistics()
    /// Limits request bytes (data moved) and operations; unlimited by default.
    public let limiter: RateLimiter
    /// The disk; still open after `reset()` (the VM owns it until `close()`).
    public var backend: any BlockDevice { backendBox.withLock { $0 } }
    private let backendBox: Mutex<any BlockDevice>

    private let configSpace: VirtioBlockConfigSpace
    private let handlerTemplate: Mutex<BlockRequestHandler>

    private final class Running {
        let worker: PausableWorker
        /// Wakes the worker when a throttled request may go (worker backend 0).
        let timer: TimerFD
        var queue: SplitQueue
        var handler: BlockRequestHandler
        var broken = false
        init(worker: PausableWorker, timer: TimerFD, queue: SplitQueue, handler: BlockRequestHandler) {
            self.worker = worker
            self.timer = timer
            self.queue = queue
            self.handler = handler
        }
    }
    /// The active queue; only the worker thread uses it while it is set.
    private let running = Mutex<Running?>(nil)
    /// Set by reset() so a batch of requests stops after the current one.
    private let stopping = Atomic<Bool>(false)

    /// - Parameters:
    ///   - backend: the opened disk image.
    ///   - serial: the GET_ID string (cut to 20 bytes).
    ///   - configuration: queue size and request limits.
    ///   - limiter: rate limits (none by default).
    public init(backend: any BlockDevice, serial: String, configuration: VirtioBlockConfiguration = VirtioBlockConfiguration(),
                limiter: RateLimiter = RateLimiter()) {
        backendBox = Mutex(backend)
        self.limiter = limiter
        let capacity = backend.size / VirtioBlockLayout.sectorSize
        var features = VirtioBlockFeature.sizeMax | VirtioBlockFeature.segmentMax | VirtioBlockFeature.blockSize
            | VirtioBlockFeature.flush | VirtioBlockFeature.topology
        if configuration.rangeCommands { features |= VirtioBlockFeature.discard | VirtioBlockFeature.writeZeroes }
        if backend.isReadOnly { features |= VirtioBlockFeature.readOnly }
        deviceFeatures = features
        queueMaxSizes = [configuration.queueSize]
        configSpace = VirtioBlockConfigSpace(capacitySectors: capacity, configuration: configuration)
        var id = Array(serial.utf8.prefix(VirtioBlockLayout.idSize))
        id += [UInt8](repeating: 0, count: VirtioBlockLayout.idSize - id.count)
        handlerTemplate = Mutex(BlockRequestHandler(backend: backend, configuration: configuration, capacity: capacity, serial: id,
                                                    readOnly: backend.isReadOnly, statistics: statistics))
    }

    /// Capacity in 512-byte sectors.
    public var capacity: UInt64 { handlerTemplate.withLock { $0.capacity } }

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        unsafe configSpace.read(offset: offset, into: data)
    }

    /// The configuration is read-only (no CONFIG_WCE): writes are ignored.
    public func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {}

    public func activate(_ a: VirtioActivation) throws(VirtioDeviceError) {
        guard let queue = a.queues.first, queue.ready else { throw VirtioDeviceError("virtio-blk: request queue not enabled") }
        guard let notifier = a.notifiers.first else { throw VirtioDeviceError("virtio-blk: no queue notifier") }
        var handler = handlerTemplate.withLock { $0 }
        handler.negotiated = a.features
        let memory = a.memory
        let interrupt = a.interrupt
        stopping.store(false, ordering: .sequentiallyConsistent)
        let timer: TimerFD
        do {
            timer = try TimerFD()
        } catch {
            throw VirtioDeviceError("virtio-blk: \(error)")
        }
        let serve: @Sendable () -> Void = { [weak self] in self?.serve(memory: memory, interrupt: interrupt) }
        let timerFD = timer.fd.rawValue
        let worker = PausableWorker(notifiers: [notifier]) { () throws(SystemError) in
            try VirtioWorker(name: "virtio-blk", role: .virtioBlock, notifiers: [notifier], backends: [(fd: timerFD, events: TimerFD.readableEvents)]) { source, _ in
                switch source {
                case .queue(0):
                    serve()
                case .backend(0):
                    timer.consume()
                    serve()
                default:
                    return
                }
            }
        }
        // The worker starts only after `running` is set: it looks at the queue under the lock.
        running.withLock { $0 = Running(worker: worker, timer: timer, queue: queue, handler: handler) }
        guard !a.startPaused else { return }
        do {
            try worker.resume()
        } catch {
            running.withLock { $0 = nil }
            throw VirtioDeviceError("virtio-blk: \(error)")
        }
    }

    /// Drains the queue: pops, executes and completes every available request.
    private func serve(memory: GuestMemory, interrupt: any VirtioInterrupt) {
        var notify = false
        var broken = false
        running.withLock { r in
            guard let state = r, !state.broken else { return }
            while !stopping.load(ordering: .relaxed) {
                let chain: DescriptorChain
                do {
                    guard let c = try state.queue.pop(memory: memory) else { break }
                    chain = c
                } catch {
                    state.broken = true
                    broken = true
                    break
                }
                if let wait = limiter.consume(bytes: Self.dataBytes(of: chain)) {
                    // Back into the ring; the timer (or a resume) serves it once the bucket refilled.
                    state.queue.undoPop()
                    statistics.count(\.throttled)
                    state.timer.fireOnce(after: max(wait, 1))
                    break
                }
                let used = state.handler.handle(chain, memory: memory)
                do {
                    try state.queue.pushUsed(head: chain.head, length: used, memory: memory)
                } catch {
                    state.broken = true
                    broken = true
                    break
                }
                if state.queue.needsNotification(memory: memory) { notify = true }
            }
        }
        if broken { interrupt.deviceBroken() }
        if notify { interrupt.signalQueue(0) }
    }

    /// What a request costs the bytes bucket: its data, without the 16-byte header and the
    /// status byte (FLUSH and the like cost only an operation).
    static func dataBytes(of chain: DescriptorChain) -> UInt64 {
        let out = chain.readableLength > UInt64(VirtioBlockLayout.headerSize) ? chain.readableLength - UInt64(VirtioBlockLayout.headerSize) : 0
        let into = chain.writableLength > 1 ? chain.writableLength - 1 : 0
        return out &+ into
    }

    public func reset() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        let r = running.withLock { $0.take() }
        r?.worker.pause()
    }

    /// Completes the request being executed (the backend call returns and its status and
    /// used entry are published), leaves the rest in the ring, and stops the worker.
    public func pause() {
        guard let w = running.withLock({ $0?.worker }) else { return }
        stopping.store(true, ordering: .sequentiallyConsistent)
        w.pause()
        stopping.store(false, ordering: .sequentiallyConsistent)
    }

    public func resume() {
        guard let w = running.withLock({ $0?.worker }) else { return }
        do {
            try w.resume()
        } catch {
            running.withLock { $0?.broken = true }
        }
    }

    public func pausedQueues() -> [SplitQueue]? {
        running.withLock { r in r.map { [$0.queue] } }
    }

    /// Stops serving and closes the disk (flushes it and clears a qcow2 dirty bit).
    public func close() throws {
        reset()
        try backend.close()
    }

    /// Flushes and closes the disk without touching the queue (the VM is paused): its image
    /// lock goes, so another host can open it (migration with shared storage). Until
    /// `adopt(_:)` gives it a disk again the device must not run.
    public func releaseBackend() throws {
        try backend.flush()
        try backend.close()
    }

    /// Serves from `disk` from now on (after `releaseBackend()`, or a disk replaced at
    /// restore); it must have the size the guest knows.
    public func adopt(_ disk: any BlockDevice) throws(VirtioDeviceError) {
        guard disk.size / VirtioBlockLayout.sectorSize == capacity else {
            throw VirtioDeviceError("virtio-blk: the new disk has \(disk.size) bytes, the guest knows \(capacity * VirtioBlockLayout.sectorSize)")
        }
        backendBox.withLock { $0 = disk }
        handlerTemplate.withLock { $0.backend = disk }
        running.withLock { $0?.handler.backend = disk }
    }
}

extension VirtioBlock {
    /// The GET_ID string used when none is given: the image's file name, printable ASCII
    /// only (other bytes become '_'), cut to 20 bytes.
    public static func defaultSerial(forPath path: String) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        let bytes = name.utf8.prefix(VirtioBlockLayout.idSize).map { $0 >= 0x20 && $0 < 0x7f ? $0 : UInt8(ascii: "_") }
        return String(decoding: bytes, as: UTF8.self)
    }
}
