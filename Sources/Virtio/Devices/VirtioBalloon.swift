import DeviceModel
import GuestMemory
import Synchronization
import SystemExtras

/// virtio-balloon (virtio 1.x §5.5): the host sets a target (`num_pages`), the guest inflates
/// by giving page frame numbers back on the inflate queue and deflates on the deflate queue.
///
/// Inflated pages and free-page reports are returned to the host with MADV_DONTNEED on the
/// guest RAM mapping; every page is checked to lie inside guest RAM first. The stats queue
/// keeps the guest's one buffer and returns it to ask for fresh statistics. Requests are
/// bounded (`maxPagesPerRequest`, `maxStatisticsBytes`), so a huge or malformed chain costs
/// the device bounded work and memory and the next good request is still served.
public final class VirtioBalloon: VirtioDevice, Sendable {
    // Feature bits (§5.5.3).
    public static let featureMustTellHost: UInt64 = 1 << 0
    public static let featureStatsQueue: UInt64 = 1 << 1
    public static let featureDeflateOnOOM: UInt64 = 1 << 2
    public static let featurePageReporting: UInt64 = 1 << 5

    /// Page frame numbers read from one inflate or deflate request at most (Linux sends 256);
    /// the rest of a longer array is ignored.
    public static let maxPagesPerRequest = 4096
    /// Bytes of one statistics buffer read at most (64 entries; Linux sends 16).
    public static let maxStatisticsBytes = 64 * BalloonStatistics.entrySize
    static let queueSize: UInt16 = 256

    /// Which optional features to offer.
    public struct Options: Sendable, Equatable {
        /// Offer the statistics queue.
        public var statistics: Bool
        /// Offer free page reporting.
        public var freePageReporting: Bool
        /// Let the guest take pages back from the balloon when it runs out of memory.
        public var deflateOnOOM: Bool

        public init(statistics: Bool = true, freePageReporting: Bool = true, deflateOnOOM: Bool = false) {
            self.statistics = statistics
            self.freePageReporting = freePageReporting
            self.deflateOnOOM = deflateOnOOM
        }
    }

    /// What a queue is for; indices depend on the negotiated features (absent queues do not take a number).
    enum Role: Equatable { case inflate, deflate, statistics, reporting }

    /// A snapshot of the balloon for the host.
    public struct Status: Sendable, Equatable {
        /// Target size in 4 KiB pages (`num_pages`).
        public var targetPages: UInt32
        /// Size the guest reports (`actual`).
        public var actualPages: UInt32
        /// The latest statistics, if the guest sent any.
        public var statistics: BalloonStatistics?
        /// How many statistics buffers arrived since the device was created.
        public var statisticsUpdates: UInt64
        /// Pages returned to the host by inflation.
        public var inflatedPages: UInt64
        /// Pages the guest took back by deflation.
        public var deflatedPages: UInt64
        /// Pages returned to the host by free page reporting.
        public var reportedPages: UInt64
        /// Malformed items the device ignored: page numbers outside RAM or beyond the per-request
        /// limit, statistics bytes beyond the limit or in a partial entry, report buffers without a whole page.
        public var rejected: UInt64

        public init(targetPages: UInt32, actualPages: UInt32, statistics: BalloonStatistics?, statisticsUpdates: UInt64,
                    inflatedPages: UInt64, deflatedPages: UInt64, reportedPages: UInt64, rejected: UInt64) {
            self.targetPages = targetPages
            self.actualPages = actualPages
            self.statistics = statistics
            self.statisticsUpdates = statisticsUpdates
            self.inflatedPages = inflatedPages
            self.deflatedPages = deflatedPages
            self.reportedPages = reportedPages
            self.rejected = rejected
        }
    }

    public let deviceType = VirtioDeviceType.balloon
    public let deviceFeatures: UInt64
    public let queueMaxSizes: [UInt16]
    /// Guest RAM in 4 KiB pages: the largest target.
    public let guestPages: UInt64

    private struct Config {
        var target: UInt32 = 0
        var actual: UInt32 = 0
        var statistics: BalloonStatistics?
        var statisticsUpdates: UInt64 = 0
        var inflated: UInt64 = 0
        var deflated: UInt64 = 0
        var reported: UInt64 = 0
        var rejected: UInt64 = 0
    }

    private struct Running {
        var worker: PausableWorker?
        var queues: [SplitQueue]
        var roles: [Role?]
        var memory: GuestMemory
        var interrupt: any VirtioInterrupt
        var notifiers: [EventFD]
        var broken = false
        /// Head of the statistics buffer the device holds, to return when it wants fresh numbers.
        var heldStatistics: UInt16?
        /// While the VM is paused the device does not return the statistics buffer.
        var paused = false
    }

