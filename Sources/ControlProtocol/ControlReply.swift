/// A monitor's answer to one `ControlRequest`.
public enum ControlReply: Codable, Sendable, Equatable {
    /// The request was carried out and has nothing to report.
    case done
    case status(VMStatus)
    case snapshot(SnapshotSummary)
    case migration(MigrationProgress)
    case balloon(BalloonReport)
    case metrics([Metric])
    case failure(ControlError)
}

/// Whether the VM runs.
public enum VMRunState: String, Codable, Sendable, Equatable {
    case running
    case paused
    /// Paused for the last phase of a migration, or moved away and about to exit.
    case migrating
    case stopped
}

/// A VM's state and identity as its monitor sees it.
public struct VMStatus: Codable, Sendable, Equatable {
    public var state: VMRunState
    public var vcpus: Int
    public var memoryBytes: UInt64
    /// Seconds since the monitor started the VM.
    public var uptimeSeconds: Double
    /// Snapshot directory the VM was restored or forked from, if any.
    public var restoredFrom: String?
    /// The VM generation ID the guest sees (32 hex digits), if the VM has one.
    public var generationID: String?
    /// Whether a migration is in progress.
    public var migrating: Bool

    public init(state: VMRunState, vcpus: Int, memoryBytes: UInt64, uptimeSeconds: Double, restoredFrom: String? = nil,
                generationID: String? = nil, migrating: Bool = false) {
        self.state = state
        self.vcpus = vcpus
        self.memoryBytes = memoryBytes
        self.uptimeSeconds = uptimeSeconds
        self.restoredFrom = restoredFrom
        self.generationID = generationID
        self.migrating = migrating
    }
}

/// What a snapshot wrote and how long it took.
public struct SnapshotSummary: Codable, Sendable, Equatable {
    public var directory: String
    public var diff: Bool
    /// Guest pages written to the memory file (zero pages are left as holes).
    public var pagesWritten: UInt64
    public var memoryFileBytes: UInt64
    public var stateFileBytes: UInt64
    /// How long the VM was paused (milliseconds).
    public var pausedMilliseconds: Double
    /// Whether the VM runs again (false with `stopAfter`).
    public var resumed: Bool

    public init(directory: String, diff: Bool, pagesWritten: UInt64, memoryFileBytes: UInt64, stateFileBytes: UInt64,
                pausedMilliseconds: Double, resumed: Bool) {
        self.directory = directory
        self.diff = diff
        self.pagesWritten = pagesWritten
        self.memoryFileBytes = memoryFileBytes
        self.stateFileBytes = stateFileBytes
        self.pausedMilliseconds = pausedMilliseconds
        self.resumed = resumed
    }
}

/// Where a migration is and what it has sent.
public struct MigrationProgress: Codable, Sendable, Equatable {
    public enum Phase: String, Codable, Sendable, Equatable {
        /// No migration was started.
        case none
        case connecting
        /// Sending memory while the VM runs.
        case precopy
        /// VM paused, sending the rest and the device state.
        case stopAndCopy
        /// The target runs the VM; this monitor exits.
        case completed
        case failed
        case cancelled
    }
    public var phase: Phase
    public var destination: String
    /// Pre-copy rounds done (the first sends all memory).
    public var rounds: Int
    public var bytesSent: UInt64
    public var pagesSent: UInt64
    /// Pages sent as zero-page tokens.
    public var zeroPages: UInt64
    /// Pages the target already had from a shared base snapshot, not sent.
    public var pagesSkippedByBase: UInt64
    /// Dirty pages left after the last round.
    public var remainingPages: UInt64
    /// Measured throughput (bytes per second).
    public var bandwidth: Double
    /// Guest dirty rate in the last round (pages per second).
    public var dirtyRate: Double
    /// vCPU throttle applied by auto-converge (percent of time stolen).
    public var throttlePercent: Int
    /// How long the VM was paused at switch-over (milliseconds), once completed.
    public var downtimeMilliseconds: Double?
    public var totalMilliseconds: Double
    /// Disk bytes copied (non-shared storage).
    public var diskBytesSent: UInt64
    /// Why it failed or was cancelled.
    public var error: String?

    public init(phase: Phase, destination: String = "", rounds: Int = 0, bytesSent: UInt64 = 0, pagesSent: UInt64 = 0, zeroPages: UInt64 = 0,
                pagesSkippedByBase: UInt64 = 0, remainingPages: UInt64 = 0, bandwidth: Double = 0, dirtyRate: Double = 0,
                throttlePercent: Int = 0, downtimeMilliseconds: Double? = nil, totalMilliseconds: Double = 0, diskBytesSent: UInt64 = 0,
                error: String? = nil) {
        self.phase = phase
        self.destination = destination
        self.rounds = rounds
        self.bytesSent = bytesSent
        self.pagesSent = pagesSent
        self.zeroPages = zeroPages
        self.pagesSkippedByBase = pagesSkippedByBase
        self.remainingPages = remainingPages
        self.bandwidth = bandwidth
        self.dirtyRate = dirtyRate
        self.throttlePercent = throttlePercent
        self.downtimeMilliseconds = downtimeMilliseconds
        self.totalMilliseconds = totalMilliseconds
        self.diskBytesSent = diskBytesSent
        self.error = error
    }
}

/// The balloon as the host sees it.
public struct BalloonReport: Codable, Sendable, Equatable {
    public var targetPages: UInt32
    public var actualPages: UInt32
    public var inflatedPages: UInt64
    public var deflatedPages: UInt64
    public var reportedPages: UInt64
    public var rejected: UInt64
    public var statisticsUpdates: UInt64
    /// The guest's latest memory statistics (name, value), e.g. ("free-memory", bytes).
    public var statistics: [Metric]

    public init(targetPages: UInt32, actualPages: UInt32, inflatedPages: UInt64, deflatedPages: UInt64, reportedPages: UInt64,
                rejected: UInt64, statisticsUpdates: UInt64, statistics: [Metric]) {
        self.targetPages = targetPages
        self.actualPages = actualPages
        self.inflatedPages = inflatedPages
        self.deflatedPages = deflatedPages
        self.reportedPages = reportedPages
        self.rejected = rejected
        self.statisticsUpdates = statisticsUpdates
        self.statistics = statistics
    }
}

/// One named counter.
public struct Metric: Codable, Sendable, Equatable {
    public var name: String
    public var value: UInt64
    public init(name: String, value: UInt64) {
        self.name = name
        self.value = value
    }
}

/// Why a request failed: a stable code for programs and a message for people.
public struct ControlError: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Codable, Sendable, Equatable {
        /// The request is malformed or a value is out of range.
        case invalidRequest
        /// The VM is in the wrong state for it (e.g. resume while running).
        case invalidState
        /// This monitor or VM cannot do it (e.g. no balloon device).
        case unsupported
        /// Another long operation is in progress.
        case busy
        /// It was tried and failed (the message says why).
        case failed
        /// Client and monitor speak different protocol versions.
        case protocolMismatch
        /// The connection broke or timed out.
        case transport
    }
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
