import Foundation
import GRDB

/// Why the database refused: `full` when the disk is full (nothing was written), `conflict`
/// for a name taken, `notFound`, or another failure.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case full, conflict, notFound, failed }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }

    static func wrap(_ error: any Error) -> StoreError {
        if let e = error as? StoreError { return e }
        if let e = error as? DatabaseError {
            switch e.resultCode {
            case .SQLITE_FULL: return StoreError(.full, "the daemon's database cannot grow: the disk is full (nothing was changed)")
            case .SQLITE_CONSTRAINT: return StoreError(.conflict, "already exists")
            case .SQLITE_IOERR where e.extendedResultCode.rawValue == 3338 || e.extendedResultCode.rawValue == 4874:
                return StoreError(.full, "the daemon's database cannot grow: the disk is full (nothing was changed)")
            default: return StoreError(.failed, "database: \(e.message ?? "\(e)")")
            }
        }
        return StoreError(.failed, "database: \(error)")
    }
}

/// The daemon's SQLite database (WAL mode, versioned migrations). Every change is one
/// transaction: a failure (a full disk included) leaves the previous state.
public final class Store: Sendable {
    let pool: DatabasePool
    public let path: String

    /// Opens (creating and migrating) the database at `path`.
    public init(path: String) throws(StoreError) {
        self.path = path
        do {
            var config = Configuration()
            config.busyMode = .timeout(5)
            pool = try DatabasePool(path: path, configuration: config)
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreError.wrap(error)
        }
    }

