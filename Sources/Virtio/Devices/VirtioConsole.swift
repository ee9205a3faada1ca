import DeviceModel
import GuestMemory
import Synchronization
import SystemExtras

/// virtio-console (virtio 1.x §5.3) with one port (hvc0): the transmit queue goes to a
/// `ConsoleOutput`, host input goes to the receive queue.
///
/// Everything is bounded: host input waits in a queue of `inputCapacity` bytes and
/// `enqueueInput` accepts only what fits (so the host stops reading its input while the guest
/// does not read), and guest output is copied at most `maxOutputPerChain` bytes per request and
/// `maxOutputPerWakeup` per wake-up before it is written, so a flooding guest cannot make the
/// VMM buffer without limit. VIRTIO_CONSOLE_F_EMERG_WRITE is offered: a write to `emerg_wr`
/// prints one byte.
public final class VirtioConsole: VirtioDevice, Sendable {
    public static let featureEmergencyWrite: UInt64 = 1 << 2
    /// Bytes of one transmit request written at most; the rest is dropped (and counted).
    public static let maxOutputPerChain = 64 * 1024
    /// Bytes copied out of the guest before they are written to the output.
    public static let maxOutputPerWakeup = 64 * 1024
    /// Default host input queue size.
    public static let defaultInputCapacity = 4096
    static let receiveQueue = 0
    static let transmitQueue = 1
    static let emergencyWriteOffset = 8

    public let deviceType = VirtioDeviceType.console
    public let deviceFeatures = VirtioConsole.featureEmergencyWrite
    public let queueMaxSizes: [UInt16] = [256, 256]

    private let output: any ConsoleOutput
    /// Bytes the host input queue holds.
    public let inputCapacity: Int

    private struct Running {
        var worker: PausableWorker?
        var queues: [SplitQueue]
        var memory: GuestMemory
        var interrupt: any VirtioInterrupt
        var notifiers: [EventFD]
        var broken = false
        /// While the VM is paused host input only queues up.
        var paused = false
    }
    private let running = Mutex<Running?>(nil)
    /// Host input not yet delivered (at most `inputCapacity` bytes).
    private let pendingInput = Mutex<[UInt8]>([])

    /// Guest output bytes written to the console.
    public let bytesWritten = Atomic<UInt64>(0)
    /// Guest output bytes dropped because a request exceeded `maxOutputPerChain`.
    public let bytesDropped = Atomic<UInt64>(0)
    /// Host input bytes delivered to the guest.
    public let bytesDelivered = Atomic<UInt64>(0)

    public init(output: any ConsoleOutput, inputCapacity: Int = VirtioConsole.defaultInputCapacity) {
        self.output = output
        self.inputCapacity = min(max(inputCapacity, 1), 1 << 20)
    }

