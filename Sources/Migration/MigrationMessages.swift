/// The first frame: what VM is coming and how its memory and disks will travel.
public struct MigrationHello: Codable, Sendable, Equatable {
    /// The VM's configuration record, encoded by the monitor (opaque to this layer).
    public var configuration: [UInt8]
    /// Guest RAM in 4 KiB pages: bounds every page number in the stream.
    public var pageCount: UInt64
    /// The snapshot the source VM was restored or forked from: if the target holds the same
    /// one, only the pages that differ from it travel.
    public var base: BaseSnapshot?
    /// Disks copied with the VM (empty with shared storage).
    public var disks: [DiskDescriptor]

    public init(configuration: [UInt8], pageCount: UInt64, base: BaseSnapshot?, disks: [DiskDescriptor]) {
        self.configuration = configuration
        self.pageCount = pageCount
        self.base = base
        self.disks = disks
    }
}

/// A snapshot identified by its directory, identity and memory digest.
public struct BaseSnapshot: Codable, Sendable, Equatable {
    public var directory: String
    public var snapshotID: String
    public var memoryDigest: UInt64
    public init(directory: String, snapshotID: String, memoryDigest: UInt64) {
        self.directory = directory
        self.snapshotID = snapshotID
        self.memoryDigest = memoryDigest
    }
}

/// A disk whose contents travel in the stream.
public struct DiskDescriptor: Codable, Sendable, Equatable {
    /// Index among the VM's disks, in PCI slot order.
    public var index: Int
    /// Guest-visible size in bytes.
    public var size: UInt64
    /// "raw" or "qcow2".
    public var format: String
    /// For a qcow2 overlay: the backing file the target must already hold (only the
    /// overlay's own clusters travel).
    public var backingFile: String?
    public var backingFormat: String?

    public init(index: Int, size: UInt64, format: String, backingFile: String?, backingFormat: String?) {
        self.index = index
        self.size = size
        self.format = format
        self.backingFile = backingFile
        self.backingFormat = backingFormat
    }
}

/// The target's answer to `hello`.
public struct MigrationAccept: Codable, Sendable, Equatable {
    /// The target holds the base snapshot (same identity and digest) and maps it.
    public var usesBase: Bool
    public init(usesBase: Bool) { self.usesBase = usesBase }
}

/// The end of the source's stream.
public struct MigrationComplete: Codable, Sendable, Equatable {
    public var pagesSent: UInt64
    public var diskBytesSent: UInt64
    public init(pagesSent: UInt64, diskBytesSent: UInt64) {
        self.pagesSent = pagesSent
        self.diskBytesSent = diskBytesSent
    }
}

/// Why one side gives up.
public struct MigrationAbort: Codable, Sendable, Equatable {
    public var reason: String
    public init(reason: String) { self.reason = String(reason.prefix(1000)) }
}
