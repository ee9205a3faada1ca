#if canImport(Glibc)
import Glibc
#endif
import ControlProtocol
import CSkiffSystem
import GuestMemory
import KVM
import Snapshot
import SystemExtras

extension VirtualMachine {
    /// Writes a snapshot of the running (or paused) VM to `request.directory`: the VM pauses,
    /// its state and memory are written atomically, and it resumes unless `stopAfter` (a VM
    /// that was paused before stays paused). A diff snapshot holds only the pages written
    /// since the previous snapshot and refers to it.
    public func createSnapshot(_ request: SnapshotRequest) throws(VMError) -> SnapshotSummary {
        try operation.withLock { _ throws(VMError) -> SnapshotSummary in
            let wasPaused = lifecycle.withLock { $0.paused }
            guard !lifecycle.withLock({ $0.migrating }) else { throw VMError("a migration is in progress", kind: .invalidState) }
            let started = monotonicSeconds()
            if !wasPaused { try pauseLocked() }
            do throws(VMError) {
                let summary = try writeSnapshot(request, pausedSince: started)
                if request.stopAfter {
                    stop()
                } else if !wasPaused {
                    try resumeLocked()
                }
                return SnapshotSummary(directory: summary.directory, diff: request.diff, pagesWritten: summary.pages,
                                       memoryFileBytes: summary.memoryBytes, stateFileBytes: summary.stateBytes,
                                       pausedMilliseconds: (monotonicSeconds() - started) * 1000, resumed: !request.stopAfter && !wasPaused)
            } catch {
                if !wasPaused { try? resumeLocked() }
                throw error
            }
        }
    }

    private func writeSnapshot(_ request: SnapshotRequest, pausedSince: Double) throws(VMError) -> (directory: String, pages: UInt64, memoryBytes: UInt64, stateBytes: UInt64) {
        guard request.directory.utf8.count <= SnapshotRequest.maxPathLength, !request.directory.isEmpty else {
            throw VMError("invalid snapshot directory path", kind: .invalidRequest)
        }
        let (machine, devices) = current.withLock { ($0.machine, $0.devices) }
        guard let machine, let devices else { throw VMError("the VM is not running") }
        let directory = Self.absolutePath(request.directory)
        var parent: SnapshotLineage?
        var selection: [[UInt64]]?
        if request.diff {
            let (last, base) = lifecycle.withLock { ($0.lastSnapshot, $0.baseImage) }
            guard let last else {
                throw VMError("a diff snapshot needs an earlier snapshot of this VM (take a full snapshot first)", kind: .invalidState)
            }
            parent = last
            if machine.isLoggingDirtyPages {
                selection = try machine.takeDirtyPages()
            } else if last == base || machine.memory.backing == .privateFile {
                // A restored VM that has not written a snapshot yet: what differs from the file it maps.
                do {
                    selection = try machine.memory.pagesChangedFromFile()
                } catch {
                    throw VMError("cannot tell which pages changed since \(last.directory): \(error)")
                }
            } else {
                throw VMError("a diff snapshot needs an earlier snapshot of this VM (take a full snapshot first)", kind: .invalidState)
            }
        }
        let machineState = try machine.saveState()
        let deviceState = try devices.saveState()
        let identity = Self.randomHex(16)
        let configuration = savedConfiguration(snapshotID: identity, devices: devices, tscKHz: machine.tscKHz, parent: parent)
        let (image, stateBytes) = try Self.writeFiles(to: directory, memory: machine.memory, selection: selection,
                                                     configuration: configuration, machine: machineState, devices: deviceState)
        // From here on dirty pages are counted against this snapshot.
        if !request.diff {
            try machine.startDirtyLogging()
            _ = try machine.takeDirtyPages()
        }
        lifecycle.withLock { $0.lastSnapshot = SnapshotLineage(directory: directory, snapshotID: identity, memoryDigest: image.digest) }
        return (directory, image.pagesWritten, image.fileSize, UInt64(stateBytes))
    }

    /// Writes the memory and state files into a new snapshot directory, atomically.
    private static func writeFiles(to directory: String, memory: GuestMemory, selection: [[UInt64]]?, configuration: SavedConfiguration,
                                   machine: MachineState, devices: PlatformDevicesState) throws(VMError) -> (MemoryImage, Int) {
        do throws(SnapshotError) {
            let writer = try SnapshotDirectoryWriter(path: directory)
            let fd = try writer.create(SnapshotDirectoryWriter.memoryFileName)
            defer { close(fd) }
            let sources = unsafe memory.regions.map {
                unsafe MemoryImageWriter.Source(guestAddress: $0.guestAddress, host: UnsafeRawPointer($0.hostAddress), size: $0.size)
            }
            let image = unsafe try MemoryImageWriter.write(sources, to: fd, path: writer.temporaryPath, selection: selection)
            try writer.sync(fd, name: SnapshotDirectoryWriter.memoryFileName)
            var file = StateFile()
            try file.add(SnapshotSection.configuration, configuration)
            try file.add(SnapshotSection.memory, image)
            try file.add(SnapshotSection.machine, machine)
            try file.add(SnapshotSection.devices, devices)
            let bytes = file.serialized()
            try writer.write(SnapshotDirectoryWriter.stateFileName, bytes)
            try writer.commit()
            return (image, bytes.count)
        } catch {
            throw VMError("snapshot: \(error)")
        }
    }

    /// The configuration record a snapshot carries.
    func savedConfiguration(snapshotID: String, devices: PlatformDevices, tscKHz: UInt32, parent: SnapshotLineage?) -> SavedConfiguration {
        let c = configuration
        return SavedConfiguration(
            snapshotID: snapshotID, createdAt: Self.wallClock(), memorySize: c.memorySize, vcpuCount: c.vcpuCount,
            cpuTemplate: c.cpuTemplate.rawValue, onReboot: c.onReboot.rawValue, emulationAssist: c.emulationAssist.rawValue,
            kernelPath: c.kernelPath, initrdPath: c.initrdPath, commandLine: c.commandLine, kernelFormat: c.kernelFormat.rawValue,
            modules: c.modules.map { .init(path: $0.path, commandLine: $0.commandLine) },
            devices: devices.virtio.savedSpecs(), tscKHz: tscKHz, generationID: lifecycle.withLock { $0.generation.bytes },
            balloonTargetPages: balloonTarget.withLock { $0 }, parent: parent)
    }

    static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: 4096)
        guard unsafe getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(cString: buffer)
        return (cwd.hasSuffix("/") ? cwd : cwd + "/") + (path.hasPrefix("./") ? String(path.dropFirst(2)) : path)
    }

    static func randomHex(_ bytes: Int) -> String {
        var b = [UInt8](repeating: 0, count: bytes)
        unsafe b.withUnsafeMutableBytes { _ = unsafe getrandom($0.baseAddress, $0.count, 0) }
        return b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    static func wallClock() -> Double {
        var ts = timespec()
        unsafe clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
