#if canImport(Glibc)
import Glibc
#endif
import ArchX86
import CKVM
import CSkiffSystem
import DeviceModel
import GuestMemory
import KVM
import Synchronization
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

/// The KVM-side state of a machine: every vCPU and the in-kernel platform devices.
public struct MachineState: Codable, Sendable, Equatable {
    public var vcpus: [VCPUState]
    public var platform: VMPlatformState

    /// Checks every part; the VM's vCPU count must match.
    public func validate(vcpuCount: Int) throws(VMError) {
        guard vcpus.count == vcpuCount else { throw VMError("the snapshot has \(vcpus.count) vCPUs, the VM \(vcpuCount)") }
        do throws(KVMError) {
            for (i, v) in vcpus.enumerated() {
                guard v.id == UInt32(i) else { throw .invalidState("vCPU \(i) is saved as vCPU \(v.id)") }
                try v.validate()
            }
            try platform.validate()
        } catch {
            throw .kvm(error)
        }
    }
}

/// One boot of a VM: KVM VM, guest RAM, irqchip, devices and vCPU threads.
///
/// A reset tears the machine down; the caller builds a new one for the next boot. A machine
/// can also be built from a saved `MachineState` (snapshot restore, migration target), and
/// paused, saved and resumed while it runs.
public final class Machine: Sendable {
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
    private let threads = Mutex<[VCPUThread]>([])
    /// Handles emulation failures, when enabled.
    var assist: EmulationAssist? {
        get { assistSlot.withLock { $0 } }
        set { assistSlot.withLock { $0 = newValue } }
    }
    private let assistSlot = Mutex<EmulationAssist?>(nil)
    let vcpus: [VCPUFD]
    /// The vCPUs' TSC frequency (kHz), read when they were made (or set by a restore).
    private let tscFrequency = Atomic<UInt32>(0)
    /// The CPUID table set on each vCPU (what a saved state records).
    private let cpuidTables = Mutex<[[kvm_cpuid_entry2]]>([])
    /// MSRs KVM can save and restore on this host.
    private let saveableMSRs: [UInt32]
    /// Whether KVM_CLEAR_DIRTY_LOG re-protects pages (else GET_DIRTY_LOG does).
    private let manualDirtyProtect: Bool
    private let dirtyLogging = Atomic<Bool>(false)
    /// Auto-converge: percent of each 10 ms period the vCPUs sleep (0 = off).
    private let throttle = Mutex<(percent: Int, thread: HostThread?)>((0, nil))

    /// Creates the VM with `memory` as guest RAM, its irqchip, PIT and `vcpuCount` bare vCPUs.
    private init(kvm: KVMSystem, memoryMap: MemoryMap, memory: GuestMemory, vcpuCount: Int) throws(VMError) {
        guard vcpuCount >= 1, vcpuCount <= min(kvm.maxVCPUs, 254) else {
            throw VMError("\(vcpuCount) vCPUs is out of range (1 to \(min(kvm.maxVCPUs, 254)) on this host)")
        }
        self.memoryMap = memoryMap
        self.memory = memory
        do {
            vm = try kvm.createVM()
            StartTrace.mark("vm-created")
            // Manual protection must be on before any slot logs dirty pages.
            var manual = false
            if vm.supportsManualDirtyLogProtect {
                do {
                    try vm.enableManualDirtyLogProtect()
                    manual = true
                } catch {}
            }
            manualDirtyProtect = manual
            for (slot, region) in memory.regions.enumerated() {
                unsafe try vm.setUserMemoryRegion(slot: UInt32(slot), guestAddress: region.guestAddress, size: region.size, hostAddress: region.hostAddress)
            }
            StartTrace.mark("memory-slots")
            try vm.setIdentityMapAddress(Layout.kvmIdentityMapAddress)
            try vm.setTSSAddress(Layout.kvmTSSAddress)
            try vm.createIRQChip()
            try vm.createPIT2()
            interrupts = try InterruptRouter(vm: vm)
            StartTrace.mark("irqchip")
            var created: [VCPUFD] = []
            for i in 0..<vcpuCount { created.append(try vm.createVCPU(id: UInt32(i))) }
            vcpus = created
            // Read here, before any vCPU runs: a vCPU ioctl from another thread waits for that
            // vCPU's KVM_RUN to return, which a guest halted with interrupts off never does.
            tscFrequency.store((try? created.first?.tscKHz()) ?? 0, ordering: .relaxed)
            StartTrace.mark("vcpus-created")
            saveableMSRs = (try? kvm.msrIndexList()) ?? []
        } catch {
            throw .kvm(error)
        }
    }

