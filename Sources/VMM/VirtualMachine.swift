#if canImport(Glibc)
import Glibc
#endif
import ArchX86
import CKVM
import DeviceModel
import GuestMemory
import KVM
import Synchronization
import SystemExtras
import Virtio

/// A VM across reboots: reads its kernel once, builds a `Machine` per boot, and restarts
/// it on guest reset when the configuration says so. It can be paused and resumed, written
/// to a snapshot, and built from one (`VirtualMachine(restoring:)`).
public final class VirtualMachine: Sendable {
    public let configuration: VMConfiguration
    let kvm: KVMSystem
    let console: any ConsoleOutput
    /// Kernel, initrd and modules (nil for a restored VM until a reboot needs them).
    private let images: Mutex<BootImages?>
    let supportedCPUID: [kvm_cpuid_entry2]
    let tscDeadline: Bool
    /// Disk and network rate limiters, kept across reboots.
    let rateLimiters: DeviceRateLimiters

    struct Current {
        var machine: Machine?
        var devices: PlatformDevices?
        var stopped = false
    }
    let current = Mutex(Current())

    /// What the VM reports about itself, written by the run loop and read by the control thread.
    private struct Info {
        var lastExitCounts: [String: Int] = [:]
        var lastAssist: EmulationAssist?
        var probe: CPUIDProbe.Result?
        var notices: [String] = []
        var addedKernelOptions: [String] = []
        var boots = 0
    }
    private let info = Mutex(Info())

    /// Run state, identity and snapshot lineage.
    struct Lifecycle {
        var paused = false
        var migrating = false
        var generation: GenerationID
        /// Snapshot directory the VM came from.
        var restoredFrom: String?
        /// The last snapshot this VM wrote or came from: the base of the next diff snapshot.
        var lastSnapshot: SnapshotLineage?
        /// The full snapshot whose memory file guest RAM maps (restore, fork, or a migration
        /// that used it): pages never written since still equal that file's.
        var baseImage: SnapshotLineage?
        let startedAt = monotonicSeconds()
    }
    let lifecycle: Mutex<Lifecycle>
    /// Held for the whole of a pause, resume, snapshot or migration so they never interleave.
    let operation = Mutex<Void>(())
    /// The balloon target in pages, kept across reboots.
    let balloonTarget = Mutex<UInt64>(0)
    /// The current or last outgoing migration.
    let migration = Mutex<MigrationSession?>(nil)

    /// Exit counts of the last boot.
    public var lastExitCounts: [String: Int] { info.withLock { $0.lastExitCounts } }
    /// What the CPUID probe found (nil when the emulation assist is off or the probe failed).
    public var probe: CPUIDProbe.Result? { info.withLock { $0.probe } }
    /// Options Skiff added to a Linux kernel's command line (e.g. `noxsave` when XSAVE leaks).
    public var addedKernelOptions: [String] { info.withLock { $0.addedKernelOptions } }
    /// One-time notes for the user (e.g. CPUID leaks and what Skiff did about them).
    public var notices: [String] { info.withLock { $0.notices } }
    /// How many times the guest has been booted (1 + restarts; a restored VM counts its resumption).
    public var boots: Int { info.withLock { $0.boots } }

    /// Counters of the running boot: `exits.<kind>`, and with the emulation assist
    /// `assist.failures`, `assist.batched`, `assist.unsupported`, `assist.insn.<mnemonic>`,
    /// `assist.exception.<vector>`; sorted by name.
    public func metrics() -> [(name: String, value: UInt64)] {
        let machine = current.withLock { $0.machine }
        let (lastCounts, lastAssist) = info.withLock { ($0.lastExitCounts, $0.lastAssist) }
        var out: [(name: String, value: UInt64)] = []
        for (kind, count) in machine?.exitCounts ?? lastCounts { out.append(("exits.\(kind)", UInt64(max(0, count)))) }
        if let a = machine?.assist ?? lastAssist {
            let stats = a.emulator.statistics()
            out.append(("assist.failures", a.failures.load(ordering: .relaxed)))
            out.append(("assist.batched", a.batchedInstructions.load(ordering: .relaxed)))
            out.append(("assist.unsupported", stats.unsupported))
            for (m, n) in stats.instructions { out.append(("assist.insn.\(m)", n)) }
            for (v, n) in stats.exceptions { out.append(("assist.exception.\(v.lowercased().filter { $0.isLetter })", n)) }
        }
        if let buffered = console as? BufferedConsoleOutput { out.append(("console.dropped-bytes", buffered.droppedBytes)) }
        if let virtio = current.withLock({ $0.devices?.virtio }) { out += Self.deviceMetrics(virtio) }
        return out.sorted { $0.name < $1.name }
    }

