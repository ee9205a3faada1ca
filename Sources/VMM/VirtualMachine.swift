#if canImport(Glibc)
import Glibc
#endif
import ArchX86
import CKVM
import DeviceModel
import KVM
import Synchronization
import SystemExtras

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
    /// How many times the guest has been booted (1 + restarts).
    public private(set) var boots = 0

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
        // Build the first machine now so configuration errors surface before run().
        let first = try makeMachine()
        current.withLock { $0 = (first.0, first.1, false) }
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
        let plan = try BootAssembly.plan(images: images, configuration: configuration, memoryMap: memoryMap, rsdpAddress: platform.rsdpAddress)
        let machine = try Machine(
            kvm: kvm, memorySize: configuration.memorySize, vcpuCount: count, cpuid: cpuid,
            msrs: GuestCPUID.bootMSRs(), plan: plan, platformTables: platform.writes)
        let devices = try PlatformDevices.install(on: machine, console: console, configuration: configuration)
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

    /// Feeds host bytes to the guest's serial console; returns how many it accepted.
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
