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
/// it on guest reset when the configuration says so.
public final class VirtualMachine: @unchecked Sendable {
    public let configuration: VMConfiguration
    private let kvm: KVMSystem
    private let console: any ConsoleOutput
    private let images: BootImages
    private let supportedCPUID: [kvm_cpuid_entry2]
    private let tscDeadline: Bool
    private let current = Mutex<(machine: Machine?, devices: PlatformDevices?, stopped: Bool)>((nil, nil, false))
    /// Exit counts of the last boot.
    public private(set) var lastExitCounts: [String: Int] = [:]
    /// The emulation assist of the last boot, if enabled.
    private(set) var lastAssist: EmulationAssist?
    /// Counters of the running boot: `exits.<kind>`, and with the emulation assist
    /// `assist.failures`, `assist.batched`, `assist.unsupported`, `assist.insn.<mnemonic>`,
    /// `assist.exception.<vector>`; sorted by name.
    public func metrics() -> [(name: String, value: UInt64)] {
        let machine = current.withLock { $0.machine }
        var out: [(name: String, value: UInt64)] = []
        for (kind, count) in machine?.exitCounts ?? lastExitCounts { out.append(("exits.\(kind)", UInt64(max(0, count)))) }
        if let a = machine?.assist ?? lastAssist {
            let stats = a.emulator.statistics()
            out.append(("assist.failures", a.failures.load(ordering: .relaxed)))
            out.append(("assist.batched", a.batchedInstructions.load(ordering: .relaxed)))
            out.append(("assist.unsupported", stats.unsupported))
            for (m, n) in stats.instructions { out.append(("assist.insn.\(m)", n)) }
            for (v, n) in stats.exceptions { out.append(("assist.exception.\(v.lowercased().filter { $0.isLetter })", n)) }
        }
        return out.sorted { $0.name < $1.name }
    }

    /// Instructions the emulation assist completed, e.g. "int3 1, clac 1530" (empty when none).
    public var emulationSummary: String {
        guard let a = lastAssist, a.failures.load(ordering: .relaxed) > 0 else { return "" }
        return a.summary
    }
    /// What the CPUID probe found (nil when the emulation assist is off or the probe failed).
    public private(set) var probe: CPUIDProbe.Result?
    /// Options Skiff added to a Linux kernel's command line (e.g. `noxsave` when XSAVE leaks).
    public private(set) var addedKernelOptions: [String] = []
    /// One-time notes for the user (e.g. CPUID leaks and what Skiff did about them).
    public private(set) var notices: [String] = []
    /// How many times the guest has been booted (1 + restarts).
    public private(set) var boots = 0
    /// The balloon target in pages, kept across reboots.
    private let balloonTarget = Mutex<UInt64>(0)

    /// Opens KVM, reads the kernel, initrd and modules, and checks that a machine can be built.
    public init(configuration: VMConfiguration, console: any ConsoleOutput, kvmPath: String = "/dev/kvm") throws(VMError) {
        self.configuration = configuration
        self.console = console
        do {
            kvm = try KVMSystem(path: kvmPath)
            supportedCPUID = try kvm.supportedCPUID()
            tscDeadline = kvm.checkExtension(KVM_CAP_TSC_DEADLINE_TIMER) > 0
        } catch {
            throw .kvm(error)
        }
        images = try BootImages.read(configuration)
        if configuration.emulationAssist != .off {
            runProbe()
        }
        // Build the first machine now so configuration errors surface before run().
        let first = try makeMachine()
        current.withLock { $0 = (first.0, first.1, false) }
    }

    /// Reads back the CPUID a guest sees with this configuration's template, once.
    private func runProbe() {
        do {
            let table = try GuestCPUID.entries(supported: supportedCPUID, template: configuration.cpuTemplate, vcpuIndex: 0,
                                               vcpuCount: configuration.vcpuCount, tscDeadline: tscDeadline)
            let result = try CPUIDProbe.run(kvm: kvm, cpuid: table)
            probe = result
            if !result.leaked.isEmpty {
                notices.append("this host's KVM shows guests CPUID features Skiff hid: \(result.leakedFeatureNames.joined(separator: ", "))")
            }
        } catch {
            notices.append("CPUID probe failed (\(error)); the emulation assist allows every instruction it knows")
        }
    }