    /// Instructions the emulation assist completed, e.g. "int3 1, clac 1530" (empty when none).
    public var emulationSummary: String {
        guard let a = info.withLock({ $0.lastAssist }), a.failures.load(ordering: .relaxed) > 0 else { return "" }
        return a.summary
    }

    /// Opens KVM, reads the kernel, initrd and modules, and checks that a machine can be built.
    public init(configuration: VMConfiguration, console: any ConsoleOutput, kvmPath: String = "/dev/kvm") throws(VMError) {
        self.configuration = configuration
        self.console = console
        rateLimiters = try DeviceRateLimiters(devices: configuration.devices, limits: configuration.rateLimits)
        do {
            kvm = try KVMSystem(path: kvmPath)
            supportedCPUID = try kvm.supportedCPUID()
            tscDeadline = kvm.checkExtension(KVM_CAP_TSC_DEADLINE_TIMER) > 0
        } catch {
            throw .kvm(error)
        }
        images = Mutex(try BootImages.read(configuration))
        lifecycle = Mutex(Lifecycle(generation: GenerationID.random()))
        if configuration.emulationAssist != .off {
            runProbe()
        }
        // Build the first machine now so configuration errors surface before run().
        let first = try makeMachine()
        current.withLock { $0 = Current(machine: first.0, devices: first.1) }
    }

    /// A VM around a machine that was built from a snapshot or a migration stream.
    init(restored configuration: VMConfiguration, console: any ConsoleOutput, kvm: KVMSystem, supportedCPUID: [kvm_cpuid_entry2],
         machine: Machine, devices: PlatformDevices, rateLimiters: DeviceRateLimiters, generation: GenerationID, restoredFrom: String?, lineage: SnapshotLineage?,
         baseImage: SnapshotLineage?, balloonPages: UInt64) {
        self.configuration = configuration
        self.console = console
        self.kvm = kvm
        self.supportedCPUID = supportedCPUID
        self.rateLimiters = rateLimiters
        tscDeadline = kvm.checkExtension(KVM_CAP_TSC_DEADLINE_TIMER) > 0
        images = Mutex(nil)
        lifecycle = Mutex(Lifecycle(generation: generation, restoredFrom: restoredFrom, lastSnapshot: lineage, baseImage: baseImage))
        balloonTarget.withLock { $0 = balloonPages }
        if let assist = machine.assist { info.withLock { $0.lastAssist = assist } }
        current.withLock { $0 = Current(machine: machine, devices: devices) }
    }

    /// Reads back the CPUID a guest sees with this configuration's template, once.
    private func runProbe() {
        do {
            let table = try GuestCPUID.entries(supported: supportedCPUID, template: configuration.cpuTemplate, vcpuIndex: 0,
                                               vcpuCount: configuration.vcpuCount, tscDeadline: tscDeadline)
            let result = try CPUIDProbe.run(kvm: kvm, cpuid: table)
            info.withLock { i in
                i.probe = result
                if !result.leaked.isEmpty {
                    i.notices.append("this host's KVM shows guests CPUID features Skiff hid: \(result.leakedFeatureNames.joined(separator: ", "))")
                }
            }
        } catch {
            info.withLock { $0.notices.append("CPUID probe failed (\(error)); the emulation assist allows every instruction it knows") }
        }
    }

    /// The CPUID the emulation assist should assume: the probe's view where it ran.
    func assistCPUID(_ table: [kvm_cpuid_entry2]) -> [kvm_cpuid_entry2] {
        guard let probe = info.withLock({ $0.probe }) else { return [] }
        var merged = table
        for seen in probe.observed {
            if let i = merged.firstIndex(where: { $0.function == seen.function && $0.index == seen.index }) {
                merged[i].ebx |= seen.ebx
                merged[i].ecx |= seen.ecx
                merged[i].edx |= seen.edx
            } else {
                merged.append(seen)
            }
        }
        return merged
    }

