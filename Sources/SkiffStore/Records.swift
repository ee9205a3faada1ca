import Foundation
import GRDB

/// One VM as the database keeps it. The monitor's pid and start time say which process runs
/// it; whether it still runs is asked of the kernel, never of this row.
public struct VMRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "vm"

    public var name: String
    /// The spec as JSON (SkiffSpec.VMSpec).
    public var spec: String
    /// What the user asked for: running, paused or stopped.
    public var desiredState: String
    /// What the daemon last saw: stopped, starting, running, paused, stopping or crashed.
    public var actualState: String
    public var pid: Int64?
    public var pidStartTime: Int64?
    public var apiSocket: String?
    public var restartCount: Int64
    public var lastExitStatus: Int64?
    public var lastExitSignal: Int64?
    public var lastExitAt: Date?
    public var lastExitDescription: String?
    public var createdAt: Date
    public var startedAt: Date?
    /// The unprivileged uid (and gid) the VM's jailed monitor runs as; kept for the VM's life.
    public var jailUid: Int64?
    /// `<chroot base>/skiff-vmm/<name>` while the VM's last run was jailed (its sockets and
    /// console log are under `root/run`); nil for a monitor started without the jailer.
    public var jailDirectory: String?
    /// A jailed VM's monitor as the host sees it (`pid` is then its jailer, the watched process).
    public var monitorPid: Int64?
    public var monitorStartTime: Int64?

    public init(name: String, spec: String, createdAt: Date = Date()) {
        self.name = name
        self.spec = spec
        self.desiredState = "stopped"
        self.actualState = "stopped"
        self.restartCount = 0
        self.createdAt = createdAt
    }
}

/// A TAP the daemon gave to a VM's uid: the owner and group it had before (nil: none), or
/// that the daemon created it. When the VM stops for good the owner is put back, or a TAP the
/// daemon created is deleted, so a later VM given the same uid cannot attach to it.
public struct TapOwnerRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "tapOwner"
    public var name: String
    public var vm: String
    public var uid: Int64?
    public var gid: Int64?
    public var created: Bool
    public var createdAt: Date

    public init(name: String, vm: String, uid: Int64?, gid: Int64?, created: Bool, createdAt: Date = Date()) {
        self.name = name
        self.vm = vm
        self.uid = uid
        self.gid = gid
        self.created = created
        self.createdAt = createdAt
    }
}

/// The owner a file had before the daemon gave it to a VM's uid (libvirt's remember_owner):
/// put back when the VM stops for good or is deleted.
public struct FileOwnerRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "fileOwner"
    public var path: String
    public var vm: String
    public var uid: Int64
    public var gid: Int64
    public var createdAt: Date

    public init(path: String, vm: String, uid: Int64, gid: Int64, createdAt: Date = Date()) {
        self.path = path
        self.vm = vm
        self.uid = uid
        self.gid = gid
        self.createdAt = createdAt
    }
}

/// A disk image in the daemon's store.
public struct ImageRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "image"
    public var name: String
    public var path: String
    public var format: String
    public var sizeBytes: Int64
    public var createdAt: Date

    public init(name: String, path: String, format: String, sizeBytes: Int64, createdAt: Date = Date()) {
        self.name = name
        self.path = path
        self.format = format
        self.sizeBytes = sizeBytes
        self.createdAt = createdAt
    }
}

/// A long operation and how far it got.
public struct TaskRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "task"
    public var id: String
    public var kind: String
    public var vm: String?
    /// running, succeeded or failed.
    public var state: String
    public var progress: Double
    public var message: String?
    /// Result fields as a JSON object of strings.
    public var result: String?
    public var errorCode: String?
    public var errorMessage: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, kind: String, vm: String?, createdAt: Date = Date()) {
        self.id = id
        self.kind = kind
        self.vm = vm
        self.state = "running"
        self.progress = 0
        self.createdAt = createdAt
        self.updatedAt = createdAt
    }
}

/// Something that happened to a VM or the host.
public struct EventRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "event"
    public var id: Int64?
    public var time: Date
    public var vm: String?
    public var kind: String
    public var message: String

    public init(time: Date = Date(), vm: String?, kind: String, message: String) {
        self.time = time
        self.vm = vm
        self.kind = kind
        self.message = message
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// Memory the automatic balloon policy took from a VM's monitor (its pid and start time), to
/// give back when host memory pressure falls, also after a daemon restart.
public struct BalloonTakenRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "balloonTaken"
    public var vm: String
    public var takenMiB: Int64
    public var pid: Int64
    public var pidStartTime: Int64
    /// When the policy last took from it (the most recent is given back first).
    public var takenAt: Date

    public init(vm: String, takenMiB: Int64, pid: Int64, pidStartTime: Int64, takenAt: Date = Date()) {
        self.vm = vm
        self.takenMiB = takenMiB
        self.pid = pid
        self.pidStartTime = pidStartTime
        self.takenAt = takenAt
    }
}