    /// The CPUID the emulation assist should assume: the probe's view where it ran.
    private func assistCPUID(_ table: [kvm_cpuid_entry2]) -> [kvm_cpuid_entry2] {
        guard let probe else { return [] }
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

    private func makeMachine() throws(VMError) -> (Machine, PlatformDevices) {
        let memoryMap: MemoryMap
        do {
            memoryMap = try MemoryMap(ramSize: configuration.memorySize)
        } catch {
            throw VMError("--memory: \(error)")
        }
        let count = configuration.vcpuCount
        var cpuid: [[kvm_cpuid_entry2]] = []
        for index in 0..<count {
            cpuid.append(try GuestCPUID.entries(supported: supportedCPUID, template: configuration.cpuTemplate, vcpuIndex: index,
                                                vcpuCount: count, tscDeadline: tscDeadline))
        }
        let platform = try PlatformTables.build(vcpuCount: count, memoryMap: memoryMap, cpuid: cpuid[0].map(GuestCPUID.cpuidEntry), pciSlots: (0..<configuration.devices.count).map { UInt8($0 + 1) })
        let linuxOptions = probe?.xsaveLeaks == true ? ["noxsave"] : []
        let plan = try BootAssembly.plan(images: images, configuration: configuration, memoryMap: memoryMap, rsdpAddress: platform.rsdpAddress,
                                         linuxOptions: linuxOptions)
        addedKernelOptions = plan.isLinux ? linuxOptions.filter { !configuration.commandLine.split(separator: " ").contains(Substring($0)) } : []
        let machine = try Machine(
            kvm: kvm, memorySize: configuration.memorySize, vcpuCount: count, cpuid: cpuid,
            msrs: GuestCPUID.bootMSRs(), plan: plan, platformTables: platform.writes)
        if configuration.emulationAssist != .off {
            // Without this, KVM turns an emulation failure at CPL > 0 into #UD inside the guest
            // and user-space instructions never reach the assist.
            do {
                try machine.vm.enableCapability(UInt32(KVM_CAP_EXIT_ON_EMULATION_FAILURE), arguments: [1])
            } catch {
                notices.append("KVM cannot report emulation failures in user mode (\(error)); the assist covers ring 0 only")
            }
            let assist = EmulationAssist(guestCPUID: assistCPUID(cpuid[0]))
            machine.assist = assist
            lastAssist = assist
        }
        let devices = try PlatformDevices.install(on: machine, console: console, configuration: configuration)
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

    /// Runs the guest until it powers off, exits through the debug port, fails, or is
    /// stopped; resets restart it when `onReboot` is `.restart`.
    public func run() -> MachineOutcome {
        while true {
            let (machine, stopped) = current.withLock { ($0.machine, $0.stopped) }
            guard let machine, !stopped else {
                releaseDevices()
                return .stopped
            }
            boots += 1
            let outcome = machine.run()
            current.withLock { $0.devices?.virtio.shutdown() }
            lastExitCounts = machine.exitCounts
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
        let machine = current.withLock { state -> Machine? in
            state.stopped = true
            return state.machine
        }
        machine?.stop()
    }

    /// Sets the balloon's target size in 4 KiB pages; the guest is told through a
    /// configuration change interrupt. Fails without a balloon or above guest RAM.
    public func setBalloonTarget(pages: UInt64) throws(VMError) {
        guard let balloon = current.withLock({ $0.devices?.virtio.balloon }) else {
            throw VMError("the VM has no balloon device (start it with --balloon)")
        }
        do {
            try balloon.setTarget(pages: pages)
        } catch {
            throw VMError(error.message)
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
                nanosleep(&ts, nil)
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
        return devices.sendConsoleInput(bytes)
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