    /// Turns the emulation assist on for `machine` as the configuration says.
    func attachAssist(to machine: Machine, cpuid: [kvm_cpuid_entry2]) {
        guard configuration.emulationAssist != .off else { return }
        // Without this, KVM turns an emulation failure at CPL > 0 into #UD inside the guest
        // and user-space instructions never reach the assist.
        do {
            try machine.vm.enableCapability(UInt32(KVM_CAP_EXIT_ON_EMULATION_FAILURE), arguments: [1])
        } catch {
            info.withLock { $0.notices.append("KVM cannot report emulation failures in user mode (\(error)); the assist covers ring 0 only") }
        }
        let assist = EmulationAssist(guestCPUID: assistCPUID(cpuid))
        machine.assist = assist
        info.withLock { $0.lastAssist = assist }
    }

    private func makeMachine() throws(VMError) -> (Machine, PlatformDevices) {
        let memoryMap: MemoryMap
        do {
            memoryMap = try MemoryMap(ramSize: configuration.memorySize)
        } catch {
            throw VMError("memory size: \(error)")
        }
        guard let images = try loadImages() else { throw VMError("the VM has no kernel to boot") }
        let count = configuration.vcpuCount
        var cpuid: [[kvm_cpuid_entry2]] = []
        for index in 0..<count {
            cpuid.append(try GuestCPUID.entries(supported: supportedCPUID, template: configuration.cpuTemplate, vcpuIndex: index,
                                                vcpuCount: count, tscDeadline: tscDeadline))
        }
        let platform = try PlatformTables.build(vcpuCount: count, memoryMap: memoryMap, cpuid: cpuid[0].map(GuestCPUID.cpuidEntry), pciSlots: (0..<configuration.devices.count).map { UInt8($0 + 1) })
        let linuxOptions = info.withLock { $0.probe?.xsaveLeaks == true } ? ["noxsave"] : []
        let plan = try BootAssembly.plan(images: images, configuration: configuration, memoryMap: memoryMap, rsdpAddress: platform.rsdpAddress,
                                         linuxOptions: linuxOptions)
        let added = plan.isLinux ? linuxOptions.filter { !configuration.commandLine.split(separator: " ").contains(Substring($0)) } : []
        info.withLock { $0.addedKernelOptions = added }
        let machine = try Machine(
            kvm: kvm, memorySize: configuration.memorySize, vcpuCount: count, cpuid: cpuid,
            msrs: GuestCPUID.bootMSRs(), plan: plan, platformTables: platform.writes, backing: configuration.memoryBacking)
        attachAssist(to: machine, cpuid: cpuid[0])
        if configuration.samePageMerging { try? machine.memory.allowSamePageMerging() }
        try lifecycle.withLock { $0.generation }.install(in: machine.memory)
        let devices = try PlatformDevices.install(on: machine, console: console, configuration: configuration, rateLimiters: rateLimiters)
        if let balloon = devices.virtio.balloon {
            let target = balloonTarget.withLock { $0 }
            do {
                try balloon.setTarget(pages: target)
            } catch {
                throw VMError("balloon: \(error)")
            }
        }
        return (machine, devices)
    }

    /// The boot files, read now if a restored VM needs them for the first time.
    private func loadImages() throws(VMError) -> BootImages? {
        if let loaded = images.withLock({ $0 }) { return loaded }
        guard !configuration.kernelPath.isEmpty else { return nil }
        let loaded = try BootImages.read(configuration)
        images.withLock { $0 = loaded }
        return loaded
    }

    /// Runs the guest until it powers off, exits through the debug port, fails, or is
    /// stopped; resets restart it when `onReboot` is `.restart`.
    public func run() -> MachineOutcome {
        while true {
            let (machine, devices, stopped) = current.withLock { ($0.machine, $0.devices, $0.stopped) }
            guard let machine, !stopped else {
                releaseDevices()
                return .stopped
            }
            info.withLock { $0.boots += 1 }
            // A restored VM's devices start paused: they serve once the vCPUs are about to run.
            devices?.virtio.resumeAll()
            let outcome = machine.run()
            current.withLock { $0.devices?.virtio.shutdown() }
            info.withLock { $0.lastExitCounts = machine.exitCounts }
            lifecycle.withLock { $0.paused = false }
            guard outcome == .reset, configuration.onReboot == .restart else {
                current.withLock { $0.machine = nil; $0.devices = nil }
                return outcome
            }
            do {
                let next = try makeMachine()
                let proceed = current.withLock { state -> Bool in
                    guard !state.stopped else { return false }
                    state.machine = next.0
                    state.devices = next.1
                    return true
                }
                if !proceed {
                    next.1.virtio.shutdown()
                    releaseDevices()
                    return .stopped
                }
            } catch {
                return .failed("cannot restart the VM: \(error)")
            }
        }
    }