    private let config = Mutex(Config())
    private let running = Mutex<Running?>(nil)

    /// - Parameters:
    ///   - guestMemorySize: guest RAM in bytes (bounds the target).
    public init(guestMemorySize: UInt64, options: Options = Options()) {
        var features: UInt64 = 0
        var queues: [UInt16] = [Self.queueSize, Self.queueSize]
        if options.statistics {
            features |= Self.featureStatsQueue
            queues.append(Self.queueSize)
        }
        if options.deflateOnOOM { features |= Self.featureDeflateOnOOM }
        if options.freePageReporting {
            features |= Self.featurePageReporting
            queues.append(Self.queueSize)
        }
        deviceFeatures = features
        queueMaxSizes = queues
        guestPages = guestMemorySize / BalloonPages.pageSize
    }

    // MARK: Host side

    /// Sets the target balloon size in 4 KiB pages and tells the driver (config change
    /// interrupt) if it is running. Fails if the target exceeds guest RAM.
    public func setTarget(pages: UInt64) throws(VirtioDeviceError) {
        guard pages <= guestPages, let target = UInt32(exactly: pages) else {
            throw VirtioDeviceError("balloon target \(pages) pages is larger than guest RAM (\(guestPages) pages)")
        }
        let changed = config.withLock { c -> Bool in
            let old = c.target
            c.target = target
            return old != target
        }
        guard changed, let interrupt = running.withLock({ $0?.interrupt }) else { return }
        interrupt.signalConfigChange()
    }

    /// The balloon's target, actual size, latest statistics and counters.
    public var status: Status {
        config.withLock { c in
            Status(targetPages: c.target, actualPages: c.actual, statistics: c.statistics, statisticsUpdates: c.statisticsUpdates,
                   inflatedPages: c.inflated, deflatedPages: c.deflated, reportedPages: c.reported, rejected: c.rejected)
        }
    }

    /// Asks the guest for fresh statistics by returning the buffer the device holds.
    /// Returns false if statistics were not negotiated or the device holds no buffer
    /// (the guest has not yet answered the previous request).
    @discardableResult
    public func requestStatistics() -> Bool {
        var notify: (any VirtioInterrupt, Int)?
        let sent = running.withLock { r -> Bool in
            guard var state = r, !state.broken, !state.paused, let head = state.heldStatistics,
                  let index = state.roles.firstIndex(of: .statistics) else { return false }
            defer { r = state }
            state.heldStatistics = nil
            do {
                try state.queues[index].pushUsed(head: head, length: 0, memory: state.memory)
            } catch {
                state.broken = true
                state.interrupt.deviceBroken()
                return false
            }
            if state.queues[index].needsNotification(memory: state.memory) { notify = (state.interrupt, index) }
            return true
        }
        if let (interrupt, index) = notify { interrupt.signalQueue(index) }
        return sent
    }

