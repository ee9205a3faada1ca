/// What a client asks of one VM's monitor over its control socket.
///
/// Shared by the monitor (`skiff-vmm`, `skiff run`) and its clients (the `skiff` CLI and the
/// host daemon). Every field is checked by the monitor before use: requests come from outside.
public enum ControlRequest: Codable, Sendable, Equatable {
    /// The VM's run state and identity.
    case status
    /// Stops every vCPU and quiesces every device; the VM keeps its state until `resume`.
    case pause
    /// Continues a paused VM exactly where it stopped.
    case resume
    /// Writes a snapshot (the VM pauses for it and resumes afterwards unless `stopAfter`).
    case snapshot(SnapshotRequest)
    /// Starts moving the VM to another host; poll `migrationStatus` for progress.
    case migrate(MigrationRequest)
    /// Progress of the current or last migration.
    case migrationStatus
    /// Waits up to `seconds` (at most 10) for the migration to finish, then reports its
    /// progress: a client that waits this way gets the final report even though the source
    /// monitor exits right after a successful move.
    case waitForMigration(seconds: Double)
    /// Abandons a migration in progress; the VM keeps running here.
    case cancelMigration
    /// Sets the balloon's target size.
    case setBalloon(targetMiB: UInt64)
    /// The balloon's size, counters and the guest's fresh memory statistics.
    case balloonStatistics
    /// Counters of the running VM.
    case metrics
    /// Presses the ACPI power button: a guest that honours it shuts down cleanly.
    case powerButton
    /// Changes a device's rate limiter while the VM runs (`device` is "disk0", "net0", …).
    case setRateLimit(device: String, limits: RateLimits)
    /// Stops the VM now (as a kill of the monitor would, but with disks flushed and the
    /// monitor exiting with status 0).
    case stop

    /// The request's kind, for logs ("pause", "snapshot", …).
    public var name: String {
        switch self {
        case .status: return "status"
        case .pause: return "pause"
        case .resume: return "resume"
        case .snapshot: return "snapshot"
        case .migrate: return "migrate"
        case .migrationStatus: return "migration-status"
        case .waitForMigration: return "wait-for-migration"
        case .cancelMigration: return "cancel-migration"
        case .setBalloon: return "set-balloon"
        case .balloonStatistics: return "balloon-statistics"
        case .metrics: return "metrics"
        case .powerButton: return "power-button"
        case .setRateLimit: return "set-rate-limit"
        case .stop: return "stop"
        }
    }
}

/// A token bucket (Firecracker's rate limiter): `size` tokens, refilled completely every
/// `refillMilliseconds`; `oneTimeBurst` extra tokens are spent first, once. A size of 0
/// disables the bucket.
public struct TokenBucket: Codable, Sendable, Equatable {
    public var size: UInt64
    public var oneTimeBurst: UInt64
    public var refillMilliseconds: UInt64

    public init(size: UInt64, oneTimeBurst: UInt64 = 0, refillMilliseconds: UInt64 = 1000) {
        self.size = size
        self.oneTimeBurst = oneTimeBurst
        self.refillMilliseconds = refillMilliseconds
    }

    /// `perSecond` tokens a second: a bucket of 100 ms worth when that is a whole number,
    /// else of one second's worth.
    public static func rate(_ perSecond: UInt64, burst: UInt64 = 0) -> TokenBucket {
        perSecond >= 10 && perSecond % 10 == 0
            ? TokenBucket(size: perSecond / 10, oneTimeBurst: burst, refillMilliseconds: 100)
            : TokenBucket(size: perSecond, oneTimeBurst: burst, refillMilliseconds: 1000)
    }
}

/// The limits of one device: bytes and operations (each nil = unlimited). For a network device
/// they apply to each direction separately (`receive` and `transmit` in `RateLimits.direction`).
public struct RateLimits: Codable, Sendable, Equatable {
    public enum Direction: String, Codable, Sendable, Equatable {
        case both
        case receive
        case transmit
    }
    public var bandwidth: TokenBucket?
    public var operations: TokenBucket?
    /// For network devices; disks ignore it.
    public var direction: Direction

    public init(bandwidth: TokenBucket? = nil, operations: TokenBucket? = nil, direction: Direction = .both) {
        self.bandwidth = bandwidth
        self.operations = operations
        self.direction = direction
    }
}

/// Where and how to write a snapshot.
public struct SnapshotRequest: Codable, Sendable, Equatable {
    /// Directory to create (it must not exist) holding the state and memory files.
    public var directory: String
    /// Only the pages written since the VM's previous snapshot (which the new one refers to).
    public var diff: Bool
    /// Stop the VM after writing instead of resuming it.
    public var stopAfter: Bool

    public init(directory: String, diff: Bool = false, stopAfter: Bool = false) {
        self.directory = directory
        self.diff = diff
        self.stopAfter = stopAfter
    }

    /// Longest directory path accepted.
    public static let maxPathLength = 4096
}

/// Where a migration goes.
public enum MigrationEndpoint: Codable, Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: UInt16)
    case unix(path: String)

    /// Parses `tcp://HOST:PORT` (HOST may be a bracketed IPv6 address) or `unix:PATH`.
    public init?(_ text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty, path.utf8.count < 108 else { return nil }
            self = .unix(path: path)
            return
        }
        guard text.hasPrefix("tcp://") else { return nil }
        let rest = text.dropFirst(6)
        guard let colon = rest.lastIndex(of: ":") else { return nil }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host.utf8.count <= 255, let port = UInt16(rest[rest.index(after: colon)...]), port > 0 else { return nil }
        self = .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        }
    }
}

/// Options of a live migration.
public struct MigrationRequest: Codable, Sendable, Equatable {
    public var destination: MigrationEndpoint
    /// The longest the VM may stay paused at switch-over (milliseconds).
    public var maxDowntimeMilliseconds: UInt32
    /// Cap on the stream's rate (bytes per second; nil = as fast as the link goes).
    public var bandwidthLimit: UInt64?
    /// Throttle the vCPUs when the guest dirties memory faster than it can be sent.
    public var autoConverge: Bool
    /// Copy the disks too (the target has no shared storage); otherwise the target opens
    /// the same paths and takes the image locks at switch-over.
    public var copyDisks: Bool
    /// Give up (and keep running here) after this many seconds.
    public var timeoutSeconds: UInt32

    public init(destination: MigrationEndpoint, maxDowntimeMilliseconds: UInt32 = 50, bandwidthLimit: UInt64? = nil,
                autoConverge: Bool = true, copyDisks: Bool = false, timeoutSeconds: UInt32 = 3600) {
        self.destination = destination
        self.maxDowntimeMilliseconds = maxDowntimeMilliseconds
        self.bandwidthLimit = bandwidthLimit
        self.autoConverge = autoConverge
        self.copyDisks = copyDisks
        self.timeoutSeconds = timeoutSeconds
    }
}