    /// Stops the devices of a machine that will not run (again) and closes its disks.
    private func releaseDevices() {
        let devices = current.withLock { state -> PlatformDevices? in
            let d = state.devices
            state.machine = nil
            state.devices = nil
            return d
        }
        devices?.virtio.shutdown()
    }

    deinit { releaseDevices() }

    /// Stops the VM from the host; `run()` returns `.stopped`.
    public func stop() {
        // Under the lock, so that the caller never holds the last reference to the machine:
        // it is released by the thread that runs the VM (a stopping thread's seccomp filter
        // need not allow what freeing a machine takes).
        current.withLock { state in
            state.stopped = true
            state.machine?.stop()
        }
    }

    /// Sets the balloon's target size in 4 KiB pages; the guest is told through a
    /// configuration change interrupt. Fails without a balloon or above guest RAM.
    public func setBalloonTarget(pages: UInt64) throws(VMError) {
        guard let balloon = current.withLock({ $0.devices?.virtio.balloon }) else {
            throw VMError("the VM has no balloon device", kind: .unsupported)
        }
        do {
            try balloon.setTarget(pages: pages)
        } catch {
            throw VMError(error.message, kind: .invalidRequest)
        }
        balloonTarget.withLock { $0 = pages }
    }

    /// The balloon's target, actual size, counters and latest guest statistics, or nil
    /// without a balloon. With `freshWithin` > 0 it first asks the guest for fresh
    /// statistics and waits up to that many seconds for them.
    public func balloonStatistics(freshWithin timeout: Double = 0) -> VirtioBalloon.Status? {
        guard let balloon = current.withLock({ $0.devices?.virtio.balloon }) else { return nil }
        let before = balloon.status.statisticsUpdates
        if timeout > 0 && balloon.requestStatistics() {
            let deadline = monotonicSeconds() + timeout
            while balloon.status.statisticsUpdates == before && monotonicSeconds() < deadline {
                var ts = timespec(tv_sec: 0, tv_nsec: 5_000_000)
                unsafe nanosleep(&ts, nil)
            }
        }
        return balloon.status
    }

    /// The current boot's guest RAM (nil once the VM has ended), for measurements and tests.
    var guestMemory: GuestMemory? { current.withLock { $0.machine?.memory } }

    /// Feeds host bytes to the guest's console (the virtio console if configured, else the
    /// serial port); returns how many it accepted.
    public func sendConsoleInput(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let devices = current.withLock({ $0.devices }) else { return bytes.count }
        return unsafe devices.sendConsoleInput(bytes)
    }
}

/// The kernel, initrd and module files of a configuration, read once.
struct BootImages: Sendable {
    static let kernelSizeLimit = 512 << 20
    static let initrdSizeLimit = 2 << 30

    var kernel: [UInt8]
    var initrd: [UInt8]?
    var modules: [(bytes: [UInt8], commandLine: String)]

    static func read(_ config: VMConfiguration) throws(VMError) -> BootImages {
        func load(_ path: String, what: String, limit: Int) throws(VMError) -> [UInt8] {
            do {
                return try OwnedFileDescriptor.readAll(path: path, limit: limit)
            } catch {
                let reason: String
                switch error.code {
                case EINVAL: reason = "not a regular file"
                case EFBIG: reason = "larger than \(limit >> 20) MiB"
                default: reason = error.message
                }
                throw VMError("cannot read \(what) \(path): \(reason)")
            }
        }
        let kernel = try load(config.kernelPath, what: "kernel", limit: kernelSizeLimit)
        let initrd = try config.initrdPath.map { (p) throws(VMError) in try load(p, what: "initrd", limit: initrdSizeLimit) }
        var modules: [(bytes: [UInt8], commandLine: String)] = []
        for m in config.modules {
            modules.append((try load(m.path, what: "module", limit: initrdSizeLimit), m.commandLine))
        }
        return BootImages(kernel: kernel, initrd: initrd, modules: modules)
    }
}
