#if canImport(Glibc)
import Glibc
#endif
import DeviceModel
import Dispatch
import Synchronization
import SystemExtras

/// How one boot of a machine ended.
public enum MachineOutcome: Equatable, Sendable {
    /// The guest powered off (ACPI S5 or KVM_SYSTEM_EVENT_SHUTDOWN).
    case powerOff
    /// The guest reset itself (i8042, ACPI reset register, triple fault).
    case reset
    /// The guest wrote to the debug-exit port.
    case debugExit(status: Int32)
    /// The host asked the VM to stop.
    case stopped
    /// The VM cannot go on: an unhandled exit, an emulation failure, an internal error.
    case failed(String)
}

/// Collects the first terminal event of a machine, stops its vCPUs and wakes whoever waits.
final class MachineController: MachineControl, Sendable {
    private let outcome = Mutex<MachineOutcome?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let kickers = Mutex<[@Sendable () -> Void]>([])

    /// Whether the vCPUs should leave their run loops.
    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Auto-converge: how long each vCPU sleeps per throttle tick, and the tick count.
    private let throttleSleep = Atomic<Int>(0)
    private let throttleTicks = Atomic<UInt64>(0)

    func setThrottle(sleepNanoseconds: Int) {
        throttleSleep.store(sleepNanoseconds, ordering: .releasing)
    }

    /// Kicks every vCPU so each sleeps once (called every throttle period).
    func throttleTick() {
        throttleTicks.add(1, ordering: .releasing)
        for kick in kickers.withLock({ $0 }) { kick() }
    }

    /// Called on a vCPU thread before KVM_RUN: sleeps if a throttle tick arrived since `seen`.
    func throttleIfDue(_ seen: inout UInt64) {
        let ticks = throttleTicks.load(ordering: .acquiring)
        guard ticks != seen else { return }
        seen = ticks
        let nanos = throttleSleep.load(ordering: .acquiring)
        guard nanos > 0 else { return }
        var ts = timespec(tv_sec: 0, tv_nsec: nanos)
        unsafe nanosleep(&ts, nil)
    }

    /// Pause hand-shake between the controlling thread and the vCPU threads.
    private struct Parking {
        var requested = false
        var parked = 0
        var stopping = false
    }
    private let parking = ConditionLock(Parking())
    /// Checked by vCPU threads before each KVM_RUN (cheaper than taking the lock).
    private let pauseFlag = Atomic<Bool>(false)

    /// Whether a pause was asked for (vCPU threads then park before running the guest again).
    var pauseRequested: Bool { pauseFlag.load(ordering: .acquiring) }

    /// Asks every vCPU to park and kicks them out of KVM_RUN.
    func requestPause() {
        parking.update { $0.requested = true }
        pauseFlag.store(true, ordering: .releasing)
        for kick in kickers.withLock({ $0 }) { kick() }
    }

    /// Waits until `count` vCPUs are parked; false on timeout or when the machine stops first.
    func waitUntilParked(_ count: Int, timeout: Double) -> Bool {
        parking.wait(until: { $0.parked >= count || $0.stopping }, timeout: timeout) { $0.parked >= count && !$0.stopping } ?? false
    }

    /// Lets parked vCPUs run again.
    func releasePause() {
        pauseFlag.store(false, ordering: .releasing)
        parking.update { $0.requested = false }
    }

    /// Called on a vCPU thread (its pending I/O completed): blocks while a pause is in effect.
    func park() {
        parking.update { $0.parked += 1 }
        parking.wait(until: { !$0.requested || $0.stopping }) { $0.parked -= 1 }
    }

    /// Registers a closure that forces one vCPU out of KVM_RUN.
    func addKicker(_ kick: @escaping @Sendable () -> Void) {
        kickers.withLock { $0.append(kick) }
    }

    func request(_ event: MachineEvent) {
        switch event {
        case .powerOff: finish(.powerOff)
        case .reset: finish(.reset)
        case .debugExit(let status): finish(.debugExit(status: status))
        }
    }

    /// Records `result` if nothing was recorded yet, then stops every vCPU.
    func finish(_ result: MachineOutcome) {
        let first = outcome.withLock { current -> Bool in
            guard current == nil else { return false }
            current = result
            return true
        }
        guard first else { return }
        stopping.store(true, ordering: .releasing)
        parking.update { $0.stopping = true }
        for kick in kickers.withLock({ $0 }) { kick() }
        finished.signal()
    }

    /// Blocks until the machine has an outcome.
    func wait() -> MachineOutcome {
        finished.wait()
        finished.signal()
        return outcome.withLock { $0 } ?? .stopped
    }

    /// The outcome so far, if any.
    var current: MachineOutcome? { outcome.withLock { $0 } }
}