    // MARK: Configuration space (§5.5.4)

    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        let (target, actual) = config.withLock { ($0.target, $0.actual) }
        for i in 0..<data.count {
            let (at, overflow) = offset.addingReportingOverflow(i)
            switch at {
            case _ where overflow: unsafe data[i] = 0
            case 0..<4: unsafe data[i] = UInt8(truncatingIfNeeded: target >> (8 * UInt32(at)))
            case 4..<8: unsafe data[i] = UInt8(truncatingIfNeeded: actual >> (8 * UInt32(at - 4)))
            default: unsafe data[i] = 0  // free_page_hint_cmd_id and poison_val: features not offered
            }
        }
    }

    /// Only `actual` (bytes 4–7) is driver-writable; partial writes update their bytes.
    public func writeConfig(offset: Int, from data: UnsafeRawBufferPointer) {
        config.withLock { c in
            for i in 0..<data.count {
                let (at, overflow) = offset.addingReportingOverflow(i)
                guard !overflow, at >= 4, at < 8 else { continue }
                let shift = 8 * UInt32(at - 4)
                c.actual = unsafe (c.actual & ~(0xff << shift)) | (UInt32(data[i]) << shift)
            }
        }
    }

    // MARK: Lifecycle

    /// Queue roles for the negotiated features: inflate, deflate, then statistics and
    /// reporting only if negotiated (an absent queue takes no index, as Linux numbers them).
    static func roles(features: UInt64, queueCount: Int) -> [Role?] {
        var roles: [Role] = [.inflate, .deflate]
        if features & featureStatsQueue != 0 { roles.append(.statistics) }
        if features & featurePageReporting != 0 { roles.append(.reporting) }
        return (0..<queueCount).map { $0 < roles.count ? roles[$0] : nil }
    }

    public func activate(_ a: VirtioActivation) throws(VirtioDeviceError) {
        let roles = Self.roles(features: a.features, queueCount: a.queues.count)
        for (i, role) in roles.enumerated() where role == .inflate || role == .deflate {
            guard a.queues[i].ready else { throw VirtioDeviceError("virtio-balloon: the inflate and deflate queues must be enabled") }
        }
        let notifiers = a.notifiers
        let serve: @Sendable (Int) -> Void = { [weak self] index in self?.serve(queue: index) }
        let worker = PausableWorker(notifiers: notifiers) { () throws(SystemError) in
            try VirtioWorker(name: "virtio-balloon", role: .virtioBalloon, notifiers: notifiers) { source, _ in
                guard case .queue(let index) = source else { return }
                serve(index)
            }
        }
        running.withLock {
            $0 = Running(worker: worker, queues: a.queues, roles: roles, memory: a.memory, interrupt: a.interrupt, notifiers: a.notifiers,
                         paused: a.startPaused)
        }
        guard !a.startPaused else { return }
        do {
            try worker.resume()
        } catch {
            running.withLock { $0 = nil }
            throw VirtioDeviceError("virtio-balloon: \(error)")
        }
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
    }

    public func pausedQueues() -> [SplitQueue]? {
        running.withLock { $0?.queues }
    }

    public func reset() {
        let r = running.withLock { $0.take() }
        r?.worker?.pause()
        // A new driver starts with an empty balloon; the host's target stays.
        config.withLock { $0.actual = 0 }
    }

    // MARK: Saved state

    /// The balloon's saved state: its size and the statistics buffer it holds.
    public struct SavedState: ValidatedState {
        public var targetPages: UInt32
        public var actualPages: UInt32
        /// Head of the statistics buffer the device holds (returned to ask for fresh numbers).
        public var heldStatistics: UInt16?

        public func validate() throws(DeviceStateError) {
            try DeviceStateError.require(heldStatistics.map { $0 < VirtioBalloon.queueSize } ?? true, "virtio-balloon",
                                         "held statistics buffer \(heldStatistics ?? 0)")
        }
    }

    /// The state to save (VM paused).
    public var savedState: SavedState {
        let (target, actual) = config.withLock { ($0.target, $0.actual) }
        return SavedState(targetPages: target, actualPages: actual, heldStatistics: running.withLock { $0?.heldStatistics })
    }

    /// Restores the balloon's size (before the transport reactivates the device).
    public func restore(_ saved: SavedState) throws(DeviceStateError) {
        try saved.validate()
        try DeviceStateError.require(UInt64(saved.targetPages) <= guestPages && UInt64(saved.actualPages) <= guestPages, "virtio-balloon",
                                     "target \(saved.targetPages) or actual \(saved.actualPages) pages exceed guest RAM (\(guestPages) pages)")
        config.withLock { c in
            c.target = saved.targetPages
            c.actual = saved.actualPages
        }
    }

    /// Takes back the statistics buffer the device held (after the paused activation).
    public func restoreHeldStatistics(_ saved: SavedState) throws(DeviceStateError) {
        guard let head = saved.heldStatistics else { return }
        try running.withLock { r throws(DeviceStateError) in
            guard var state = r, let index = state.roles.firstIndex(of: .statistics), head < state.queues[index].size else {
                throw DeviceStateError("virtio-balloon", "held statistics buffer \(head) without a statistics queue")
            }
            state.heldStatistics = head
            r = state
        }
    }

    // MARK: Requests

    /// Requests served per wake-up before yielding to the other queues.
    private static let batch = 64

    package func serve(queue index: Int) {
        var signal = false
        var interrupt: (any VirtioInterrupt)?
        running.withLock { r in
            guard var state = r, !state.broken, index < state.queues.count, state.queues[index].ready,
                  let role = state.roles[index] else { return }
            defer { r = state }
            interrupt = state.interrupt
            var served = 0
            while served < Self.batch {
                let chain: DescriptorChain
                do {
                    guard let c = try state.queues[index].pop(memory: state.memory) else { return }
                    chain = c
                } catch {
                    state.broken = true
                    state.interrupt.deviceBroken()
                    return
                }
                served += 1
                let keep = handle(chain, role: role, state: &state)
                if state.broken { return }
                if keep { continue }
                do {
                    try state.queues[index].pushUsed(head: chain.head, length: 0, memory: state.memory)
                } catch {
                    state.broken = true
                    state.interrupt.deviceBroken()
                    return
                }
                if state.queues[index].needsNotification(memory: state.memory) { signal = true }
            }
            // More may be waiting: come back after the other queues had their turn.
            if (try? state.queues[index].hasPending(memory: state.memory)) == true, index < state.notifiers.count {
                state.notifiers[index].signal()
            }
        }
        if signal { interrupt?.signalQueue(index) }
    }

    /// Handles one chain; returns true if the device keeps it (the statistics buffer).
    private func handle(_ chain: DescriptorChain, role: Role, state: inout Running) -> Bool {
        switch role {
        case .inflate:
            let (ranges, rejected) = readPageNumbers(chain, memory: state.memory)
            let result = BalloonPages.discard(ranges, in: state.memory)
            config.withLock { c in
                c.inflated += result.discarded
                c.rejected += rejected + result.outsideRAM + result.failed
            }
            return false
        case .deflate:
            let (ranges, rejected) = readPageNumbers(chain, memory: state.memory)
            let counts = BalloonPages.check(ranges, in: state.memory)
            config.withLock { c in
                c.deflated += counts.inside
                c.rejected += rejected + counts.outsideRAM
            }
            return false
        case .statistics:
            let (statistics, ignored) = readStatistics(chain, memory: state.memory)
            config.withLock { c in
                c.statistics = statistics
                c.statisticsUpdates += 1
                c.rejected += ignored
            }
            // The driver keeps at most one buffer here; if it sent another, return the old one.
            if let old = state.heldStatistics, let index = state.roles.firstIndex(of: .statistics) {
                if (try? state.queues[index].pushUsed(head: old, length: 0, memory: state.memory)) == nil {
                    state.broken = true
                    state.interrupt.deviceBroken()
                }
            }
            state.heldStatistics = chain.head
            return true
        case .reporting:
            var ranges: [PageRange] = []
            var rejected: UInt64 = 0
            for buffer in chain.readable + chain.writable {
                if let range = BalloonPages.wholePages(address: buffer.address, length: UInt64(buffer.length)) {
                    ranges.append(range)
                } else {
                    rejected += 1
                }
            }
            let result = BalloonPages.discard(ranges, in: state.memory)
            config.withLock { c in
                c.reported += result.discarded
                c.rejected += rejected + result.outsideRAM + result.failed
            }
            return false
        }
    }

    /// Reads the little-endian 32-bit page frame numbers of an inflate or deflate request
    /// (at most `maxPagesPerRequest`) and coalesces them; also returns how many PFNs or
    /// trailing bytes were ignored.
    private func readPageNumbers(_ chain: DescriptorChain, memory: GuestMemory) -> (ranges: [PageRange], ignored: UInt64) {
        let length = chain.readableLength
        let whole = length / 4
        let count = Int(min(whole, UInt64(Self.maxPagesPerRequest)))
        let ignored = (whole - UInt64(count)) + (length % 4 == 0 ? 0 : 1)
        var bytes = [UInt8](repeating: 0, count: count * 4)
        var reader = ChainReader(memory: memory, chain: chain)
        let ok = unsafe bytes.withUnsafeMutableBytes { unsafe reader.read(into: $0) }
        guard ok else { return ([], ignored + UInt64(count)) }
        var pfns: [UInt32] = []
        pfns.reserveCapacity(count)
        for i in 0..<count {
            let b = 4 * i
            pfns.append(UInt32(bytes[b]) | UInt32(bytes[b + 1]) << 8 | UInt32(bytes[b + 2]) << 16 | UInt32(bytes[b + 3]) << 24)
        }
        return (BalloonPages.coalesce(pfns), ignored)
    }

    /// Reads a statistics buffer (at most `maxStatisticsBytes`); also returns how many
    /// bytes were ignored (beyond the limit or a trailing partial entry).
    private func readStatistics(_ chain: DescriptorChain, memory: GuestMemory) -> (BalloonStatistics, UInt64) {
        let length = chain.readableLength
        let take = Int(min(length, UInt64(Self.maxStatisticsBytes)))
        let whole = take - take % BalloonStatistics.entrySize
        var bytes = [UInt8](repeating: 0, count: whole)
        var reader = ChainReader(memory: memory, chain: chain)
        guard unsafe bytes.withUnsafeMutableBytes({ unsafe reader.read(into: $0) }) else { return (BalloonStatistics(), length) }
        return (BalloonStatistics(parsing: bytes), length - UInt64(whole))
    }
}
