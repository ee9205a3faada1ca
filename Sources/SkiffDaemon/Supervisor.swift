import CloudInit
import ControlProtocol
import Foundation
import HostProcess
import HostResources
import Logging
import SkiffSpec
import SkiffStore
import Storage
import Synchronization

/// The daemon's core: VMs from specs, their monitors (spawned, watched, re-attached, restarted
/// per policy), and the records of it all. Requests on one VM run one at a time (its
/// controller's queue); requests on different VMs run concurrently.
public final class Supervisor: Sendable {
    public let configuration: DaemonConfiguration
    let store: Store
    let events: EventBus
    let watcher: ExitWatcher
    let cgroups: (any CgroupDriver)?
    let capabilities: MonitorCapabilities
    let monitorPath: String
    /// How monitors are jailed; nil: they run unconfined, as the daemon's user.
    let jail: JailSettings?
    let pool: BlockingPool
    let logger: Logger
    let tasks: TaskRunner
    public let metrics = DaemonMetrics()
    let consoleLease = ConsoleLease()
    let balloonPolicy: BalloonPolicy
    private let controllers = Mutex<[String: VMController]>([:])
    /// Names of images being imported.
    let importing = Mutex<Set<String>>([])
    /// The unix sockets monitors of VMs migrating in listen on, by VM (removed if they die).
    let incomingListeners = Mutex<[String: String]>([:])

    /// - Parameter jailerPath: the `skiff-jailer` to use when `configuration.jailer` allows
    ///   (default: none, so `auto` runs monitors unconfined).
    public init(configuration: DaemonConfiguration, monitorPath: String, jailerPath: String? = nil, logger: Logger) throws(DaemonError) {
        self.configuration = configuration
        self.monitorPath = monitorPath
        self.logger = logger
        if let jailerPath {
            jail = try JailSettings.resolve(configuration, jailerPath: jailerPath, monitorPath: monitorPath)
        } else if configuration.jailer == .on {
            throw DaemonError(.invalidRequest, "--jailer on: no jailer given")
        } else {
            jail = nil
        }
        if let jail {
            logger.notice("monitors run jailed: \(jail.jailerPath), jails in \(jail.chrootBase), uids \(jail.uids.lowerBound)-\(jail.uids.upperBound)")
        } else {
            logger.notice("monitors run unconfined (jailer \(configuration.jailer.rawValue)\(configuration.jailer == .auto ? ": not root, or no skiff-jailer" : ""))")
        }
        let fm = FileManager.default
        for dir in [configuration.dataDirectory, "\(configuration.dataDirectory)/vms", "\(configuration.dataDirectory)/images",
                    configuration.resolvedRunDirectory] {
            do {
                try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw DaemonError(.internal, "cannot create \(dir): \(error.localizedDescription)")
            }
        }
        do {
            store = try Store(path: "\(configuration.dataDirectory)/skiffd.db")
        } catch {
            throw DaemonError.from(error)
        }
        events = EventBus(store: store, logger: logger)
        do {
            watcher = try ExitWatcher()
        } catch {
            throw DaemonError(.internal, "cannot watch processes: \(error)")
        }
        cgroups = Cgroups.detect()
        capabilities = MonitorCapabilities.probe(monitor: monitorPath)
        pool = BlockingPool()
        tasks = TaskRunner(store: store, events: events)
        balloonPolicy = BalloonPolicy(store: store)
        try? store.failInterruptedTasks()
        removePartialImports()
    }

    func controller(_ name: String) -> VMController {
        controllers.withLock { c in
            if let existing = c[name] { return existing }
            let new = VMController(name: name)
            c[name] = new
            return new
        }
    }

    /// The VM's files as its last (or current) run placed them: in its jail if it was jailed.
    func files(_ name: String) -> VMFiles {
        files(name, jailDirectory: (try? store.vm(named: name))?.jailDirectory)
    }

    func files(_ name: String, jailDirectory: String?) -> VMFiles {
        VMFiles(name: name, dataDirectory: configuration.dataDirectory, runDirectory: configuration.resolvedRunDirectory, jailDirectory: jailDirectory)
    }

    /// Lets the blocking pool's threads end (the daemon's exit; its VMs keep running).
    public func shutdown() async {
        await pool.shutdown()
    }

    func record(_ name: String) throws(DaemonError) -> VMRecord {
        do {
            guard let r = try store.vm(named: name) else { throw DaemonError.notFound(name) }
            return r
        } catch {
            throw DaemonError.from(error)
        }
    }

    static func spec(of record: VMRecord) throws(DaemonError) -> VMSpec {
        do {
            return try JSONDecoder().decode(VMSpec.self, from: Data(record.spec.utf8))
        } catch {
            throw DaemonError(.internal, "the stored spec of '\(record.name)' cannot be read: \(error)")
        }
    }