    /// Creates the VM, its memory and vCPUs, writes `plan` into RAM and programs the vCPUs.
    /// Devices are added by the caller (`addDevices`) before `run()`.
    public convenience init(kvm: KVMSystem, memorySize: UInt64, vcpuCount: Int, cpuid: [[kvm_cpuid_entry2]],
                            msrs: [(index: UInt32, value: UInt64)], plan: BootLayout, platformTables: [(address: UInt64, bytes: [UInt8])],
                            backing: GuestMemoryBacking = .anonymous) throws(VMError) {
        guard cpuid.count == vcpuCount else { throw VMError("one CPUID table per vCPU is needed") }
        let memoryMap: MemoryMap
        do {
            memoryMap = try MemoryMap(ramSize: memorySize)
        } catch {
            throw VMError(error.description)
        }
        let memory: GuestMemory
        do {
            memory = try GuestMemory(ranges: memoryMap.ramRanges, backing: backing)
        } catch {
            throw .memory(error)
        }
        try self.init(kvm: kvm, memoryMap: memoryMap, memory: memory, vcpuCount: vcpuCount)
        do {
            for (i, vcpu) in vcpus.enumerated() { try VCPUSetup.configure(vcpu, cpuid: cpuid[i], msrs: msrs) }
        } catch {
            throw .kvm(error)
        }
        cpuidTables.withLock { $0 = cpuid }
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

    /// Creates a VM on `memory` (already holding the guest's RAM) and restores its vCPUs and
    /// in-kernel devices from `state`, without booting anything.
    /// A TSC frequency that differs from this host's by more than 250 ppm is set with
    /// KVM_SET_TSC_KHZ where KVM can scale the TSC, and refused otherwise.
    public convenience init(kvm: KVMSystem, memoryMap: MemoryMap, memory: GuestMemory, restoring state: MachineState) throws(VMError) {
        try state.validate(vcpuCount: state.vcpus.count)
        try self.init(kvm: kvm, memoryMap: memoryMap, memory: memory, vcpuCount: state.vcpus.count)
        if let saved = state.vcpus.first?.tscKHz, saved > 0, let host = try? vcpus[0].tscKHz(), host > 0 {
            let difference = abs(Int64(saved) - Int64(host))
            if difference * 1_000_000 > Int64(host) * 250 {
                guard kvm.checkExtension(KVM_CAP_TSC_CONTROL) > 0 else {
                    throw VMError("the snapshot's TSC runs at \(saved) kHz, this host's at \(host) kHz, and this host's KVM cannot scale the TSC (no KVM_CAP_TSC_CONTROL)")
                }
                do {
                    for v in vcpus { try v.setTSCKHz(saved) }
                    tscFrequency.store(saved, ordering: .relaxed)
                } catch {
                    throw VMError("cannot set the guest TSC to \(saved) kHz: \(error)")
                }
            }
        }
        do {
            try vm.restorePlatformState(state.platform)
            StartTrace.mark("platform-state")
            for (vcpu, saved) in zip(vcpus, state.vcpus) { try vcpu.restoreState(saved) }
        } catch {
            throw .kvm(error)
        }
        cpuidTables.withLock { $0 = state.vcpus.map { $0.cpuid.map(\.entry) } }
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
        var started: [VCPUThread] = []
        for vcpu in vcpus {
            let t = VCPUThread(vcpu: vcpu, pio: pio, mmio: mmio, memory: memory, controller: controller, assist: assist)
            // Weak: the thread holds the controller, so a strong capture would be a cycle keeping
            // every vCPU thread (and through it the buses, guest RAM and fds) after the machine ends.
            controller.addKicker { [weak t] in t?.kick() }
            started.append(t)
        }
        threads.withLock { $0 = started }
        for t in started {
            do {
                try t.start()
            } catch {
                controller.finish(.failed(error.description))
                break
            }
        }
        let outcome = controller.wait()
        for t in started { t.kick() }
        for t in started { t.join() }
        return outcome
    }

    /// Asks the machine to stop from the host side; `run()` then returns `.stopped`.
    public func stop() {
        controller.finish(.stopped)
    }

    /// How it ended, once it has.
    public var outcome: MachineOutcome? { controller.current }

    /// Exit counts summed over vCPUs.
    public var exitCounts: [String: Int] {
        var total: [String: Int] = [:]
        for t in threads.withLock({ $0 }) {
            for kind in ExitCounters.Kind.allCases {
                let n = t.exits.value(kind)
                if n > 0 { total[kind.name, default: 0] += Int(clamping: n) }
            }
        }
        return total
    }

    // MARK: Pause, save, resume

    /// Parks every vCPU outside KVM_RUN at an instruction boundary (pending I/O completed).
    /// Fails if they do not all park within `timeout` seconds or the machine stops meanwhile;
    /// the vCPUs then run on.
    public func pauseVCPUs(timeout: Double = 10) throws(VMError) {
        controller.requestPause()
        guard controller.waitUntilParked(vcpus.count, timeout: timeout) else {
            controller.releasePause()
            if let outcome = controller.current { throw VMError("the VM stopped while pausing (\(outcome))") }
            throw VMError("the vCPUs did not stop within \(Int(timeout)) s")
        }
    }

    /// Lets the parked vCPUs run again.
    public func resumeVCPUs() {
        for v in vcpus { v.notifyClockPaused() }
        controller.releasePause()
    }

    /// Every vCPU's and the in-kernel devices' state. Only while the vCPUs are parked.
    public func saveState() throws(VMError) -> MachineState {
        do {
            let xsaveSize = vm.xsaveSize
            let tables = cpuidTables.withLock { $0 }
            var saved: [VCPUState] = []
            for (i, v) in vcpus.enumerated() {
                saved.append(try v.saveState(msrIndices: saveableMSRs, xsaveSize: xsaveSize, cpuid: i < tables.count ? tables[i] : []))
            }
            return MachineState(vcpus: saved, platform: try vm.savePlatformState())
        } catch {
            throw .kvm(error)
        }
    }

    /// Guest TSC frequency the vCPUs run at (kHz; 0 when unknown).
    /// The vCPUs' TSC frequency in kHz (0 if KVM did not say). Never asks a running vCPU.
    public var tscKHz: UInt32 { tscFrequency.load(ordering: .relaxed) }

    // MARK: Dirty pages

    /// Turns KVM's dirty-page log on for every RAM slot (and the monitor's own write
    /// tracking in GuestMemory); every page written from now on is reported once per fetch.
    public func startDirtyLogging() throws(VMError) {
        guard !dirtyLogging.exchange(true, ordering: .acquiringAndReleasing) else { return }
        memory.startDirtyTracking()
        do {
            try setSlotLogging(true)
        } catch {
            dirtyLogging.store(false, ordering: .releasing)
            memory.stopDirtyTracking()
            throw error
        }
    }

    /// Turns dirty-page logging off.
    public func stopDirtyLogging() {
        guard dirtyLogging.exchange(false, ordering: .acquiringAndReleasing) else { return }
        try? setSlotLogging(false)
        memory.stopDirtyTracking()
    }

    /// Whether dirty pages are being logged.
    public var isLoggingDirtyPages: Bool { dirtyLogging.load(ordering: .acquiring) }

    private func setSlotLogging(_ on: Bool) throws(VMError) {
        do {
            for (slot, region) in memory.regions.enumerated() {
                unsafe try vm.setUserMemoryRegion(slot: UInt32(slot), guestAddress: region.guestAddress, size: region.size,
                                           hostAddress: region.hostAddress, logDirtyPages: on)
            }
        } catch {
            throw .kvm(error)
        }
    }

    /// The pages written since the last call (by vCPUs, per KVM, or by the monitor), one
    /// bitmap per RAM region; the pages are write-protected again before this returns, so a
    /// write that happens while the caller copies them shows up in the next call.
    public func takeDirtyPages() throws(VMError) -> [[UInt64]] {
        var result: [[UInt64]] = []
        do {
            for (slot, region) in memory.regions.enumerated() {
                let pages = Int(region.size / GuestMemory.pageSize)
                var bitmap = [UInt64](repeating: 0, count: (pages + 63) / 64)
                try vm.fetchDirtyLog(slot: UInt32(slot), into: &bitmap)
                if manualDirtyProtect {
                    var clear = bitmap
                    try vm.clearDirtyLog(slot: UInt32(slot), firstPage: 0, pages: UInt32(clamping: pages), bitmap: &clear)
                }
                let own = region.dirtyPages.take()
                for i in 0..<min(bitmap.count, own.count) { bitmap[i] |= own[i] }
                result.append(bitmap)
            }
        } catch {
            throw .kvm(error)
        }
        return result
    }

    // MARK: Throttling (auto-converge)

    /// Makes every vCPU sleep `percent` of each 10 ms period (0 stops throttling): a guest
    /// that dirties memory faster than a migration can send it slows down until it converges.
    public func setThrottle(percent: Int) {
        let clamped = min(max(percent, 0), 99)
        let start = throttle.withLock { t -> Bool in
            t.percent = clamped
            return clamped > 0 && t.thread == nil
        }
        controller.setThrottle(sleepNanoseconds: clamped * 100_000)
        guard start else { return }
        let thread = try? HostThread.spawn(name: "vcpu-throttle", role: .throttle) { [self] in
            while true {
                let percent = throttle.withLock { $0.percent }
                guard percent > 0, !controller.isStopping else { break }
                controller.throttleTick()
                var ts = timespec(tv_sec: 0, tv_nsec: 10_000_000)
                unsafe nanosleep(&ts, nil)
            }
        }
        throttle.withLock { $0.thread = thread }
    }

    /// The vCPU throttle in percent.
    public var throttlePercent: Int { throttle.withLock { $0.percent } }

    /// Stops throttling and waits for the throttle thread.
    public func stopThrottle() {
        let thread = throttle.withLock { t -> HostThread? in
            t.percent = 0
            let th = t.thread
            t.thread = nil
            return th
        }
        controller.setThrottle(sleepNanoseconds: 0)
        thread?.join()
    }
}
