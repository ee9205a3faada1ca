#if canImport(Glibc)
import Glibc
#endif
import CKVM
import CSkiffSystem
import DeviceModel
import GuestMemory
import KVM
import Synchronization
import SystemExtras

/// Runs one vCPU on a dedicated OS thread, handling port-I/O and MMIO exits on that thread.
final class VCPUThread: Sendable {
    let vcpu: VCPUFD
    private let pio: Bus
    private let mmio: Bus
    private let memory: GuestMemory
    private let controller: MachineController
    private let assist: EmulationAssist?
    private let tid = Atomic<Int32>(0)
    private let thread = Mutex<HostThread?>(nil)
    /// Exits handled, by kind, for metrics and tests.
    let exits = ExitCounters()

    /// The signal used to kick vCPUs out of KVM_RUN.
    static let kickSignal: Int32 = csystem_sigrtmin()

    init(vcpu: VCPUFD, pio: Bus, mmio: Bus, memory: GuestMemory, controller: MachineController, assist: EmulationAssist?) {
        self.assist = assist
        self.vcpu = vcpu
        self.pio = pio
        self.mmio = mmio
        self.memory = memory
        self.controller = controller
    }

    /// Starts the thread.
    func start() throws(VMError) {
        do {
            let running = try HostThread.spawn(name: "vcpu\(vcpu.id)", role: .vcpu) { [self] in self.main() }
            thread.withLock { $0 = running }
        } catch {
            throw VMError("cannot start vCPU \(vcpu.id) thread: \(error)")
        }
    }

    /// Forces the vCPU out of KVM_RUN soon; callable from any thread.
    func kick() {
        vcpu.setImmediateExit(true)
        let t = tid.load(ordering: .acquiring)
        if t != 0 { _ = csystem_tgkill(t, Self.kickSignal) }
    }

    /// Waits for the thread to end.
    func join() {
        thread.withLock { $0 }?.join()
    }

    private func tally(_ kind: ExitCounters.Kind) {
        exits.count(kind)
    }

    private func main() {
        // Block nothing: the kick signal has a no-op handler so KVM_RUN returns EINTR.
        // Threads inherit their creator's signal mask; the kick must get through.
        _ = csystem_unblock_signal(Self.kickSignal)
        tid.store(csystem_gettid(), ordering: .releasing)
        var throttleSeen: UInt64 = 0
        while !controller.isStopping {
            controller.throttleIfDue(&throttleSeen)
            if controller.pauseRequested {
                completePendingExit()
                controller.park()
                continue
            }
            let exit: VCPUExit
            do {
                unsafe exit = unsafe try vcpu.run()
            } catch {
                controller.finish(.failed("vCPU \(vcpu.id): \(error)"))
                break
            }
            unsafe handle(exit)
        }
        tid.store(0, ordering: .releasing)
    }

    /// Handles one exit on this thread.
    private func handle(_ exit: VCPUExit) {
        switch unsafe exit {
        case .ioIn(let port, let size, let count, let data):
            tally(.io)
            for i in 0..<count {
                let slice = unsafe UnsafeMutableRawBufferPointer(rebasing: data[(i * size)..<((i + 1) * size)])
                unsafe pio.read(address: UInt64(port), into: slice)
            }
        case .ioOut(let port, let size, let count, let data):
            tally(.io)
            for i in 0..<count {
                let slice = unsafe UnsafeRawBufferPointer(rebasing: data[(i * size)..<((i + 1) * size)])
                unsafe pio.write(address: UInt64(port), from: slice)
            }
        case .mmioRead(let address, let data):
            tally(.mmio)
            unsafe mmio.read(address: address, into: data)
        case .mmioWrite(let address, let data):
            tally(.mmio)
            unsafe mmio.write(address: address, from: data)
        case .halt:
            tally(.hlt)
        case .interrupted:
            vcpu.setImmediateExit(false)
        case .debug:
            break
        case .shutdown:
            tally(.shutdown)
            controller.request(.reset)
        case .systemEvent(let type):
            switch Int32(type) {
            case KVM_SYSTEM_EVENT_SHUTDOWN: controller.request(.powerOff)
            case KVM_SYSTEM_EVENT_RESET: controller.request(.reset)
            default: controller.finish(.failed("vCPU \(vcpu.id): guest crashed (system event \(type))"))
            }
        case .failEntry(let reason):
            controller.finish(.failed("vCPU \(vcpu.id): KVM_EXIT_FAIL_ENTRY, hardware reason 0x\(String(reason, radix: 16)); \(describeState())"))
        case .internalError(let suberror, _) where suberror == UInt32(KVM_INTERNAL_ERROR_EMULATION) && assist != nil:
            tally(.emulationAssist)
            guard let assist else { break }
            switch assist.handle(vcpu, memory: memory) {
            case .resumed: break
            case .stop(let message): controller.finish(.failed(message))
            }
        case .internalError(let suberror, let data):
            let kind = suberror == 1 ? "emulation failure" : "suberror \(suberror)"
            let extra = data.map { "0x" + String($0, radix: 16) }.joined(separator: " ")
            controller.finish(.failed("vCPU \(vcpu.id): KVM_EXIT_INTERNAL_ERROR (\(kind)) \(describeState())\(extra.isEmpty ? "" : "; data \(extra)")"))
        case .unknown(let reason):
            controller.finish(.failed("vCPU \(vcpu.id): unhandled KVM exit reason \(reason); \(describeState())"))
        }
    }

