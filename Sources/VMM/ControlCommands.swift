import ControlProtocol
import Virtio

/// What the control API can do to a running VM (`VirtualMachine` provides it; tests fake it).
public protocol ControlTarget: AnyObject, Sendable {
    func status() -> VMStatus
    func pause() throws(VMError)
    func resume() throws(VMError)
    func createSnapshot(_ request: SnapshotRequest) throws(VMError) -> SnapshotSummary
    func startMigration(_ request: MigrationRequest) throws(VMError) -> MigrationProgress
    func migrationProgress() -> MigrationProgress
    /// Waits up to `seconds` for the migration to finish and returns its progress.
    func waitForMigration(seconds: Double) -> MigrationProgress
    func cancelMigration() throws(VMError)
    func setBalloonTarget(pages: UInt64) throws(VMError)
    func balloonStatistics(freshWithin timeout: Double) -> VirtioBalloon.Status?
    /// Counters of the running VM as (name, value), names made of `[a-z0-9.-]`.
    func metrics() -> [(name: String, value: UInt64)]
    /// Presses the ACPI power button.
    func pressPowerButton() throws(VMError)
    /// Stops the VM (its monitor then exits with status 0).
    func stop()
    /// Changes a device's rate limiter.
    func setRateLimit(device: String, limits: RateLimits) throws(VMError)
}

/// Turns control requests into calls on a `ControlTarget` and results into replies; every
/// value from the client is checked here first.
public enum ControlCommands {
    /// How long `balloonStatistics` waits for the guest's fresh statistics.
    public static let statisticsTimeout = 1.0
    static let pagesPerMiB: UInt64 = 256

    /// Answers one request.
    public static func handle(_ request: ControlRequest, target: any ControlTarget) -> ControlReply {
        do throws(VMError) {
            switch request {
            case .status:
                return .status(target.status())
            case .pause:
                try target.pause()
                return .done
            case .resume:
                try target.resume()
                return .done
            case .snapshot(let r):
                guard !r.directory.isEmpty, r.directory.utf8.count <= SnapshotRequest.maxPathLength, !r.directory.utf8.contains(0) else {
                    return .failure(ControlError(.invalidRequest, "invalid snapshot directory"))
                }
                return .snapshot(try target.createSnapshot(r))
            case .migrate(let r):
                guard r.maxDowntimeMilliseconds >= 1, r.maxDowntimeMilliseconds <= 600_000, r.timeoutSeconds >= 1 else {
                    return .failure(ControlError(.invalidRequest, "max downtime must be 1 ms to 10 minutes and the timeout at least 1 s"))
                }
                return .migration(try target.startMigration(r))
            case .migrationStatus:
                return .migration(target.migrationProgress())
            case .waitForMigration(let seconds):
                guard seconds.isFinite, seconds >= 0, seconds <= 10 else {
                    return .failure(ControlError(.invalidRequest, "a migration wait is 0 to 10 seconds"))
                }
                return .migration(target.waitForMigration(seconds: seconds))
            case .cancelMigration:
                try target.cancelMigration()
                return .done
            case .setBalloon(let mib):
                let (pages, overflow) = mib.multipliedReportingOverflow(by: pagesPerMiB)
                guard !overflow else { return .failure(ControlError(.invalidRequest, "balloon \(mib) MiB is larger than guest RAM")) }
                try target.setBalloonTarget(pages: pages)
                return .done
            case .balloonStatistics:
                guard let s = target.balloonStatistics(freshWithin: statisticsTimeout) else {
                    return .failure(ControlError(.unsupported, "the VM has no balloon device"))
                }
                let stats = (s.statistics?.values ?? [:]).sorted { $0.key < $1.key }.map { Metric(name: $0.key.name, value: $0.value) }
                return .balloon(BalloonReport(targetPages: s.targetPages, actualPages: s.actualPages, inflatedPages: s.inflatedPages,
                                              deflatedPages: s.deflatedPages, reportedPages: s.reportedPages, rejected: s.rejected,
                                              statisticsUpdates: s.statisticsUpdates, statistics: stats))
            case .metrics:
                return .metrics(target.metrics().map { Metric(name: $0.name, value: $0.value) })
            case .powerButton:
                try target.pressPowerButton()
                return .done
            case .stop:
                target.stop()
                return .done
            case .setRateLimit(let device, let limits):
                guard device.utf8.count <= 16, !device.isEmpty else {
                    return .failure(ControlError(.invalidRequest, "invalid device name"))
                }
                for bucket in [limits.bandwidth, limits.operations].compactMap({ $0 }) {
                    guard bucket.size == 0 || (bucket.refillMilliseconds >= 1 && bucket.refillMilliseconds <= 3_600_000) else {
                        return .failure(ControlError(.invalidRequest, "a token bucket refills every 1 ms to 1 hour"))
                    }
                }
                try target.setRateLimit(device: device, limits: limits)
                return .done
            }
        } catch {
            return .failure(ControlError(classify(error), error.message))
        }
    }

    static func classify(_ error: VMError) -> ControlError.Code {
        switch error.kind {
        case .failed: return .failed
        case .invalidState: return .invalidState
        case .unsupported: return .unsupported
        case .invalidRequest: return .invalidRequest
        }
    }
}