    // MARK: Configuration space (§5.3.4): cols, rows, max_nr_ports, emerg_wr

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        // SIZE and MULTIPORT are not offered: cols, rows and max_nr_ports read as zero.
        for i in 0..<data.count { unsafe data[i] = 0 }
    }

    public func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {
        guard offset == Self.emergencyWriteOffset, data.count >= 1 else { return }
        var byte = unsafe data[0]
        unsafe withUnsafeBytes(of: &byte) { unsafe output.write($0) }
        bytesWritten.add(1, ordering: .relaxed)
    }

    // MARK: Host input

    /// Queues host input for the guest; returns how many bytes were accepted (0 when full).
    public func enqueueInput(_ bytes: UnsafeRawBufferPointer) -> Int {
        let accepted = pendingInput.withLock { pending -> Int in
            let n = min(bytes.count, inputCapacity - pending.count)
            if n > 0 { unsafe pending.append(contentsOf: bytes[0..<n]) }
            return n
        }
        deliverInput()
        return accepted
    }

    /// Bytes waiting for receive buffers.
    public var pendingInputCount: Int { pendingInput.withLock { $0.count } }

    /// Host input not delivered yet (saved with the VM).
    public var savedPendingInput: [UInt8] { pendingInput.withLock { $0 } }

    /// Puts saved host input back (restore, before the device runs).
    public func restorePendingInput(_ bytes: [UInt8]) throws(DeviceStateError) {
        try DeviceStateError.require(bytes.count <= inputCapacity, "virtio-console", "\(bytes.count) bytes of input for a \(inputCapacity)-byte queue")
        pendingInput.withLock { $0 = bytes }
    }

    /// Moves pending input into the guest's receive buffers while both exist.
    private func deliverInput() {
        var signal: (any VirtioInterrupt)?
        running.withLock { r in
            guard var state = r, !state.broken, !state.paused, state.queues[Self.receiveQueue].ready else { return }
            defer { r = state }
            pendingInput.withLock { pending in
                var served = 0
                while !pending.isEmpty && served < Int(state.queues[Self.receiveQueue].size) {
                    served += 1
                    let chain: DescriptorChain
                    do {
                        guard let c = try state.queues[Self.receiveQueue].pop(memory: state.memory) else { return }
                        chain = c
                    } catch {
                        state.broken = true
                        state.interrupt.deviceBroken()
                        return
                    }
                    var writer = ChainWriter(memory: state.memory, chain: chain)
                    let n = Int(min(UInt64(pending.count), writer.remaining))
                    _ = unsafe pending.withUnsafeBytes { unsafe writer.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                    pending.removeFirst(Int(writer.written))
                    bytesDelivered.add(UInt64(writer.written), ordering: .relaxed)
                    do {
                        try state.queues[Self.receiveQueue].pushUsed(head: chain.head, length: writer.written, memory: state.memory)
                    } catch {
                        state.broken = true
                        state.interrupt.deviceBroken()
                        return
                    }
                    if state.queues[Self.receiveQueue].needsNotification(memory: state.memory) { signal = state.interrupt }
                }
            }
        }
        signal?.signalQueue(Self.receiveQueue)
    }

    // MARK: Guest output

    private func transmit() {
        var collected: [UInt8] = []
        var signal: (any VirtioInterrupt)?
        running.withLock { r in
            guard var state = r, !state.broken, state.queues[Self.transmitQueue].ready else { return }
            defer { r = state }
            let q = Self.transmitQueue
            while collected.count < Self.maxOutputPerWakeup {
                let chain: DescriptorChain
                do {
                    guard let c = try state.queues[q].pop(memory: state.memory) else { break }
                    chain = c
                } catch {
                    state.broken = true
                    state.interrupt.deviceBroken()
                    break
                }
                let take = Int(min(chain.readableLength, UInt64(Self.maxOutputPerChain)))
                let start = collected.count
                collected.append(contentsOf: repeatElement(0, count: take))
                var reader = ChainReader(memory: state.memory, chain: chain)
                let ok = unsafe collected.withUnsafeMutableBytes { unsafe reader.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
                if !ok { collected.removeLast(take) }
                let dropped = chain.readableLength - UInt64(ok ? take : 0)
                if dropped > 0 { bytesDropped.add(dropped, ordering: .relaxed) }
                do {
                    try state.queues[q].pushUsed(head: chain.head, length: 0, memory: state.memory)
                } catch {
                    state.broken = true
                    state.interrupt.deviceBroken()
                    break
                }
                if state.queues[q].needsNotification(memory: state.memory) { signal = state.interrupt }
            }
            // More output waiting: come back after the receive side had a turn.
            if !state.broken, (try? state.queues[q].hasPending(memory: state.memory)) == true, q < state.notifiers.count {
                state.notifiers[q].signal()
            }
        }
        signal?.signalQueue(Self.transmitQueue)
        if !collected.isEmpty {
            unsafe collected.withUnsafeBytes { unsafe output.write($0) }
            bytesWritten.add(UInt64(collected.count), ordering: .relaxed)
        }
    }

    // MARK: Lifecycle

    public func activate(_ a: VirtioActivation) throws(VirtioDeviceError) {
        guard a.queues.count == 2 else { throw VirtioDeviceError("virtio-console: expected two queues") }
        let notifiers = a.notifiers
        let handle: @Sendable (Int) -> Void = { [weak self] index in
            if index == Self.receiveQueue { self?.deliverInput() }
            if index == Self.transmitQueue { self?.transmit() }
        }
        let worker = PausableWorker(notifiers: notifiers) { () throws(SystemError) in
            try VirtioWorker(name: "virtio-console", role: .virtioConsole, notifiers: notifiers) { source, _ in
                guard case .queue(let index) = source else { return }
                handle(index)
            }
        }
        running.withLock {
            $0 = Running(worker: worker, queues: a.queues, memory: a.memory, interrupt: a.interrupt, notifiers: a.notifiers, paused: a.startPaused)
        }
        guard !a.startPaused else { return }
        do {
            try worker.resume()
        } catch {
            running.withLock { $0 = nil }
            throw VirtioDeviceError("virtio-console: \(error)")
        }
    }

    /// Stops serving; host input still waiting stays queued for the next driver.
    public func reset() {
        let r = running.withLock { $0.take() }
        r?.worker?.pause()
    }

    public func pause() {
        guard let w = running.withLock({ r -> PausableWorker? in
            r?.paused = true
            return r?.worker
        }) else { return }
        w.pause()
    }

    public func resume() {
        guard let w = running.withLock({ r -> PausableWorker? in
            r?.paused = false
            return r?.worker
        }) else { return }
        do {
            try w.resume()
        } catch {
            running.withLock { $0?.broken = true }
        }
        // Input that arrived while paused.
        deliverInput()
    }

    public func pausedQueues() -> [SplitQueue]? {
        running.withLock { $0?.queues }
    }
}
