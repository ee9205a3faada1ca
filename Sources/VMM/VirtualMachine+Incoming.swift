import ArchX86
import CKVM
import ControlProtocol
import DeviceModel
import GuestMemory
import KVM
import Migration
import Snapshot
import SystemExtras

/// How to receive a migrating VM.
public struct IncomingOptions: Sendable {
    /// Devices that replace the source's host-side resources, as for a restore.
    public var restore = RestoreOptions()
    /// Where this host keeps the snapshot the source VM was forked or restored from, if not
    /// at the same path as on the source.
    public var baseDirectory: String?
    /// How long to wait for the source to connect (nil: forever).
    public var acceptTimeout: Double?

    public init() {}
}

extension VirtualMachine {
    /// Waits for a migrating VM on `listener`, receives its memory and state, and builds it
    /// here (its devices reopened: shared disks, TAPs, vsock sockets). The source is told the
    /// VM is ready just before this returns; `run()` continues the guest. Any failure is sent
    /// to the source (which keeps running the VM) and thrown. `stop`: a descriptor whose
    /// readability ends the wait for the source (see `MigrationListener.accept`).
    public static func receiveMigration(on listener: MigrationListener, options: IncomingOptions, console: any ConsoleOutput,
                                        kvmPath: String = "/dev/kvm", stopWhenReadable stop: Int32? = nil) throws(VMError) -> VirtualMachine {
        let connection: MigrationConnection
        do {
            connection = try listener.accept(timeout: options.acceptTimeout, stopWhenReadable: stop)
        } catch {
            throw VMError(error.description)
        }
        do throws(VMError) {
            return try receive(over: connection, options: options, console: console, kvmPath: kvmPath)
        } catch {
            connection.abort(error.message)
            throw error
        }
    }

    private static func receive(over connection: MigrationConnection, options: IncomingOptions, console: any ConsoleOutput,
                                kvmPath: String) throws(VMError) -> VirtualMachine {
        let hello = try stream { () throws(MigrationError) in try connection.receive(.hello, as: MigrationHello.self) }
        let checked = try IncomingHello(hello, restore: options.restore)
        let (saved, configuration, memoryMap, pageCount) = (checked.saved, checked.configuration, checked.memoryMap, checked.pageCount)
        // Disks copied with the VM are created where this VM's disks go (as given with --disk).
        var disks: IncomingDisks?
        if !hello.disks.isEmpty {
            disks = try IncomingDisks(hello.disks, paths: checked.diskPaths)
        }
        do {
            return try finishReceiving(over: connection, hello: hello, saved: saved, configuration: configuration, memoryMap: memoryMap,
                                       pageCount: pageCount, disks: disks, options: options, console: console, kvmPath: kvmPath)
        } catch {
            disks?.abandon()
            throw error
        }
    }

