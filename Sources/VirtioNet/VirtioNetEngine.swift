import CSkiffSystem
import GuestMemory
import Synchronization
import SystemExtras
import Virtio
#if canImport(Glibc)
import Glibc
#endif

/// The worker-thread half of virtio-net: moves frames between the backend and the two
/// queues. Only the device's worker thread calls `handle`, and the device stops that thread
/// before dropping the engine, so its state needs no lock.
@safe package final class VirtioNetEngine: @unchecked Sendable {
    // @unchecked: the ring and backend state is used by the worker thread only (or while it is stopped).
    /// Frames moved per direction before the worker looks at its other sources again.
    static let framesPerWakeup = 64
    /// Room for the header, the largest frame, and one byte to notice anything longer.
    static let bufferSize = VirtioNetHeader.size + VirtioNetHeader.maxFrameSize + 1

    private let memory: GuestMemory
    private let interrupt: any VirtioInterrupt
    private let fd: Int32
    private let counters: VirtioNetCounters
    private let mergeable: Bool
    private let txNotifier: EventFD
    private let rxLimiter: RateLimiter
    private let txLimiter: RateLimiter
    /// Wakes the worker when a throttled direction may go on (backend index 1).
    let timer: TimerFD
    /// Monotonic time the timer is set for, while it is.
    private var timerDeadline: UInt64?
    /// The frame in `rxBuffer` (`pendingRx`) has already been charged to the receive limiter.
    private var pendingRxCharged = false
    private var rxThrottled = false
    private var txThrottled = false
    private var rx: SplitQueue
    private var tx: SplitQueue

    /// Receive chains taken from the ring but not filled yet (never more than the queue size).
    private var rxStash: [DescriptorChain] = []
    /// Length of a received frame in `rxBuffer` that is waiting for receive buffers.
    private var pendingRx: Int?
    /// A frame in `txBuffer` the backend could not take yet, and its chain.
    private var pendingTx: (head: UInt16, length: Int)?
    private var rxStarved = false
    private var backendFailed = false
    private var broken = false
    private var rxPushed = false
    private var txPushed = false

    private let rxBuffer: UnsafeMutableRawBufferPointer
    private let txBuffer: UnsafeMutableRawBufferPointer

    private let worker = Mutex<VirtioWorker?>(nil)
    /// The epoll events currently registered for the backend.
    private var watched: UInt32 = 0

    package init(activation a: VirtioActivation, backendFD: Int32, counters: VirtioNetCounters, timer: TimerFD,
                 rxLimiter: RateLimiter = RateLimiter(), txLimiter: RateLimiter = RateLimiter()) {
        self.rxLimiter = rxLimiter
        self.txLimiter = txLimiter
        self.timer = timer
        memory = a.memory
        interrupt = a.interrupt
        fd = backendFD
        self.counters = counters
        mergeable = a.has(VirtioNetFeature.mergeableRxBuffers)
        rx = a.queues[VirtioNet.rxQueue]
        tx = a.queues[VirtioNet.txQueue]
        txNotifier = a.notifiers[VirtioNet.txQueue]
        unsafe rxBuffer = .allocate(byteCount: Self.bufferSize, alignment: 16)
        unsafe txBuffer = .allocate(byteCount: Self.bufferSize, alignment: 16)
    }

    deinit {
        unsafe rxBuffer.deallocate()
        unsafe txBuffer.deallocate()
    }

    /// Gives the engine its worker so it can change what it watches on the backend (a new
    /// worker watches nothing yet).
    func attach(_ w: VirtioWorker) {
        worker.withLock { $0 = w }
        watched = 0
    }

    /// Drops the worker reference (the device stopped it).
    func release() { worker.withLock { $0 = nil } }

    /// Called with the worker stopped: drops a received frame still waiting for buffers and
    /// completes a frame the backend did not take (both are lost as on a wire), so the only
    /// device-held descriptors left are the receive chains in the stash.
    func quiesce() {
        pendingRx = nil
        pendingRxCharged = false
        // The timer belonged to the stopped worker; the resume signal retries both directions.
        rxThrottled = false
        txThrottled = false
        timerDeadline = nil
        timer.fireOnce(after: 0)
        if let p = pendingTx {
            pendingTx = nil
            counters.txDroppedAtPause.add(1, ordering: .relaxed)
            if (try? complete(p.head)) == nil { broken = true }
            if tx.needsNotification(memory: memory) { interrupt.signalQueue(VirtioNet.txQueue) }
        }
    }

    /// The queues with their positions (worker stopped).
    var queues: [SplitQueue] { [rx, tx] }

    /// Heads of the receive chains taken but not filled (worker stopped).
    var heldReceiveHeads: [UInt16] { rxStash.map(\.head) }

    /// Re-reads receive chains held at snapshot time (worker not started yet).
    func restoreHeldReceiveChains(_ heads: [UInt16]) throws(VirtioDeviceError) {
        guard heads.count <= Int(rx.size), Set(heads).count == heads.count else {
            throw VirtioDeviceError("virtio-net: \(heads.count) held receive chains in a queue of \(rx.size)")
        }
        do {
            rxStash = try heads.map { (head) throws(VirtqueueError) in try rx.chain(head: head, memory: memory) }
        } catch {
            throw VirtioDeviceError("virtio-net: held receive chain: \(error)")
        }
    }

    /// The backend cannot be used any more (e.g. the worker could not restart).
    func markBackendFailed() { backendFailed = true }

    /// Called on the worker thread for each ready source.
    package func handle(_ source: VirtioWorker.Source, events: UInt32) {
        counters.wakeups.add(1, ordering: .relaxed)
        rxPushed = false
        txPushed = false
        if !broken {
            switch source {
            case .queue(VirtioNet.rxQueue):
                processRx()
            case .queue(VirtioNet.txQueue):
                processTx()
            case .backend(0):
                if events & EPOLLOUT.rawValue != 0 { processTx() }
                if events & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { processRx() }
            case .backend(1):
                timer.consume()
                timerDeadline = nil
                if txThrottled { txThrottled = false; processTx() }
                if rxThrottled { rxThrottled = false; processRx() }
            default:
                break
            }
        }
        if rxPushed && rx.needsNotification(memory: memory) { interrupt.signalQueue(VirtioNet.rxQueue) }
        if txPushed && tx.needsNotification(memory: memory) { interrupt.signalQueue(VirtioNet.txQueue) }
        updateWatch()
    }

    /// Watches EPOLLIN unless reception is paused, EPOLLOUT while a frame waits, nothing when broken;
    /// a failed backend is watched one last time (EPOLLONESHOT) so its error cannot wake the loop forever.
    private func updateWatch() {
        var desired: UInt32 = 0
        if backendFailed {
            desired = EPOLLONESHOT.rawValue
        } else if !broken {
            if !rxStarved && !rxThrottled { desired |= EPOLLIN.rawValue }
            if pendingTx != nil { desired |= EPOLLOUT.rawValue }
        }
        guard desired != watched, let w = worker.withLock({ $0 }) else { return }
        w.watchBackend(0, fd: fd, events: desired)
        watched = desired
    }

    /// Sets the timer to fire in `nanoseconds` unless it already fires sooner.
    private func wake(after nanoseconds: UInt64) {
        let deadline = RateLimiter.now() &+ nanoseconds
        if let current = timerDeadline, current <= deadline { return }
        timerDeadline = deadline
        timer.fireOnce(after: max(nanoseconds, 1))
    }

    private func markBroken(_ error: VirtqueueError) {
        broken = true
        counters.queueErrors.add(1, ordering: .relaxed)
        interrupt.deviceBroken()
    }

    // MARK: Receive

    private enum Delivery {
        case delivered
        case dropped
        case noBuffers
    }

    private func processRx() {
        var frames = 0
        var rounds = 0
        while frames < Self.framesPerWakeup && rounds < 2 * Self.framesPerWakeup {
            rounds += 1
            let length: Int
            if let p = pendingRx {
                length = p
            } else {
                guard !backendFailed, let base = unsafe rxBuffer.baseAddress else { return }
                let n = unsafe read(fd, base, rxBuffer.count)
                if n < 0 {
                    let e = errno
                    if e == EINTR { continue }
                    if e == EAGAIN || e == EWOULDBLOCK { return }
                    counters.rxErrors.add(1, ordering: .relaxed)
                    backendFailed = true
                    return
                }
                frames += 1
                guard n >= VirtioNetHeader.size else {
                    counters.rxDroppedMalformed.add(1, ordering: .relaxed)
                    continue
                }
                guard n <= VirtioNetHeader.size + VirtioNetHeader.maxFrameSize else {
                    counters.rxDroppedTooLarge.add(1, ordering: .relaxed)
                    continue
                }
                length = n
            }
            if !pendingRxCharged {
                if let wait = rxLimiter.consume(bytes: UInt64(length - VirtioNetHeader.size)) {
                    // Keep the frame and stop reading the backend until the bucket refills.
                    pendingRx = length
                    rxThrottled = true
                    counters.rxThrottled.add(1, ordering: .relaxed)
                    wake(after: wait)
                    return
                }
                pendingRxCharged = true
            }
            let result: Delivery
            do {
                result = try deliver(length: length)
            } catch {
                markBroken(error)
                return
            }
            switch result {
            case .delivered, .dropped:
                pendingRx = nil
                pendingRxCharged = false
                rxStarved = false
            case .noBuffers:
                pendingRx = length
                if !rxStarved {
                    rxStarved = true
                    counters.rxStalls.add(1, ordering: .relaxed)
                }
                // Ask for a notification, then look again so a buffer added meanwhile is not missed.
                rx.setNotifications(true, memory: memory)
                atomicMemoryFence(ordering: .sequentiallyConsistent)
                let more: Bool
                do {
                    more = try rx.hasPending(memory: memory)
                } catch {
                    markBroken(error)
                    return
                }
                if !more { return }
            }
        }
    }

    /// Takes the next receive chain, completing (empty) any that has no writable space.
    private func popRxChain() throws(VirtqueueError) -> DescriptorChain? {
        // Bounded, so a driver that keeps adding empty buffers cannot hold the worker here.
        for _ in 0..<Int(rx.size) {
            guard let c = try rx.pop(memory: memory) else { return nil }
            if c.writable.isEmpty {
                counters.rxBadBuffers.add(1, ordering: .relaxed)
                try rx.pushUsed(head: c.head, length: 0, memory: memory)
                rxPushed = true
                continue
            }
            return c
        }
        return nil
    }

    /// Places the frame of `length` bytes (header included) in `rxBuffer` into receive chains.
    private func deliver(length: Int) throws(VirtqueueError) -> Delivery {
        var count = 0
        if mergeable {
            var room: UInt64 = 0
            while room < UInt64(length) {
                if count == rxStash.count {
                    guard rxStash.count < Int(rx.size) else {
                        // Every buffer the ring can hold is here and the frame still does not fit.
                        counters.rxDroppedTooLarge.add(1, ordering: .relaxed)
                        return .dropped
                    }
                    guard let c = try popRxChain() else { return .noBuffers }
                    rxStash.append(c)
                }
                room += rxStash[count].writableLength
                count += 1
            }
        } else {
            if rxStash.isEmpty {
                guard let c = try popRxChain() else { return .noBuffers }
                rxStash.append(c)
            }
            guard rxStash[0].writableLength >= UInt64(length) else {
                // Without mergeable buffers a frame must fit one chain; keep the chain for the next frame.
                counters.rxDroppedTooLarge.add(1, ordering: .relaxed)
                return .dropped
            }
            count = 1
        }
        unsafe rxBuffer[VirtioNetHeader.numBuffersOffset] = UInt8(truncatingIfNeeded: count)
        unsafe rxBuffer[VirtioNetHeader.numBuffersOffset + 1] = UInt8(truncatingIfNeeded: count >> 8)
        var offset = 0
        for i in 0..<count {
            let chain = rxStash[i]
            let take = Int(min(UInt64(length - offset), chain.writableLength))
            var writer = ChainWriter(memory: memory, chain: chain)
            unsafe writer.write(UnsafeRawBufferPointer(rebasing: rxBuffer[offset..<(offset + take)]))
            offset += take
            try rx.pushUsed(head: chain.head, length: writer.written, memory: memory)
        }
        rxStash.removeFirst(count)
        rxPushed = true
        counters.rxFrames.add(1, ordering: .relaxed)
        counters.rxBytes.add(UInt64(length - VirtioNetHeader.size), ordering: .relaxed)
        return .delivered
    }

    // MARK: Transmit

    private enum Send {
        case done
        case wouldBlock
    }

    private func processTx() {
        do {
            if let p = pendingTx {
                guard send(length: p.length) == .done else { return }
                pendingTx = nil
                try complete(p.head)
            }
            var frames = 0
            var rechecked = false
            while true {
                if frames >= Self.framesPerWakeup {
                    // Come back after the other sources had a turn; the driver will not notify again.
                    txNotifier.signal()
                    return
                }
                guard let chain = try tx.pop(memory: memory) else {
                    // pop() published avail_event; look once more after a full fence so a chain the
                    // driver added without notifying (it read the old avail_event) is not left behind.
                    atomicMemoryFence(ordering: .sequentiallyConsistent)
                    if !rechecked, try tx.hasPending(memory: memory) {
                        rechecked = true  // once: a driver flipping avail.idx must not keep the worker here
                        continue
                    }
                    return
                }
                let length = chain.readableLength
                if length >= UInt64(VirtioNetHeader.size),
                   let wait = txLimiter.consume(bytes: length - UInt64(VirtioNetHeader.size)) {
                    // Leave the frame in the ring; the timer brings the worker back.
                    tx.undoPop()
                    txThrottled = true
                    counters.txThrottled.add(1, ordering: .relaxed)
                    wake(after: wait)
                    return
                }
                frames += 1
                guard length >= UInt64(VirtioNetHeader.size), length <= UInt64(VirtioNetHeader.size + VirtioNetHeader.maxFrameSize) else {
                    counters.txDroppedMalformed.add(1, ordering: .relaxed)
                    try complete(chain.head)
                    continue
                }
                var reader = ChainReader(memory: memory, chain: chain)
                guard unsafe reader.read(into: UnsafeMutableRawBufferPointer(rebasing: txBuffer[0..<Int(length)])) else {
                    counters.txDroppedMalformed.add(1, ordering: .relaxed)
                    try complete(chain.head)
                    continue
                }
                if send(length: Int(length)) == .wouldBlock {
                    pendingTx = (chain.head, Int(length))
                    counters.txBlocked.add(1, ordering: .relaxed)
                    return
                }
                try complete(chain.head)
            }
        } catch {
            markBroken(error)
        }
    }

    private func complete(_ head: UInt16) throws(VirtqueueError) {
        try tx.pushUsed(head: head, length: 0, memory: memory)
        txPushed = true
    }

    private func send(length: Int) -> Send {
        guard let base = unsafe txBuffer.baseAddress else { return .done }
        while true {
            let n = unsafe write(fd, base, length)
            if n >= 0 {
                counters.txFrames.add(1, ordering: .relaxed)
                counters.txBytes.add(UInt64(length - VirtioNetHeader.size), ordering: .relaxed)
                return .done
            }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            counters.txErrors.add(1, ordering: .relaxed)
            return .done
        }
    }
}
