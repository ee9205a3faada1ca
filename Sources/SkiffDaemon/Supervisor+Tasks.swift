import ControlProtocol
import Foundation
import SkiffSpec
import SkiffStore

extension Supervisor {
    // MARK: Snapshot and restore

    /// Writes a snapshot of a running VM through its monitor (`snapshot`), as a task.
    func snapshot(_ name: String, directory: String?, diff: Bool) throws(DaemonError) -> TaskRecord {
        _ = try runningSocket(name)
        // The monitor and the daemon have their own working directories: only absolute paths.
        if let directory, !directory.hasPrefix("/") {
            throw DaemonError(.invalidRequest, "the snapshot directory must be an absolute path, not '\(directory.prefix(200))'")
        }
        let dir = directory ?? "\(files(name).directory)/snapshots/\(Self.stamp())"
        if FileManager.default.fileExists(atPath: dir) { throw DaemonError(.conflict, "\(dir) already exists") }
        return try tasks.launch(kind: "snapshot", vm: name) { progress in
            try await self.serialized(name) { () async throws -> [String: String] in
                let socket = try self.runningSocket(name)
                try? FileManager.default.createDirectory(atPath: (dir as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                progress.update(0.05, "writing \(dir)")
                let s = try await self.writeSnapshot(name, socket: socket, to: dir, diff: diff)
                self.events.publish(vm: name, kind: "snapshot", "VM \(name): snapshot \(dir) (paused \(Int(s.pausedMilliseconds)) ms)")
                return ["directory": dir, "pagesWritten": String(s.pagesWritten), "memoryFileBytes": String(s.memoryFileBytes),
                        "pausedMilliseconds": String(format: "%.1f", s.pausedMilliseconds)]
            }
        }
    }

    /// Runs a stopped VM from a snapshot directory (`skiff-vmm --restore DIR`), as a task.
    func restore(_ name: String, directory: String) throws(DaemonError) -> TaskRecord {
        let r = try record(name)
        if let id = Self.identity(of: r), id.isAlive() { throw DaemonError(.invalidState, "VM '\(name)' is \(r.actualState): stop it first") }
        guard directory.hasPrefix("/") else {
            throw DaemonError(.invalidRequest, "the snapshot directory must be an absolute path, not '\(directory.prefix(200))'")
        }
        guard FileManager.default.fileExists(atPath: "\(directory)/state") else {
            throw DaemonError(.invalidRequest, "\(directory) is not a snapshot directory (no state file)")
        }
        return try tasks.launch(kind: "restore", vm: name) { progress in
            try await self.serialized(name) { () async throws -> [String: String] in
                progress.update(0.1, "restoring from \(directory)")
                let record = try await self.startLocked(name, reason: "restored", restoreFrom: directory)
                return ["directory": directory, "pid": String(record.pid ?? 0)]
            }
        }
    }

    /// Has the monitor write a snapshot at `dir`. A jailed monitor can write only in its
    /// jail's /run: it writes `/run/NAME` there, which is then moved to `dir` (a copy across
    /// filesystems).
    func writeSnapshot(_ name: String, socket: String, to dir: String, diff: Bool) async throws(DaemonError) -> SnapshotSummary {
        let r = try record(name)
        guard let run = files(name, jailDirectory: r.jailDirectory).jailRun else {
            guard case .snapshot(let s) = try await control(socket, .snapshot(SnapshotRequest(directory: dir, diff: diff)), timeout: 600) else {
                throw DaemonError(.monitorFailed, "the monitor answered snapshot with something else")
            }
            return s
        }
        let inJail = "snapshot-\(Self.stamp())"
        guard case .snapshot(let s) = try await control(socket, .snapshot(SnapshotRequest(directory: "/run/\(inJail)", diff: diff)), timeout: 600) else {
            throw DaemonError(.monitorFailed, "the monitor answered snapshot with something else")
        }
        let written = "\(run)/\(inJail)"
        do {
            if unsafe rename(written, dir) != 0 {
                guard errno == EXDEV else { throw DaemonError(.internal, unsafe "cannot move \(written) to \(dir): \(String(cString: strerror(errno)))") }
                try FileManager.default.copyItem(atPath: written, toPath: dir)
                try? FileManager.default.removeItem(atPath: written)
            }
        } catch {
            try? FileManager.default.removeItem(atPath: written)
            throw DaemonError(.storageFull, "cannot move the snapshot to \(dir): \(error)")
        }
        return s
    }

    // MARK: Fork

    /// Snapshots a running VM and starts `count` new VMs from the snapshot (sharing its
    /// unmodified pages), as a task. VMs with writable disks, NICs or vsock are refused: their
    /// host resources cannot be shared.
    func fork(_ name: String, count: Int, prefix: String?) throws(DaemonError) -> TaskRecord {
        _ = try runningSocket(name)
        let spec = try Self.spec(of: try record(name))
        if (spec.disks ?? []).contains(where: { $0.readonly != true }) || !(spec.nics ?? []).isEmpty || spec.vsock != nil {
            throw DaemonError(.unsupported, "VM '\(name)' has writable disks, NICs or vsock, which forks cannot share")
        }
        let base = prefix ?? name
        let names = (1...max(1, count)).map { "\(base)-\($0)" }
        for n in names {
            guard VMSpec.isValidName(n) else { throw DaemonError(.invalidRequest, "fork name '\(n)' is not a valid name") }
            if (try? store.vm(named: n)) != nil { throw DaemonError(.conflict, "a VM named '\(n)' already exists") }
        }
        let dir = "\(files(name).directory)/snapshots/fork-\(Self.stamp())"
        return try tasks.launch(kind: "fork", vm: name) { progress in
            try await self.serialized(name) { () async throws in
                let socket = try self.runningSocket(name)
                try? FileManager.default.createDirectory(atPath: (dir as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                _ = try await self.writeSnapshot(name, socket: socket, to: dir, diff: false)
            }
            // The forks map the snapshot the source's uid wrote: they run as that uid too.
            let sourceUID = try self.record(name).jailUid
            progress.update(0.2, "snapshot written")
            var started: [String] = []
            for (i, n) in names.enumerated() {
                var child = spec
                child.name = n
                _ = try await self.create(child)
                if let sourceUID { _ = try? self.store.updateVM(n) { $0.jailUid = sourceUID } }
                try await self.serialized(n) { () async throws in
                    _ = try await self.startLocked(n, reason: "forked", restoreFrom: dir)
                }
                started.append(n)
                progress.update(0.2 + 0.8 * Double(i + 1) / Double(names.count), "started \(n)")
            }
            return ["snapshot": dir, "vms": started.joined(separator: ",")]
        }
    }

    // MARK: Migration

    /// Moves a running (or paused) VM to a monitor waiting with `--incoming` (a bare monitor, or
    /// one another daemon started for `POST /migrations/incoming`), as a task; progress is the
    /// monitor's (`waitForMigration`). Afterwards the VM runs there, and here it is stopped (its
    /// restart policy does not start it again); if the move fails it keeps running here.
    /// `bandwidth` caps the stream (bytes a second).
    func migrate(_ name: String, destination: String, maxDowntimeMs: Int?, copyDisks: Bool, bandwidth: UInt64? = nil) throws(DaemonError) -> TaskRecord {
        guard destination.utf8.count <= 512, let endpoint = MigrationEndpoint(destination) else {
            throw DaemonError(.invalidRequest, "destination must be tcp://HOST:PORT or unix:PATH, not '\(destination.prefix(200))'")
        }
        _ = try runningSocket(name)
        let current = try record(name)
        guard current.actualState == "running" || current.actualState == "paused" else {
            throw DaemonError(.invalidState, "VM '\(name)' is \(current.actualState): only a running or paused VM migrates")
        }
        if case .unix = endpoint, current.jailDirectory != nil {
            throw DaemonError(.invalidRequest, "VM '\(name)' runs jailed and cannot reach a host unix socket: migrate over tcp://HOST:PORT")
        }
        let memory = try Self.spec(of: current).memoryBytes
        return try tasks.launch(kind: "migrate", vm: name) { progress in
            try await self.serialized(name) { () async throws -> [String: String] in
                let r = try self.record(name)
                guard let identity = Self.identity(of: r), let socket = r.apiSocket else { throw DaemonError(.invalidState, "VM '\(name)' is not running") }
                // The source monitor exits after a successful move: that exit is not a crash.
                do { try self.store.updateVM(name) { $0.desiredState = "stopped" } } catch { throw DaemonError.from(error) }
                var request = MigrationRequest(destination: endpoint, copyDisks: copyDisks)
                if let ms = maxDowntimeMs { request.maxDowntimeMilliseconds = UInt32(ms) }
                request.bandwidthLimit = bandwidth
                do {
                    _ = try await self.control(socket, .migrate(request))
                    while true {
                        let reply = try? await self.control(socket, .waitForMigration(seconds: 2), timeout: 10)
                        guard case .migration(let p)? = reply else {
                            // The monitor left: it exits right after a completed migration.
                            if await self.controller(name).waitForExit(of: identity, timeout: 5) != nil { break }
                            continue
                        }
                        let fraction = min(0.99, Double(p.bytesSent) / Double(max(1, memory)) / 2)
                        progress.update(fraction, "\(p.phase.rawValue): \(p.bytesSent >> 20) MiB sent, round \(p.rounds)")
                        if p.phase == .completed { break }
                        if p.phase == .failed || p.phase == .cancelled {
                            throw DaemonError(.monitorFailed, "migration \(p.phase.rawValue): \(p.error ?? "no reason given")")
                        }
                    }
                } catch {
                    _ = try? self.store.updateVM(name) { $0.desiredState = "running" }
                    throw DaemonError.from(error)
                }
                let status = await self.controller(name).waitForExit(of: identity, timeout: 30) ?? .unknown
                _ = try self.recordExit(name, identity, status, how: "migrated to \(destination)")
                return ["destination": destination]
            }
        }
    }

    // MARK: Images

    /// Copies a disk image into the store, as a task. The source must be a regular file named
    /// by an absolute path (a directory, a device or a FIFO would copy forever or not at all);
    /// a qcow2 source must stand alone (no backing file). The copy is written to `NAME.FMT.partial`,
    /// fsynced and renamed; the image exists (in `GET /images`) only once it is complete, and a
    /// failed copy leaves nothing behind.
    func importImage(name: String, source: String, format: DiskFormatName?) throws(DaemonError) -> TaskRecord {
        guard VMSpec.isValidName(name) else { throw DaemonError(.invalidRequest, "image name '\(name.prefix(80))' is not valid") }
        guard source.hasPrefix("/"), source.utf8.count <= 4096 else {
            throw DaemonError(.invalidRequest, "the source must be an absolute path, not '\(source.prefix(200))'")
        }
        var st = stat()
        guard unsafe stat(source, &st) == 0 else {
            throw DaemonError(.invalidRequest, "source \(source) does not exist")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            let kind = switch st.st_mode & S_IFMT {
            case S_IFDIR: "a directory"
            case S_IFCHR: "a character device"
            case S_IFBLK: "a block device"
            case S_IFIFO: "a FIFO"
            case S_IFSOCK: "a socket"
            default: "not a regular file"
            }
            throw DaemonError(.invalidRequest, "source \(source) is \(kind): an image is imported from a regular file")
        }
        guard FileManager.default.isReadableFile(atPath: source) else { throw DaemonError(.invalidRequest, "source \(source) cannot be read") }
        let size = UInt64(st.st_size)
        let isQCOW2 = Self.isQCOW2(source)
        let detected: DiskFormatName = format ?? (isQCOW2 ? .qcow2 : .raw)
        if detected == .qcow2 {
            guard isQCOW2 else { throw DaemonError(.invalidRequest, "source \(source) is not a qcow2 image (no QFI\\xfb magic)") }
            if Self.qcow2HasBacking(source) {
                throw DaemonError(.invalidRequest, "source \(source) is a qcow2 image with a backing file: convert it into a standalone image first")
            }
        }
        let target = "\(configuration.dataDirectory)/images/\(name).\(detected.rawValue)"
        if (try? store.image(named: name)) != nil { throw DaemonError(.conflict, "an image named '\(name)' already exists") }
        // Two imports of one name at once would write the same file.
        guard importing.withLock({ $0.insert(name).inserted }) else {
            throw DaemonError(.conflict, "an image named '\(name)' is being imported")
        }
        let store = self.store
        let task: TaskRecord
        do {
            task = try tasks.launch(kind: "imageImport", vm: nil) { progress in
                defer { _ = self.importing.withLock { $0.remove(name) } }
                progress.update(0, "copying \(source) (\(size >> 20) MiB)")
                return try await self.pool.run { () throws -> [String: String] in
                    let copied = try Self.copy(source, to: target) { done in
                        progress.update(Double(done) / Double(max(1, size)) * 0.99, "copied \(done >> 20) of \(size >> 20) MiB")
                    }
                    do {
                        try store.insertImage(ImageRecord(name: name, path: target, format: detected.rawValue, sizeBytes: Int64(clamping: copied)))
                    } catch {
                        unsafe unlink(target)
                        throw error
                    }
                    return ["path": target, "format": detected.rawValue, "sizeBytes": String(copied)]
                }
            }
        } catch {
            _ = importing.withLock { $0.remove(name) }
            throw error
        }
        return task
    }

    /// Removes copies a previous daemon left unfinished (`images/*.partial`).
    func removePartialImports() {
        let dir = "\(configuration.dataDirectory)/images"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where entry.hasSuffix(".partial") {
            unsafe unlink("\(dir)/\(entry)")
        }
    }

    func deleteImage(_ name: String) throws(DaemonError) {
        guard let image = try? store.image(named: name) else { throw DaemonError(.notFound, "no image named '\(name)'") }
        for r in (try? store.allVMs()) ?? [] {
            if let spec = try? Self.spec(of: r), (spec.disks ?? []).contains(where: { $0.clone == name }) {
                throw DaemonError(.invalidState, "VM '\(r.name)' has a disk cloned from image '\(name)': delete the VM first")
            }
        }
        do { try store.deleteImage(name) } catch { throw DaemonError.from(error) }
        unsafe unlink(image.path)
        events.publish(vm: nil, kind: "image-deleted", "image \(name) deleted")
    }

    static func isQCOW2(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path), let d = try? h.read(upToCount: 4) else { return false }
        try? h.close()
        return d == Data([0x51, 0x46, 0x49, 0xFB])
    }

    /// Whether a qcow2 image names a backing file (header bytes 8-15, big-endian, non-zero).
    static func qcow2HasBacking(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path), let d = try? h.read(upToCount: 16), d.count == 16 else { return false }
        try? h.close()
        return d[8..<16].contains { $0 != 0 }
    }

    /// Copies a file through a temporary name, fsyncs it and renames it into place; returns
    /// the bytes copied. On failure the temporary file is removed.
    @discardableResult
    static func copy(_ source: String, to target: String, progress: (UInt64) -> Void) throws -> UInt64 {
        let tmp = target + ".partial"
        guard let input = FileHandle(forReadingAtPath: source) else { throw DaemonError(.invalidRequest, "cannot read \(source)") }
        defer { try? input.close() }
        // What was opened is checked again: the path may have been swapped since the request.
        var st = stat()
        guard unsafe fstat(input.fileDescriptor, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw DaemonError(.invalidRequest, "source \(source) is not a regular file")
        }
        guard FileManager.default.createFile(atPath: tmp, contents: nil), let output = FileHandle(forWritingAtPath: tmp) else {
            unsafe unlink(tmp)
            throw DaemonError(.internal, "cannot write \(tmp)")
        }
        var done: UInt64 = 0
        do {
            while let chunk = try input.read(upToCount: 4 << 20), !chunk.isEmpty {
                try output.write(contentsOf: chunk)
                done += UInt64(chunk.count)
                progress(done)
            }
            try output.synchronize()
            try output.close()
        } catch {
            try? output.close()
            unsafe unlink(tmp)
            throw DaemonError(.storageFull, "cannot copy \(source): \(error.localizedDescription)")
        }
        guard unsafe rename(tmp, target) == 0 else {
            unsafe unlink(tmp)
            throw DaemonError(.internal, unsafe "cannot rename \(tmp): \(String(cString: strerror(errno)))")
        }
        return done
    }

    static func stamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss-SSS"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}
