import ArchX86
import CKVM
import DeviceModel
import KVM
import Loader
import Snapshot
import Storage
import SystemExtras
import VirtioNet

/// What a restored VM may have differently from the VM that was snapshotted.
public struct RestoreOptions: Sendable {
    /// Devices that replace the snapshot's host-side resources: each replaces the next saved
    /// device of the same kind, in order (`.block` a disk path, `.net` a TAP and MAC,
    /// `.vsock` a CID and socket). Other kinds cannot be replaced.
    public var deviceOverrides: [VirtioDeviceSpec] = []
    /// Give every network device a new random MAC (unless an override names one): a fork.
    public var newMACAddresses = false
    /// The CPU template the caller expects; a snapshot taken with another one is refused.
    public var cpuTemplate: CPUTemplate?
    /// Print VM events on stderr.
    public var verbose = false
    /// Let KSM merge identical pages (a host policy, not part of the snapshot).
    public var samePageMerging = true
    /// Rate limits for the restored devices (host policy, not part of the snapshot).
    public var rateLimits: [DeviceRateLimit] = []

    public init() {}
}

extension SavedConfiguration {
    /// The VM configuration to rebuild the snapshot's hardware, with `options` applied.
    func vmConfiguration(applying options: RestoreOptions) throws(VMError) -> VMConfiguration {
        guard let template = CPUTemplate(rawValue: cpuTemplate), let reboot = RebootAction(rawValue: onReboot),
              let assist = EmulationAssistMode(rawValue: emulationAssist), let format = KernelFormat(rawValue: kernelFormat) else {
            throw VMError("the snapshot's configuration is invalid")
        }
        if let expected = options.cpuTemplate, expected != template {
            throw VMError("the snapshot was taken with CPU template \(template.rawValue), not \(expected.rawValue)")
        }
        var c = VMConfiguration(kernelPath: kernelPath, initrdPath: initrdPath, commandLine: commandLine, memorySize: memorySize,
                                vcpuCount: vcpuCount, cpuTemplate: template, onReboot: reboot)
        c.kernelFormat = format
        c.emulationAssist = assist
        c.modules = modules.map { .init(path: $0.path, commandLine: $0.commandLine) }
        c.verbose = options.verbose
        c.samePageMerging = options.samePageMerging
        c.rateLimits = options.rateLimits
        var specs: [VirtioDeviceSpec] = []
        do {
            for d in devices { specs.append(try d.spec()) }
        } catch {
            throw VMError(error.description)
        }
        var used = [Bool](repeating: false, count: specs.count)
        for override in options.deviceOverrides {
            guard let i = specs.indices.first(where: { !used[$0] && Self.sameKind(specs[$0], override) }) else {
                throw VMError("the snapshot has no (further) \(Self.kindName(override)) device to replace with \(override)")
            }
            used[i] = true
            switch (specs[i], override) {
            case (.block(_, _, let readOnly, let serial), .block(let path, let format, let newReadOnly, let newSerial)):
                // The guest keeps the serial it read; a read-only disk stays read-only.
                specs[i] = .block(path: path, format: format, readOnly: readOnly || newReadOnly, serial: newSerial ?? serial)
            case (.net(_, let mac), .net(let tap, let newMAC)):
                specs[i] = .net(tap: tap, mac: newMAC ?? (options.newMACAddresses ? MACAddress.random() : mac))
            default:
                specs[i] = override
            }
        }
        if options.newMACAddresses {
            for i in specs.indices where !used[i] {
                if case .net(let tap, _) = specs[i] { specs[i] = .net(tap: tap, mac: MACAddress.random()) }
            }
        }
        c.devices = specs
        return c
    }

    static func sameKind(_ a: VirtioDeviceSpec, _ b: VirtioDeviceSpec) -> Bool {
        kindName(a) == kindName(b)
    }

    static func kindName(_ spec: VirtioDeviceSpec) -> String {
        switch spec {
        case .rng: return "rng"
        case .block: return "disk"
        case .net: return "net"
        case .vsock: return "vsock"
        case .balloon: return "balloon"
        case .console: return "console"
        }
    }
}

extension VirtualMachine {
    /// Builds a VM from the snapshot at `directory` without booting: guest RAM maps the
    /// memory file MAP_PRIVATE (pages load when touched), vCPUs, interrupt controllers and
    /// devices get their saved state, disks, TAPs and vsock sockets are reopened (or replaced
    /// per `options`), and the guest gets a new VM generation ID. `run()` continues the guest
    /// where it was. Nothing is changed if the snapshot is refused.
    public static func restore(from directory: String, options: RestoreOptions = RestoreOptions(), console: any ConsoleOutput,
                               kvmPath: String = "/dev/kvm") throws(VMError) -> VirtualMachine {
        let snapshot = try LoadedSnapshot.load(directory)
        StartTrace.mark("state-loaded")
        let kvm: KVMSystem
        let supported: [kvm_cpuid_entry2]
        do {
            kvm = try KVMSystem(path: kvmPath)
            supported = try kvm.supportedCPUID()
        } catch {
            throw .kvm(error)
        }
        try snapshot.checkHost(supportedCPUID: supported, tscDeadline: kvm.checkExtension(KVM_CAP_TSC_DEADLINE_TIMER) > 0)
        StartTrace.mark("host-checked")
        let configuration = try snapshot.configuration.vmConfiguration(applying: options)
        let memoryMap: MemoryMap
        do {
            memoryMap = try MemoryMap(ramSize: configuration.memorySize)
        } catch {
            throw VMError("\(error)")
        }
        let memory = try snapshot.mapMemory()
        if configuration.samePageMerging { try? memory.allowSamePageMerging() }
        StartTrace.mark("memory-mapped")
        let machine = try Machine(kvm: kvm, memoryMap: memoryMap, memory: memory, restoring: snapshot.machine)
        StartTrace.mark("machine-restored")
        if configuration.emulationAssist != .off {
            try? machine.vm.enableCapability(UInt32(KVM_CAP_EXIT_ON_EMULATION_FAILURE), arguments: [1])
            machine.assist = EmulationAssist(guestCPUID: [])
        }
        let rateLimiters = try DeviceRateLimiters(devices: configuration.devices, limits: configuration.rateLimits)
        let devices = try PlatformDevices.install(on: machine, console: console, configuration: configuration, rateLimiters: rateLimiters)
        do {
            try devices.restoreState(snapshot.devices, memory: memory)
        } catch {
            devices.virtio.shutdown()
            throw error
        }
        StartTrace.mark("devices-restored")
        let generation = GenerationID.random()
        try generation.install(in: memory)
        GenerationID.announce(on: devices.generationEvent)
        // Dirty logging stays off: what the VM changes from now on is told by the private
        // mapping itself (GuestMemory.pagesChangedFromFile) when a diff snapshot or a migration
        // to a host holding this snapshot asks for it.
        let lineage = SnapshotLineage(directory: snapshot.directory, snapshotID: snapshot.configuration.snapshotID,
                                      memoryDigest: snapshot.image.digest)
        return VirtualMachine(restored: configuration, console: console, kvm: kvm, supportedCPUID: supported, machine: machine, devices: devices,
                                rateLimiters: rateLimiters,
                                  generation: generation, restoredFrom: snapshot.directory, lineage: lineage,
                                  baseImage: snapshot.chain.count == 1 ? lineage : nil,
                                  balloonPages: snapshot.configuration.balloonTargetPages)
    }
}
