import CSkiffSystem
import GuestMemory
import Synchronization
import SystemExtras

/// virtio-rng (virtio 1.x §5.4): fills each device-writable buffer with bytes from the
/// host's getrandom(2), at most `maxBytesPerRequest` per request so one huge descriptor
/// cannot make the device loop or allocate without bound.
public final class VirtioRNG: VirtioDevice, Sendable {
    public static let maxBytesPerRequest = 64 * 1024
    public let deviceType = VirtioDeviceType.entropy
    public let deviceFeatures: UInt64 = 0
    public let queueMaxSizes: [UInt16] = [256]

    private struct Running {
        var worker: PausableWorker
        var queue: SplitQueue
        var broken = false
    }
    private let running = Mutex<Running?>(nil)
    /// Bytes handed to the guest so far.
    public let bytesServed = Atomic<UInt64>(0)

    public init() {}

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        for i in 0..<data.count { unsafe data[i] = 0 }
    }

    public func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {}

    public func activate(_ a: VirtioActivation) throws(VirtioDeviceError) {
        guard let queue = a.queues.first, queue.ready else { throw VirtioDeviceError("virtio-rng: request queue not enabled") }
        let memory = a.memory
        let interrupt = a.interrupt
        let notifiers = Array(a.notifiers.prefix(1))
        let serve: @Sendable () -> Void = { [weak self] in self?.serve(memory: memory, interrupt: interrupt) }
        let worker = PausableWorker(notifiers: notifiers) { () throws(SystemError) in
            try VirtioWorker(name: "virtio-rng", role: .virtioRNG, notifiers: notifiers) { source, _ in
                guard case .queue(0) = source else { return }
                serve()
            }
        }
        running.withLock { $0 = Running(worker: worker, queue: queue) }
        guard !a.startPaused else { return }
        do {
            try worker.resume()
        } catch {
            running.withLock { $0 = nil }
            throw VirtioDeviceError("virtio-rng: \(error)")
        }
    }

    private func serve(memory: GuestMemory, interrupt: any VirtioInterrupt) {
        var buffer = [UInt8](repeating: 0, count: Self.maxBytesPerRequest)
        var notify = false
        running.withLock { r in
            guard var state = r, !state.broken else { return }
            defer { r = state }
            while true {
                let chain: DescriptorChain
                do {
                    guard let c = try state.queue.pop(memory: memory) else { break }
                    chain = c
                } catch {
                    state.broken = true
                    interrupt.deviceBroken()
                    break
                }
                let want = Int(min(chain.writableLength, UInt64(Self.maxBytesPerRequest)))
                var filled = 0
                unsafe buffer.withUnsafeMutableBytes { buf in
                    guard let base = buf.baseAddress else { return }
                    while filled < want {
                        let n = unsafe getrandom(base + filled, want - filled, 0)
                        if n <= 0 { break }
                        filled += n
                    }
                }
                var writer = ChainWriter(memory: memory, chain: chain)
                _ = unsafe buffer.withUnsafeBytes { unsafe writer.write(UnsafeRawBufferPointer(rebasing: $0[0..<filled])) }
                bytesServed.add(UInt64(writer.written), ordering: .relaxed)
                do {
                    try state.queue.pushUsed(head: chain.head, length: writer.written, memory: memory)
                } catch {
                    state.broken = true
                    break
                }
                if state.queue.needsNotification(memory: memory) { notify = true }
            }
        }
        if notify { interrupt.signalQueue(0) }
    }

    public func reset() {
        let r = running.withLock { $0.take() }
        r?.worker.pause()
    }

    public func pause() {
        running.withLock { $0?.worker }?.pause()
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
}
