import ArchX86
import CKVM
import CSystem
import DeviceModel
import GuestMemory
import KVM
import SystemExtras

/// What to put in guest RAM and where the boot vCPU starts.
public struct BootLayout: Sendable {
    /// Bytes to copy into guest RAM, each followed by `zeroFill` zero bytes.
    public var writes: [(address: UInt64, bytes: ArraySlice<UInt8>, zeroFill: UInt64)]
    /// CPU mode and registers at the entry point.
    public var entry: BootEntry
    /// Whether the kernel is Linux (bzImage or PVH), whose command line Skiff may extend.
    public var isLinux = false

    public init(writes: [(address: UInt64, bytes: ArraySlice<UInt8>, zeroFill: UInt64)], entry: BootEntry) {
        self.writes = writes
        self.entry = entry
    }
}

/// A KVM interrupt line on the in-kernel irqchip.
struct KVMInterruptLine: InterruptLine {
    let vm: VirtualMachineFD
    let gsi: UInt32
    func setLevel(_ high: Bool) { try? vm.setIRQLine(gsi, level: high) }
}

/// One boot of a VM: KVM VM, guest RAM, irqchip, devices and vCPU threads.
///
/// A reset tears the machine down; the caller builds a new one for the next boot.
public final class Machine: @unchecked Sendable {
    public let memoryMap: MemoryMap
    public let memory: GuestMemory
    public let vm: VirtualMachineFD
    /// Port-I/O bus (0–0xffff).
    public let pio = Bus()
    /// MMIO bus.
    public let mmio = Bus()
    let controller = MachineController()
    /// GSI routing (legacy pins and MSI vectors).
    let interrupts: InterruptRouter
    private(set) var vcpuThreads: [VCPUThread] = []
    /// Handles emulation failures, when enabled.
    var assist: EmulationAssist?
    private let vcpus: [VCPUFD]

    /// Creates the VM, its memory and vCPUs, writes `plan` into RAM and programs the vCPUs.
    /// Devices are added by the caller (`addDevices`) before `run()`.
    public init(kvm: KVMSystem, memorySize: UInt64, vcpuCount: Int, cpuid: [[kvm_cpuid_entry2]],
                msrs: [(index: UInt32, value: UInt64)], plan: BootLayout, platformTables: [(address: UInt64, bytes: [UInt8])]) throws(VMError) {
        guard vcpuCount >= 1, vcpuCount <= min(kvm.maxVCPUs, 254), cpuid.count == vcpuCount else {
            throw VMError("--cpus \(vcpuCount) is out of range (1 to \(min(kvm.maxVCPUs, 254)) on this host)")
        }
        do {
            memoryMap = try MemoryMap(ramSize: memorySize)
        } catch {
            throw VMError(error.description)
        }
        do {
            memory = try GuestMemory(ranges: memoryMap.ramRanges)
        } catch {
            throw .memory(error)
        }
        do {
            vm = try kvm.createVM()
            for (slot, region) in memory.regions.enumerated() {
                try vm.setUserMemoryRegion(slot: UInt32(slot), guestAddress: region.guestAddress, size: region.size, hostAddress: region.hostAddress)
            }
            try vm.setIdentityMapAddress(Layout.kvmIdentityMapAddress)
            try vm.setTSSAddress(Layout.kvmTSSAddress)
            try vm.createIRQChip()
            try vm.createPIT2()
            interrupts = try InterruptRouter(vm: vm)
            var created: [VCPUFD] = []
            for i in 0..<vcpuCount {
                let vcpu = try vm.createVCPU(id: UInt32(i))
                try VCPUSetup.configure(vcpu, cpuid: cpuid[i], msrs: msrs)
                created.append(vcpu)
            }
            vcpus = created
        } catch {
            throw .kvm(error)
        }
        do {
            for t in platformTables { try memory.write(t.bytes, at: t.address) }
            for w in plan.writes {
                try memory.write(w.bytes, at: w.address)
                if w.zeroFill > 0 { try memory.zero(at: w.address + UInt64(w.bytes.count), length: w.zeroFill) }
            }
            for t in BootCPUState.tables(for: plan.entry) { try memory.write(t.bytes, at: t.address) }
        } catch {
            throw VMError("cannot place the kernel in guest memory: \(error)")
        }
        do {
            let bsp = vcpus[0]
            try bsp.setSpecialRegisters(BootCPUState.specialRegisters(for: plan.entry, base: bsp.specialRegisters()))
            try bsp.setRegisters(BootCPUState.registers(for: plan.entry))
        } catch {
            throw .kvm(error)
        }
    }

    /// An interrupt line for legacy IRQ/GSI `gsi`.
    public func interruptLine(gsi: UInt32) -> any InterruptLine {
        KVMInterruptLine(vm: vm, gsi: gsi)
    }

    /// The machine's control sink, for devices that reset or power off the VM.
    public var control: any MachineControl { controller }

    /// Starts every vCPU and blocks until the machine stops; returns how it ended.
    public func run() -> MachineOutcome {
        _ = csystem_install_noop_handler(VCPUThread.kickSignal)
        var threads: [VCPUThread] = []
        for vcpu in vcpus {
            let t = VCPUThread(vcpu: vcpu, pio: pio, mmio: mmio, memory: memory, controller: controller, assist: assist)
            // Weak: the thread holds the controller, so a strong capture would be a cycle keeping
            // every vCPU thread (and through it the buses, guest RAM and fds) after the machine ends.
            controller.addKicker { [weak t] in t?.kick() }
            threads.append(t)
        }
        vcpuThreads = threads
        for t in threads {
            do {
                try t.start()
            } catch {
                controller.finish(.failed(error.description))
                break
            }
        }
        let outcome = controller.wait()
        for t in threads { t.kick() }
        for t in threads { t.join() }
        return outcome
    }

    /// Asks the machine to stop from the host side; `run()` then returns `.stopped`.
    public func stop() {
        controller.finish(.stopped)
    }

    /// Exit counts summed over vCPUs.
    public var exitCounts: [String: Int] {
        var total: [String: Int] = [:]
        for t in vcpuThreads {
            for (k, v) in t.exitCounts.withLock({ $0 }) { total[k, default: 0] += v }
        }
        return total
    }
}