    static func encode(_ spec: VMSpec) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? String(decoding: encoder.encode(spec), as: UTF8.self)) ?? "{}"
    }

    /// Serialises `body` with the other requests on VM `name`.
    func serialized<T: Sendable>(_ name: String, _ body: @Sendable () async throws -> T) async throws(DaemonError) -> T {
        do {
            return try await controller(name).queue.run(body)
        } catch {
            throw DaemonError.from(error)
        }
    }

    // MARK: Queries

    public func list() throws(DaemonError) -> [VMRecord] {
        do { return try store.allVMs() } catch { throw DaemonError.from(error) }
    }

    public func show(_ name: String) throws(DaemonError) -> VMRecord { try record(name) }

    // MARK: Create and delete

    /// Validates `spec`, checks the files it names and the host's capacity, makes the disks
    /// and seed the daemon owns, and records the VM. Nothing is left behind on failure.
    public func create(_ spec: VMSpec) async throws(DaemonError) -> VMRecord {
        do { try spec.validate() } catch { throw DaemonError(.invalidRequest, error.message) }
        let files = files(spec.name, jailDirectory: nil)
        try files.checkSocketPaths()
        if let jail { try self.files(spec.name, jailDirectory: jail.directory(spec.name)).checkSocketPaths() }
        try checkFilesExist(spec)
        return try await serialized(spec.name) { () async throws -> VMRecord in
            if (try? self.store.vm(named: spec.name)) != nil {
                throw DaemonError(.conflict, "a VM named '\(spec.name)' already exists")
            }
            try self.admit(spec)
            let fm = FileManager.default
            if fm.fileExists(atPath: files.directory) {
                try? fm.removeItem(atPath: files.directory)
            }
            // A jail left by an earlier VM of this name is not this one's.
            if let jail = self.jail { try? fm.removeItem(atPath: jail.directory(spec.name)) }
            do {
                try fm.createDirectory(atPath: files.directory, withIntermediateDirectories: true)
            } catch {
                throw DaemonError(.internal, "cannot create \(files.directory): \(error.localizedDescription)")
            }
            do {
                try self.makeDisks(spec, files)
                if let seed = spec.cloudInit {
                    do {
                        try CloudInitSeed.build(at: files.seed, instanceID: spec.name, userData: seed.userData,
                                                metaData: seed.metaData, networkConfig: seed.networkConfig)
                    } catch {
                        throw DaemonError(.internal, "\(error)")
                    }
                }
                let record = VMRecord(name: spec.name, spec: Self.encode(spec))
                do { try self.store.insertVM(record) } catch { throw DaemonError.from(error) }
                self.events.publish(vm: spec.name, kind: "created", "VM \(spec.name) created")
                return record
            } catch {
                try? fm.removeItem(atPath: files.directory)
                throw DaemonError.from(error)
            }
        }
    }

    /// Every file a spec names must exist before a VM is created (and again at start).
    func checkFilesExist(_ spec: VMSpec) throws(DaemonError) {
        let fm = FileManager.default
        func check(_ path: String, _ what: String) throws(DaemonError) {
            var isDirectory: ObjCBool = false
            guard unsafe fm.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw DaemonError(.invalidRequest, "\(what) \(path) does not exist")
            }
            guard fm.isReadableFile(atPath: path) else { throw DaemonError(.invalidRequest, "\(what) \(path) cannot be read") }
        }
        try check(spec.kernel, "kernel")
        if let initrd = spec.initrd { try check(initrd, "initrd") }
        for (i, disk) in (spec.disks ?? []).enumerated() {
            if let path = disk.path { try check(path, "disks[\(i)].path") }
            if let base = disk.clone {
                if !base.contains("/"), (try? store.image(named: base)) != nil { continue }
                try check(base, "disks[\(i)].clone: base image")
            }
        }
    }

    /// Disks the daemon makes: a qcow2 overlay for each `clone`.
    func makeDisks(_ spec: VMSpec, _ files: VMFiles) throws(DaemonError) {
        for (i, disk) in (spec.disks ?? []).enumerated() {
            guard let base = disk.clone else { continue }
            var basePath = base
            var baseFormat = disk.format ?? .raw
            if !base.contains("/"), let image = try? store.image(named: base) {
                basePath = image.path
                baseFormat = DiskFormatName(rawValue: image.format) ?? .raw
            }
            do {
                try ImageOperations.clone(base: basePath, baseFormat: baseFormat == .qcow2 ? .qcow2 : .raw, to: files.disk(i))
            } catch {
                throw DaemonError(.invalidRequest, "disks[\(i)]: cannot clone \(basePath): \(error)")
            }
        }
    }

    /// The disk paths a monitor opens, in spec order.
    func diskPaths(_ spec: VMSpec, _ files: VMFiles) -> [String] {
        (spec.disks ?? []).enumerated().map { i, d in d.clone != nil ? files.disk(i) : d.path ?? "" }
    }

    /// Deletes a stopped VM (`force`: kills it first) with the files the daemon made for it.
    public func delete(_ name: String, force: Bool) async throws(DaemonError) {
        if force {
            let r = try record(name)
            if r.pid != nil { _ = try await kill(name) }
        }
        try await serialized(name) { () async throws in
            let r = try self.record(name)
            if let identity = Self.identity(of: r), identity.isAlive() {
                throw DaemonError(.invalidState, "VM '\(name)' is \(r.actualState): stop it first (or delete with force)")
            }
            let files = self.files(name)
            self.releaseFiles(name)
            if let directory = r.jailDirectory { try? FileManager.default.removeItem(atPath: directory) }
            if let jail = self.jail { try? FileManager.default.removeItem(atPath: jail.directory(name)) }
            do { try self.store.deleteVM(name) } catch { throw DaemonError.from(error) }
            self.cgroups?.remove(vm: name)
            try? FileManager.default.removeItem(atPath: files.directory)
            for s in [files.apiSocket, files.consoleSocket, files.vsockSocket] { unsafe unlink(s) }
            self.events.publish(vm: name, kind: "deleted", "VM \(name) deleted")
        }
        controllers.withLock { _ = $0.removeValue(forKey: name) }
    }

    static func identity(of record: VMRecord) -> ProcessIdentity? {
        guard let pid = record.pid, let start = record.pidStartTime else { return nil }
        return ProcessIdentity(pid: Int32(pid), startTime: UInt64(start))
    }
}