    private static func finishReceiving(over connection: MigrationConnection, hello: MigrationHello, saved: SavedConfiguration,
                                        configuration: VMConfiguration, memoryMap: MemoryMap, pageCount: UInt64, disks: IncomingDisks?,
                                        options: IncomingOptions, console: any ConsoleOutput, kvmPath: String) throws(VMError) -> VirtualMachine {
        // KVM is opened before the pages arrive, so the switch-over does not wait for it.
        let kvm: KVMSystem
        let supported: [kvm_cpuid_entry2]
        do {
            kvm = try KVMSystem(path: kvmPath)
            supported = try kvm.supportedCPUID()
        } catch {
            throw .kvm(error)
        }
        // Map the base snapshot if this host holds the very one the source VM started from.
        var memory: GuestMemory?
        var base: SnapshotLineage?
        if let offered = hello.base {
            let directory = options.baseDirectory ?? offered.directory
            if let snapshot = try? LoadedSnapshot.load(directory), snapshot.chain.count == 1,
               snapshot.configuration.snapshotID == offered.snapshotID, snapshot.image.digest == offered.memoryDigest,
               snapshot.configuration.memorySize == configuration.memorySize, let mapped = try? snapshot.mapMemory() {
                memory = mapped
                base = SnapshotLineage(directory: snapshot.directory, snapshotID: offered.snapshotID, memoryDigest: offered.memoryDigest)
            }
        }
        let guestMemory: GuestMemory
        if let memory {
            guestMemory = memory
        } else {
            do {
                guestMemory = try GuestMemory(ranges: memoryMap.ramRanges, backing: configuration.memoryBacking)
            } catch {
                throw .memory(error)
            }
        }
        if configuration.samePageMerging { try? guestMemory.allowSamePageMerging() }
        try stream { () throws(MigrationError) in try connection.send(.accept, value: MigrationAccept(usesBase: base != nil)) }
        // Receive pages until the state arrives, then the end of the stream.
        var stateBytes: [UInt8]?
        connection.timeout = 120
        receiving: while true {
            let frame = try stream { () throws(MigrationError) in try connection.receive() }
            switch frame.kind {
            case .pages:
                let batch = try stream { () throws(MigrationError) in try PageBatch(parsing: frame.payload, pageCount: pageCount) }
                try apply(batch, to: guestMemory)
            case .disk:
                guard let disks else { throw VMError("the source sent disk data for a VM without copied disks") }
                try disks.apply(try stream { () throws(MigrationError) in try MigrationFrame.decode(DiskChunk.self, frame.payload, kind: .disk) })
            case .state:
                guard stateBytes == nil else { throw VMError("the source sent the VM state twice") }
                stateBytes = frame.payload
            case .sync:
                try stream { () throws(MigrationError) in try connection.send(.synced, []) }
            case .complete:
                StartTrace.mark("complete-received")
                break receiving
            default:
                throw VMError("unexpected \(frame.kind) frame from the source")
            }
        }
        guard let stateBytes else { throw VMError("the source ended the stream without the VM state") }
        try disks?.finish()
        let state = try IncomingState(parsing: stateBytes, vcpuCount: configuration.vcpuCount)
        let (machineState, deviceState) = (state.machine, state.devices)
        try LoadedSnapshot.checkHost(machineState, template: saved.cpuTemplate, supportedCPUID: supported,
                                     tscDeadline: kvm.checkExtension(KVM_CAP_TSC_DEADLINE_TIMER) > 0)
        StartTrace.mark("state-checked")
        let machine = try Machine(kvm: kvm, memoryMap: memoryMap, memory: guestMemory, restoring: machineState)
        StartTrace.mark("machine-restored")
        if configuration.emulationAssist != .off {
            try? machine.vm.enableCapability(UInt32(KVM_CAP_EXIT_ON_EMULATION_FAILURE), arguments: [1])
            machine.assist = EmulationAssist(guestCPUID: [])
        }
        let rateLimiters = try DeviceRateLimiters(devices: configuration.devices, limits: configuration.rateLimits)
        let devices = try PlatformDevices.install(on: machine, console: console, configuration: configuration, rateLimiters: rateLimiters)
        do {
            try devices.restoreState(deviceState, memory: guestMemory)
        } catch {
            devices.virtio.shutdown()
            throw error
        }
        StartTrace.mark("devices-restored")
        let vm = VirtualMachine(restored: configuration, console: console, kvm: kvm, supportedCPUID: supported, machine: machine, devices: devices,
                                rateLimiters: rateLimiters,
                                    generation: GenerationID(bytes: saved.generationID), restoredFrom: nil, lineage: nil,
                                    baseImage: base, balloonPages: saved.balloonTargetPages)
        try stream { () throws(MigrationError) in try connection.send(.ready, []) }
        StartTrace.mark("ready-sent")
        return vm
    }