    /// Lets KVM finish the instruction behind the last exit (an IN or MMIO read completes
    /// only when KVM_RUN is entered again): with immediate_exit set, KVM_RUN completes it and
    /// returns at once without running guest code. Afterwards the registers KVM reports
    /// describe an instruction boundary, which is what a saved state must hold.
    private func completePendingExit() {
        vcpu.setImmediateExit(true)
        // A string I/O instruction can need more I/O before it completes: serve those exits too.
        while !controller.isStopping {
            let exit: VCPUExit
            do {
                unsafe exit = unsafe try vcpu.run()
            } catch {
                controller.finish(.failed("vCPU \(vcpu.id): \(error)"))
                break
            }
            if case .interrupted = unsafe exit { break }
            unsafe handle(exit)
            vcpu.setImmediateExit(true)
        }
        vcpu.setImmediateExit(false)
    }

    /// "RIP 0x… (mode), bytes at RIP: 0f 01 ca …" for error messages.
    func describeState() -> String {
        guard let regs = try? vcpu.registers(), let sregs = try? vcpu.specialRegisters() else { return "registers unavailable" }
        let mode: String
        if sregs.efer & (1 << 10) != 0 { mode = sregs.cs.l != 0 ? "64-bit" : "compatibility" }
        else if sregs.cr0 & 1 != 0 { mode = sregs.cs.db != 0 ? "32-bit protected" : "16-bit protected" }
        else { mode = "real" }
        let linear = mode == "64-bit" ? regs.rip : sregs.cs.base &+ regs.rip
        var bytesText = "unreadable"
        if let t = try? vcpu.translate(linear), t.valid, let bytes = try? memory.readBytes(at: t.physical, count: 15) {
            bytesText = bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: " ")
        } else if sregs.cr0 & (1 << 31) == 0, let bytes = try? memory.readBytes(at: linear, count: 15) {
            bytesText = bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: " ")
        }
        return "RIP 0x\(String(regs.rip, radix: 16)) (\(mode) mode), bytes at RIP: \(bytesText)"
    }
}


/// Exits one vCPU handled, by kind: one atomic per kind, bumped on the vCPU thread without a
/// lock, read by metrics from any thread.
final class ExitCounters: Sendable {
    enum Kind: CaseIterable {
        case io, mmio, hlt, shutdown, emulationAssist

        /// The name metrics use (`exits.<name>`).
        var name: String {
            switch self {
            case .io: return "io"
            case .mmio: return "mmio"
            case .hlt: return "hlt"
            case .shutdown: return "shutdown"
            case .emulationAssist: return "emulation-assist"
            }
        }
    }

    private let io = Atomic<UInt64>(0)
    private let mmio = Atomic<UInt64>(0)
    private let hlt = Atomic<UInt64>(0)
    private let shutdown = Atomic<UInt64>(0)
    private let emulationAssist = Atomic<UInt64>(0)

    func count(_ kind: Kind) {
        switch kind {
        case .io: io.add(1, ordering: .relaxed)
        case .mmio: mmio.add(1, ordering: .relaxed)
        case .hlt: hlt.add(1, ordering: .relaxed)
        case .shutdown: shutdown.add(1, ordering: .relaxed)
        case .emulationAssist: emulationAssist.add(1, ordering: .relaxed)
        }
    }

    func value(_ kind: Kind) -> UInt64 {
        switch kind {
        case .io: return io.load(ordering: .relaxed)
        case .mmio: return mmio.load(ordering: .relaxed)
        case .hlt: return hlt.load(ordering: .relaxed)
        case .shutdown: return shutdown.load(ordering: .relaxed)
        case .emulationAssist: return emulationAssist.load(ordering: .relaxed)
        }
    }
}
