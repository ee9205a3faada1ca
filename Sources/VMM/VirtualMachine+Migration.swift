#if canImport(Glibc)
import Glibc
#endif
import Logging
import BinaryCoding
import ControlProtocol
import GuestMemory
import Migration
import Snapshot
import Synchronization
import SystemExtras

/// One outgoing live migration: a thread that runs the pre-copy rounds and the switch-over,
/// and the progress it reports.
final class MigrationSession: Sendable {
    let request: MigrationRequest
    let progress: Mutex<MigrationProgress>
    private let connection = Mutex<MigrationConnection?>(nil)
    private let cancelled = Atomic<Bool>(false)

    init(request: MigrationRequest) {
        self.request = request
        progress = Mutex(MigrationProgress(phase: .connecting, destination: request.destination.description))
    }

    var isCancelled: Bool { cancelled.load(ordering: .acquiring) }

    func cancel() {
        cancelled.store(true, ordering: .releasing)
        connection.withLock { $0 }?.cancel()
    }

    func attach(_ c: MigrationConnection) {
        connection.withLock { $0 = c }
        if isCancelled { c.cancel() }
    }

    /// Tells the target why the migration ends here (if it has not been told) and drops the connection.
    func closeConnection(reason: String) {
        guard let c = connection.withLock({ $0.take() }) else { return }
        c.abort(reason)
    }

    var isFinished: Bool {
        switch progress.withLock({ $0.phase }) {
        case .completed, .failed, .cancelled, .none: return true
        default: return false
        }
    }
}

extension VirtualMachine: ControlTarget {
    /// Pre-copy settings.
    enum MigrationTuning {
        /// Rounds after which auto-converge throttles harder each round.
        static let throttleAfterRound = 2
        static let initialThrottle = 20
        static let throttleIncrement = 10
        static let maxThrottle = 99
        /// Give up converging after this many rounds and switch over anyway.
        static let maxRounds = 30
    }

    /// Starts moving the VM to `request.destination`; the work happens on a thread and
    /// `migrationProgress()` reports it. When the target runs the VM, this VM stops and
    /// `run()` returns `.stopped`. If anything fails the VM keeps running here.
    public func startMigration(_ request: MigrationRequest) throws(VMError) -> MigrationProgress {
        try operation.withLock { _ throws(VMError) -> MigrationProgress in
            guard current.withLock({ $0.machine != nil && !$0.stopped }) else { throw VMError("the VM is not running", kind: .invalidState) }
            if let old = migration.withLock({ $0 }), !old.isFinished { throw VMError("a migration is in progress", kind: .invalidState) }
            guard !lifecycle.withLock({ $0.migrating }) else { throw VMError("a migration is in progress", kind: .invalidState) }
            let session = MigrationSession(request: request)
            migration.withLock { $0 = session }
            lifecycle.withLock { $0.migrating = true }
            do {
                // Not kept: the session reports how it ends, nothing joins the thread, and a
                // dropped handle detaches it (a kept one was a leaked thread to TSan).
                _ = try HostThread.spawn(name: "migration", role: .migration) { [self] in self.runOutgoing(session) }
            } catch {
                lifecycle.withLock { $0.migrating = false }
                throw VMError("cannot start the migration thread: \(error)")
            }
            return session.progress.withLock { $0 }
        }
    }

    public func migrationProgress() -> MigrationProgress {
        migration.withLock { $0 }?.progress.withLock { $0 } ?? MigrationProgress(phase: .none)
    }