    /// The schema, one migration per version; applied migrations are recorded by GRDB.
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.create(table: "vm") { t in
                t.column("name", .text).primaryKey()
                t.column("spec", .text).notNull()
                t.column("desiredState", .text).notNull()
                t.column("actualState", .text).notNull()
                t.column("pid", .integer)
                t.column("pidStartTime", .integer)
                t.column("apiSocket", .text)
                t.column("restartCount", .integer).notNull().defaults(to: 0)
                t.column("lastExitStatus", .integer)
                t.column("lastExitSignal", .integer)
                t.column("lastExitAt", .datetime)
                t.column("lastExitDescription", .text)
                t.column("createdAt", .datetime).notNull()
                t.column("startedAt", .datetime)
            }
            try db.create(table: "image") { t in
                t.column("name", .text).primaryKey()
                t.column("path", .text).notNull()
                t.column("format", .text).notNull()
                t.column("sizeBytes", .integer).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(table: "task") { t in
                t.column("id", .text).primaryKey()
                t.column("kind", .text).notNull()
                t.column("vm", .text)
                t.column("state", .text).notNull()
                t.column("progress", .double).notNull()
                t.column("message", .text)
                t.column("result", .text)
                t.column("errorCode", .text)
                t.column("errorMessage", .text)
                t.column("createdAt", .datetime).notNull()
                t.column("updatedAt", .datetime).notNull()
            }
            try db.create(table: "event") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("time", .datetime).notNull()
                t.column("vm", .text)
                t.column("kind", .text).notNull()
                t.column("message", .text).notNull()
            }
            try db.create(index: "event_vm", on: "event", columns: ["vm", "id"])
        }
        m.registerMigration("v2-balloon-taken") { db in
            try db.create(table: "balloonTaken") { t in
                t.column("vm", .text).primaryKey().references("vm", onDelete: .cascade)
                t.column("takenMiB", .integer).notNull()
                t.column("pid", .integer).notNull()
                t.column("pidStartTime", .integer).notNull()
                t.column("takenAt", .datetime).notNull()
            }
        }
        // Jailed monitors: the VM's own uid, where its jail is, the monitor's host pid (the
        // watched process is the jailer), and the original owners of files given to a VM's uid.
        m.registerMigration("v3-jail") { db in
            try db.alter(table: "vm") { t in
                t.add(column: "jailUid", .integer)
                t.add(column: "jailDirectory", .text)
                t.add(column: "monitorPid", .integer)
                t.add(column: "monitorStartTime", .integer)
            }
            try db.create(table: "fileOwner") { t in
                t.column("path", .text).primaryKey()
                t.column("vm", .text).notNull()
                t.column("uid", .integer).notNull()
                t.column("gid", .integer).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(index: "fileOwner_vm", on: "fileOwner", columns: ["vm"])
        }
        // TAPs given to a VM's uid: their earlier owner and group, or that the daemon made them.
        m.registerMigration("v4-tap-owner") { db in
            try db.create(table: "tapOwner") { t in
                t.column("name", .text).primaryKey()
                t.column("vm", .text).notNull()
                t.column("uid", .integer)
                t.column("gid", .integer)
                t.column("created", .boolean).notNull()
                t.column("createdAt", .datetime).notNull()
            }
            try db.create(index: "tapOwner_vm", on: "tapOwner", columns: ["vm"])
        }
        return m
    }

    /// The schema versions applied (for tests and diagnostics).
    public func appliedMigrations() throws(StoreError) -> [String] {
        do { return try pool.read { try Self.migrator.appliedMigrations($0) } } catch { throw StoreError.wrap(error) }
    }

    private func write<T>(_ body: @Sendable (Database) throws -> T) throws(StoreError) -> T {
        do { return try pool.write(body) } catch { throw StoreError.wrap(error) }
    }

    private func read<T>(_ body: @Sendable (Database) throws -> T) throws(StoreError) -> T {
        do { return try pool.read(body) } catch { throw StoreError.wrap(error) }
    }

    // MARK: VMs

    /// Adds a VM; a taken name is a `conflict`.
    public func insertVM(_ record: VMRecord) throws(StoreError) {
        try write { db in
            if try VMRecord.fetchOne(db, key: record.name) != nil {
                throw StoreError(.conflict, "a VM named '\(record.name)' already exists")
            }
            try record.insert(db)
        }
    }

    public func vm(named name: String) throws(StoreError) -> VMRecord? {
        try read { db in try VMRecord.fetchOne(db, key: name) }
    }

    public func allVMs() throws(StoreError) -> [VMRecord] {
        try read { db in try VMRecord.order(Column("name")).fetchAll(db) }
    }

    /// Changes a VM in one transaction and returns it.
    @discardableResult
    public func updateVM(_ name: String, _ change: @Sendable (inout VMRecord) -> Void) throws(StoreError) -> VMRecord {
        try write { db in
            guard var record = try VMRecord.fetchOne(db, key: name) else { throw StoreError(.notFound, "no VM named '\(name)'") }
            change(&record)
            try record.update(db)
            return record
        }
    }

    public func deleteVM(_ name: String) throws(StoreError) {
        try write { db in _ = try VMRecord.deleteOne(db, key: name) }
    }

    /// The VM's jail uid: the one it has, or the lowest of `range` no other VM has and
    /// `isFree` accepts (one transaction, so two VMs never get the same one).
    public func assignJailUID(_ name: String, range: ClosedRange<Int64>, isFree: @Sendable (Int64) -> Bool) throws(StoreError) -> Int64 {
        try write { db in
            guard var record = try VMRecord.fetchOne(db, key: name) else { throw StoreError(.notFound, "no VM named '\(name)'") }
            if let uid = record.jailUid { return uid }
            let taken = Set(try Int64.fetchAll(db, sql: "SELECT jailUid FROM vm WHERE jailUid IS NOT NULL"))
            var candidate = range.lowerBound
            while candidate <= range.upperBound {
                if !taken.contains(candidate) && isFree(candidate) {
                    record.jailUid = candidate
                    try record.update(db)
                    return candidate
                }
                candidate += 1
            }
            throw StoreError(.conflict, "no free uid left in \(range.lowerBound)-\(range.upperBound) for VM '\(name)'")
        }
    }

    // MARK: File owners

    /// Remembers the owner a file had before it was given to VM `vm`'s uid. A file already
    /// remembered for the same VM keeps its first (original) owner; one remembered for another
    /// VM is a `conflict` (that VM has it).
    public func rememberOwner(_ owner: FileOwnerRecord) throws(StoreError) {
        try write { db in
            if let existing = try FileOwnerRecord.fetchOne(db, key: owner.path) {
                if existing.vm == owner.vm { return }
                throw StoreError(.conflict, "\(owner.path) is in use by VM '\(existing.vm)'")
            }
            try owner.insert(db)
        }
    }

    /// The remembered owners of VM `vm`'s files.
    public func owners(of vm: String) throws(StoreError) -> [FileOwnerRecord] {
        try read { db in try FileOwnerRecord.filter(Column("vm") == vm).order(Column("path")).fetchAll(db) }
    }

    public func forgetOwner(_ path: String) throws(StoreError) {
        try write { db in _ = try FileOwnerRecord.deleteOne(db, key: path) }
    }

    // MARK: TAP owners

    /// Remembers a TAP given to VM `tap.vm`'s uid. One already remembered for the same VM keeps
    /// its first record; one remembered for another VM is a `conflict` (that VM has it).
    public func rememberTap(_ tap: TapOwnerRecord) throws(StoreError) {
        try write { db in
            if let existing = try TapOwnerRecord.fetchOne(db, key: tap.name) {
                if existing.vm == tap.vm { return }
                throw StoreError(.conflict, "TAP \(tap.name) is in use by VM '\(existing.vm)'")
            }
            try tap.insert(db)
        }
    }

    /// The TAPs given to VM `vm`'s uid.
    public func taps(of vm: String) throws(StoreError) -> [TapOwnerRecord] {
        try read { db in try TapOwnerRecord.filter(Column("vm") == vm).order(Column("name")).fetchAll(db) }
    }

    public func forgetTap(_ name: String) throws(StoreError) {
        try write { db in _ = try TapOwnerRecord.deleteOne(db, key: name) }
    }

    // MARK: Images

    public func insertImage(_ record: ImageRecord) throws(StoreError) {
        try write { db in
            if try ImageRecord.fetchOne(db, key: record.name) != nil {
                throw StoreError(.conflict, "an image named '\(record.name)' already exists")
            }
            try record.insert(db)
        }
    }

    public func image(named name: String) throws(StoreError) -> ImageRecord? {
        try read { db in try ImageRecord.fetchOne(db, key: name) }
    }

    public func allImages() throws(StoreError) -> [ImageRecord] {
        try read { db in try ImageRecord.order(Column("name")).fetchAll(db) }
    }

    public func deleteImage(_ name: String) throws(StoreError) {
        try write { db in _ = try ImageRecord.deleteOne(db, key: name) }
    }

    // MARK: Tasks

    public func insertTask(_ record: TaskRecord) throws(StoreError) {
        try write { db in try record.insert(db) }
    }

    @discardableResult
    public func updateTask(_ id: String, _ change: @Sendable (inout TaskRecord) -> Void) throws(StoreError) -> TaskRecord {
        try write { db in
            guard var record = try TaskRecord.fetchOne(db, key: id) else { throw StoreError(.notFound, "no task '\(id)'") }
            change(&record)
            record.updatedAt = Date()
            try record.update(db)
            return record
        }
    }

    public func task(id: String) throws(StoreError) -> TaskRecord? {
        try read { db in try TaskRecord.fetchOne(db, key: id) }
    }

    public func recentTasks(limit: Int = 100) throws(StoreError) -> [TaskRecord] {
        try read { db in try TaskRecord.order(Column("createdAt").desc).limit(limit).fetchAll(db) }
    }

    /// Marks tasks a previous daemon left running as failed (their work stopped with it).
    public func failInterruptedTasks() throws(StoreError) {
        try write { db in
            try db.execute(sql: """
                UPDATE task SET state = 'failed', errorCode = 'internal',
                errorMessage = 'the daemon restarted while the task ran', updatedAt = ? WHERE state = 'running'
                """, arguments: [Date()])
        }
    }

    // MARK: Balloon policy

    /// What the balloon policy has taken, per VM.
    public func balloonTaken() throws(StoreError) -> [BalloonTakenRecord] {
        try read { db in try BalloonTakenRecord.fetchAll(db) }
    }

    /// Records what the policy has taken from a VM (a record of 0 MiB or less is removed).
    public func setBalloonTaken(_ record: BalloonTakenRecord) throws(StoreError) {
        try write { db in
            if record.takenMiB <= 0 {
                _ = try BalloonTakenRecord.deleteOne(db, key: record.vm)
            } else {
                try record.save(db)
            }
        }
    }

    public func clearBalloonTaken(_ vm: String) throws(StoreError) {
        try write { db in _ = try BalloonTakenRecord.deleteOne(db, key: vm) }
    }

    // MARK: Events

    /// Appends an event; keeps at most `keep` events (oldest dropped).
    @discardableResult
    public func appendEvent(vm: String?, kind: String, message: String, keep: Int = 10_000) throws(StoreError) -> EventRecord {
        try write { db in
            var event = EventRecord(vm: vm, kind: kind, message: message)
            try event.insert(db)
            if let id = event.id, id % 500 == 0 {
                try db.execute(sql: "DELETE FROM event WHERE id <= ?", arguments: [id - Int64(keep)])
            }
            return event
        }
    }

    /// Events with an id above `since`, oldest first.
    public func events(since: Int64 = 0, vm: String? = nil, limit: Int = 1000) throws(StoreError) -> [EventRecord] {
        try read { db in
            var request = EventRecord.filter(Column("id") > since)
            if let vm { request = request.filter(Column("vm") == vm) }
            return try request.order(Column("id")).limit(limit).fetchAll(db)
        }
    }
}