    /// Writes a batch into guest RAM (page numbers count across the regions in order).
    package static func apply(_ batch: PageBatch, to memory: GuestMemory) throws(VMError) {
        var dataOffset = 0
        for page in batch.pages {
            var number = page.number
            var placed = false
            for region in memory.regions {
                let pages = region.size / GuestMemory.pageSize
                if number < pages {
                    let address = region.guestAddress + number * GuestMemory.pageSize
                    do {
                        if page.zero {
                            try memory.zero(at: address, length: GuestMemory.pageSize)
                        } else {
                            let end = dataOffset + Int(GuestMemory.pageSize)
                            guard end <= batch.data.count else { throw VMError("page batch data ends early") }
                            unsafe try batch.data.withUnsafeBytes { unsafe try memory.write(at: address, from: UnsafeRawBufferPointer(rebasing: $0[dataOffset..<end])) }
                            dataOffset = end
                        }
                    } catch let e as VMError {
                        throw e
                    } catch {
                        throw VMError("cannot place page \(page.number): \(error)")
                    }
                    placed = true
                    break
                }
                number -= pages
            }
            guard placed else { throw VMError("page \(page.number) is outside guest RAM") }
        }
    }
}

/// The source's hello as the target checks it: the VM's saved configuration (valid, and
/// giving a VM configuration with the restore options applied), its memory map, and a page
/// count that matches the memory size.
package struct IncomingHello {
    package let hello: MigrationHello
    let saved: SavedConfiguration
    let configuration: VMConfiguration
    package let memoryMap: MemoryMap
    /// Guest RAM in pages: every page number in the stream is below it.
    package let pageCount: UInt64
    /// Where the copied disks go: this VM's disk paths, in order.
    package let diskPaths: [String]

    package var vcpuCount: Int { configuration.vcpuCount }
    package var memorySize: UInt64 { configuration.memorySize }

    package init(_ hello: MigrationHello, restore: RestoreOptions) throws(VMError) {
        self.hello = hello
        saved = try stream { () throws(MigrationError) in
            try MigrationFrame.decode(SavedConfiguration.self, hello.configuration, kind: .hello)
        }
        do {
            try saved.validate()
        } catch {
            throw VMError(error.description)
        }
        configuration = try saved.vmConfiguration(applying: restore)
        do {
            memoryMap = try MemoryMap(ramSize: configuration.memorySize)
        } catch {
            throw VMError("\(error)")
        }
        pageCount = memoryMap.ramRanges.reduce(UInt64(0)) { $0 + $1.size / GuestMemory.pageSize }
        guard hello.pageCount == pageCount else { throw VMError("the source sends \(hello.pageCount) pages for \(configuration.memorySize >> 20) MiB of RAM") }
        diskPaths = configuration.devices.compactMap { spec -> String? in
            if case .block(let path, _, _, _) = spec { return path }
            return nil
        }
    }
}

/// The state frame as the target checks it: a state file whose machine and device sections
/// decode and validate for the VM's vCPU count.
package struct IncomingState: Equatable {
    let machine: MachineState
    let devices: PlatformDevicesState

    static let known: Set<String> = [SnapshotSection.configuration, SnapshotSection.machine, SnapshotSection.devices]

    package init(parsing bytes: [UInt8], vcpuCount: Int) throws(VMError) {
        do throws(SnapshotError) {
            let file = try StateFile(parsing: bytes, path: "migration stream", known: Self.known)
            machine = try file.decode(MachineState.self, section: SnapshotSection.machine)
            devices = try file.decode(PlatformDevicesState.self, section: SnapshotSection.devices)
        } catch {
            throw VMError(error.description)
        }
        try machine.validate(vcpuCount: vcpuCount)
        do {
            try devices.validate()
        } catch {
            throw VMError("device state: \(error)")
        }
    }

    /// A state file holding the machine and device sections again.
    package func serialized() throws(SnapshotError) -> [UInt8] {
        var file = StateFile()
        try file.add(SnapshotSection.machine, machine)
        try file.add(SnapshotSection.devices, devices)
        return file.serialized()
    }
}

/// Runs a step of the migration stream, turning its error into the VM's.
private func stream<T>(_ body: () throws(MigrationError) -> T) throws(VMError) -> T {
    do {
        return try body()
    } catch {
        throw VMError(error.description)
    }
}