    public func waitForMigration(seconds: Double) -> MigrationProgress {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            guard let session = migration.withLock({ $0 }), !session.isFinished else { break }
            var ts = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            unsafe nanosleep(&ts, nil)
        }
        return migrationProgress()
    }

    public func cancelMigration() throws(VMError) {
        guard let session = migration.withLock({ $0 }), !session.isFinished else {
            throw VMError("no migration is in progress", kind: .invalidState)
        }
        session.cancel()
    }

    // MARK: Source side

    private func runOutgoing(_ session: MigrationSession) {
        let started = monotonicSeconds()
        do {
            try migrate(session, started: started)
        } catch {
            let cancelled = session.isCancelled
            session.closeConnection(reason: cancelled ? "cancelled on the source" : error.message)
            session.progress.withLock { p in
                p.phase = cancelled ? .cancelled : .failed
                p.error = cancelled ? "cancelled" : error.message
                p.totalMilliseconds = (monotonicSeconds() - started) * 1000
            }
            current.withLock { $0.machine }?.stopThrottle()
            lifecycle.withLock { $0.migrating = false }
        }
    }

    private func migrate(_ session: MigrationSession, started: Double) throws(VMError) {
        let request = session.request
        guard let machine = current.withLock({ $0.machine }), let devices = current.withLock({ $0.devices }) else {
            throw VMError("the VM is not running")
        }
        let connection: MigrationConnection
        do {
            connection = try MigrationConnection.connect(to: request.destination)
        } catch {
            throw VMError(error.description)
        }
        session.attach(connection)
        func fail(_ e: MigrationError) -> VMError {
            if session.isCancelled { connection.abort("cancelled on the source") } else { connection.abort(e.description) }
            return VMError(e.description)
        }
        let pageCount = machine.memory.regions.reduce(UInt64(0)) { $0 + $1.size / GuestMemory.pageSize }
        // Without shared storage the disks travel too: track their writes from now on.
        let disks = request.copyDisks ? try OutgoingDisks(devices.virtio) : nil
        defer { if session.progress.withLock({ $0.phase }) != .completed { disks?.detach() } }
        let base = lifecycle.withLock { $0.baseImage }
        let configuration = savedConfiguration(snapshotID: Self.randomHex(16), devices: devices, tscKHz: machine.tscKHz, parent: nil)
        let accept: MigrationAccept
        do {
            let encoded = try MigrationFrame.encode(configuration)
            let hello = MigrationHello(configuration: encoded, pageCount: pageCount,
                                       base: base.map { BaseSnapshot(directory: $0.directory, snapshotID: $0.snapshotID, memoryDigest: $0.memoryDigest) },
                                       disks: disks?.descriptors ?? [])
            try connection.send(.hello, value: hello)
            accept = try connection.receive(.accept, as: MigrationAccept.self)
            if let disks {
                let sent = try disks.sendInitial(over: connection) { session.isCancelled }
                session.progress.withLock { $0.diskBytesSent += sent }
            }
        } catch {
            throw fail(error)
        }
        // Round 1: everything the target lacks; later rounds: what the guest wrote meanwhile.
        // Logging starts before the first round is chosen: anything written from here on is
        // sent again in a later round.
        try machine.startDirtyLogging()
        var pending = try machine.takeDirtyPages()
        if accept.usesBase {
            let sinceBase: [[UInt64]]
            do {
                sinceBase = try machine.memory.pagesChangedFromFile()
            } catch {
                throw fail(.transport("cannot tell which pages differ from the base snapshot: \(error)"))
            }
            session.progress.withLock { $0.pagesSkippedByBase = pageCount - Self.count(sinceBase) }
            pending = sinceBase
        } else {
            pending = machine.memory.regions.map { r in
                let pages = Int(r.size / GuestMemory.pageSize)
                var words = [UInt64](repeating: ~0, count: (pages + 63) / 64)
                if pages % 64 != 0 { words[words.count - 1] = (1 << UInt64(pages % 64)) - 1 }
                return words
            }
        }
        session.progress.withLock { $0.phase = .precopy }
        let downtimeBudget = Double(request.maxDowntimeMilliseconds) / 1000
        var throttle = 0
        while true {
            guard !session.isCancelled else { throw fail(.cancelled) }
            guard monotonicSeconds() - started < Double(request.timeoutSeconds) else {
                throw fail(.transport("not converged within \(request.timeoutSeconds) s"))
            }
            let roundStart = monotonicSeconds()
            let bytesBefore = connection.bytesSent
            let sent: UInt64
            do throws(MigrationError) {
                sent = try sendPages(pending, memory: machine.memory, over: connection, session: session, limit: request.bandwidthLimit)
                if let disks {
                    let diskBytes = try disks.sendDirty(over: connection) { session.isCancelled }
                    session.progress.withLock { $0.diskBytesSent += diskBytes }
                }
                // Wait until the target has applied the round: bytes in socket buffers have
                // not arrived, and would otherwise count as downtime at the switch-over.
                try connection.send(.sync, [])
                let answer = try connection.receive()
                guard answer.kind == .synced else { throw .malformed("expected synced, got \(answer.kind)") }
            } catch {
                throw fail(error)
            }
            let elapsed = max(monotonicSeconds() - roundStart, 1e-6)
            let bandwidth = Double(connection.bytesSent - bytesBefore) / elapsed
            pending = try machine.takeDirtyPages()
            let dirty = Self.count(pending)
            session.progress.withLock { p in
                p.rounds += 1
                p.bandwidth = sent > 0 ? bandwidth : p.bandwidth
                p.dirtyRate = Double(dirty) / elapsed
                p.remainingPages = dirty
                p.bytesSent = connection.bytesSent
                p.totalMilliseconds = (monotonicSeconds() - started) * 1000
            }
            let rate = session.progress.withLock { $0.bandwidth }
            let expected = rate > 0 ? Double(dirty) * Double(GuestMemory.pageSize) / rate : 0
            let rounds = session.progress.withLock { $0.rounds }
            if expected <= downtimeBudget || rounds >= MigrationTuning.maxRounds { break }
            // The guest dirties memory faster than it leaves: slow its vCPUs down.
            if request.autoConverge && rounds >= MigrationTuning.throttleAfterRound && Double(dirty) > Double(sent) / 2 {
                throttle = throttle == 0 ? MigrationTuning.initialThrottle : min(throttle + MigrationTuning.throttleIncrement, MigrationTuning.maxThrottle)
                machine.setThrottle(percent: throttle)
                session.progress.withLock { $0.throttlePercent = throttle }
            }
        }
        try switchOver(session, machine: machine, devices: devices, connection: connection, pending: pending, disks: disks, started: started, fail: fail)
    }

    /// Pauses the VM, sends what is left and the device state, and hands the VM over; on any
    /// failure the VM runs on here as if nothing happened.
    /// `pending` are the pages dirtied during the last round, not sent yet.
    private func switchOver(_ session: MigrationSession, machine: Machine, devices: PlatformDevices, connection: MigrationConnection,
                            pending: [[UInt64]], disks: OutgoingDisks?, started: Double, fail: (MigrationError) -> VMError) throws(VMError) {
        try operation.withLock { _ throws(VMError) in
            let wasPaused = lifecycle.withLock { $0.paused }
            let pausedAt = monotonicSeconds()
            if !wasPaused { try pauseLocked() }
            StartTrace.mark("paused")
            machine.stopThrottle()
            session.progress.withLock { $0.phase = .stopAndCopy }
            var released = false
            do throws(VMError) {
                var last = try machine.takeDirtyPages()
                for (r, bitmap) in pending.enumerated() where r < last.count {
                    for i in 0..<min(bitmap.count, last[r].count) { last[r][i] |= bitmap[i] }
                }
                do throws(MigrationError) {
                    _ = try sendPages(last, memory: machine.memory, over: connection, session: session, limit: nil)
                    if let disks {
                        let diskBytes = try disks.sendDirty(over: connection) { session.isCancelled }
                        session.progress.withLock { $0.diskBytesSent += diskBytes }
                    }
                } catch {
                    throw fail(error)
                }
                StartTrace.mark("last-pages-sent")
                let state = StateFileBuilder.migrationState(configuration: savedConfiguration(snapshotID: Self.randomHex(16), devices: devices,
                                                                                               tscKHz: machine.tscKHz, parent: nil),
                                                            machine: try machine.saveState(), devices: try devices.saveState())
                let stateBytes = try state.get()
                StartTrace.mark("state-saved")
                // Shared storage: flush and close the disks so the target can lock them.
                if disks == nil {
                    try devices.virtio.releaseDisks()
                    released = true
                }
                let (sentPages, diskBytes) = session.progress.withLock { ($0.pagesSent, $0.diskBytesSent) }
                do throws(MigrationError) {
                    try connection.send(.state, stateBytes)
                    try connection.send(.complete, value: MigrationComplete(pagesSent: sentPages, diskBytesSent: diskBytes))
                    connection.timeout = 60
                    StartTrace.mark("complete-sent")
                    let ready = try connection.receive()
                    StartTrace.mark("ready-received")
                    guard ready.kind == .ready else { throw .malformed("expected ready, got \(ready.kind)") }
                } catch {
                    throw fail(error)
                }
            } catch {
                if released { try? devices.virtio.reacquireDisks() }
                if !wasPaused { try? resumeLocked() }
                throw error
            }
            let downtime = (monotonicSeconds() - pausedAt) * 1000
            if StartTrace.enabled { MonitorLog.logger().notice("trace: \(StartTrace.summary)") }
            session.progress.withLock { p in
                p.phase = .completed
                p.downtimeMilliseconds = downtime
                p.bytesSent = connection.bytesSent
                p.remainingPages = 0
                p.totalMilliseconds = (monotonicSeconds() - started) * 1000
            }
            // The target runs the VM now: this one ends (the monitor exits with status 0).
            stop()
        }
    }

    /// Sends the pages set in `bitmaps` (one per region) in batches; zero pages as tokens.
    private func sendPages(_ bitmaps: [[UInt64]], memory: GuestMemory, over connection: MigrationConnection, session: MigrationSession,
                           limit: UInt64?) throws(MigrationError) -> UInt64 {
        var batch = PageBatch()
        var sent: UInt64 = 0
        var zero: UInt64 = 0
        var first: UInt64 = 0
        let startBytes = connection.bytesSent
        let start = monotonicSeconds()
        func flush() throws(MigrationError) {
            guard !batch.isEmpty else { return }
            guard !session.isCancelled else { throw .cancelled }
            try connection.send(.pages, batch.serialized())
            batch = PageBatch()
            if let limit, limit > 0 {
                // Pace to the bandwidth cap.
                let due = Double(connection.bytesSent - startBytes) / Double(limit)
                let ahead = due - (monotonicSeconds() - start)
                if ahead > 0 {
                    var ts = timespec(tv_sec: Int(ahead), tv_nsec: Int((ahead - Double(Int(ahead))) * 1e9))
                    unsafe nanosleep(&ts, nil)
                }
            }
        }
        for (r, region) in memory.regions.enumerated() {
            let pages = Int(region.size / GuestMemory.pageSize)
            let words = r < bitmaps.count ? bitmaps[r] : []
            for w in 0..<min(words.count, (pages + 63) / 64) where words[w] != 0 {
                var bits = words[w]
                while bits != 0 {
                    let bit = bits.trailingZeroBitCount
                    bits &= bits - 1
                    let page = w * 64 + bit
                    guard page < pages else { break }
                    let host = unsafe UnsafeRawPointer(region.hostAddress + page * Int(GuestMemory.pageSize))
                    if unsafe MemoryImageWriter.isZeroPage(host) {
                        batch.appendZero(first + UInt64(page))
                        zero += 1
                    } else {
                        unsafe batch.append(first + UInt64(page), contents: UnsafeRawBufferPointer(start: host, count: Int(GuestMemory.pageSize)))
                    }
                    sent += 1
                    if batch.isFull { try flush() }
                }
            }
            first += UInt64(pages)
        }
        try flush()
        session.progress.withLock { p in
            p.pagesSent += sent
            p.zeroPages += zero
            p.bytesSent = connection.bytesSent
        }
        return sent
    }

    static func count(_ bitmaps: [[UInt64]]) -> UInt64 {
        bitmaps.reduce(0) { $0 + $1.reduce(0) { $0 + UInt64($1.nonzeroBitCount) } }
    }
}

/// The state frame of a migration: a state file with the same sections as a snapshot's
/// (configuration, machine, devices), so the target checks it the same way.
enum StateFileBuilder {
    static func migrationState(configuration: SavedConfiguration, machine: MachineState, devices: PlatformDevicesState) -> Result<[UInt8], VMError> {
        var file = StateFile()
        do {
            try file.add(SnapshotSection.configuration, configuration)
            try file.add(SnapshotSection.machine, machine)
            try file.add(SnapshotSection.devices, devices)
        } catch {
            return .failure(VMError("cannot encode the VM state: \(error)"))
        }
        return .success(file.serialized())
    }
}
