import Foundation
import HostProcess
import SkiffStore
import Synchronization

/// Per-VM state the daemon keeps in memory: the queue that serialises requests on the VM,
/// exits the watcher reported, and the restart back-off.
final class VMController: Sendable {
    let name: String
    let queue = AsyncSerialQueue()
    private struct State {
        var exits: [ProcessIdentity: ExitStatus] = [:]
        /// Consecutive restarts of monitors that ran less than `stableSeconds`.
        var quickFailures = 0
        var pendingRestart = false
        /// The stop task in progress (`POST /vms/{name}/stop`) and the monitor it stops.
        var stop: (task: TaskRecord, identity: ProcessIdentity)?
        /// A kill arrived while that stop waited: the stop records the exit as a kill.
        var killedDuringStop = false
    }
    private let state = Mutex(State())

    /// A monitor that ran this long counts as healthy again (back-off resets).
    static let stableSeconds: Double = 30

    init(name: String) { self.name = name }

    func post(_ identity: ProcessIdentity, _ status: ExitStatus) {
        state.withLock { $0.exits[identity] = status }
    }

    /// The exit of `identity` if the watcher reported it.
    func exit(of identity: ProcessIdentity) -> ExitStatus? {
        state.withLock { $0.exits[identity] }
    }

    func forget(_ identity: ProcessIdentity) {
        _ = state.withLock { $0.exits.removeValue(forKey: identity) }
    }

    /// Waits up to `timeout` seconds for the exit of `identity`.
    func waitForExit(of identity: ProcessIdentity, timeout: Double) async -> ExitStatus? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let s = exit(of: identity) { return s }
            if !identity.isAlive() {
                // Gone but not yet reported (the watcher reaps it in a moment).
                try? await Task.sleep(for: .milliseconds(20))
                if let s = exit(of: identity) { return s }
                if Date() > deadline { return .unknown }
                continue
            }
            if Date() > deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The delay before the next automatic restart: 0.5 s doubled per quick failure, at most 30 s.
    func nextBackoff(ranFor seconds: Double) -> Double {
        state.withLock { s in
            if seconds >= Self.stableSeconds { s.quickFailures = 0 }
            let delay = min(30, 0.5 * pow(2, Double(s.quickFailures)))
            s.quickFailures += 1
            return delay
        }
    }

    /// Marks a restart as scheduled; false if one already is.
    func claimRestart() -> Bool {
        state.withLock { s in
            if s.pendingRestart { return false }
            s.pendingRestart = true
            return true
        }
    }

    func restartDone() { state.withLock { $0.pendingRestart = false } }

    /// The stop task in progress for `identity`, if any.
    func stopTask(of identity: ProcessIdentity) -> TaskRecord? {
        state.withLock { $0.stop?.identity == identity ? $0.stop?.task : nil }
    }

    func beginStop(_ task: TaskRecord, _ identity: ProcessIdentity) {
        state.withLock { $0.stop = (task, identity); $0.killedDuringStop = false }
    }

    /// Ends the stop of `identity`; returns whether a kill cut it short.
    func endStop(_ identity: ProcessIdentity) -> Bool {
        state.withLock { s in
            guard s.stop?.identity == identity else { return false }
            s.stop = nil
            defer { s.killedDuringStop = false }
            return s.killedDuringStop
        }
    }

    /// Notes that a kill cut the stop of `identity` short; false if no stop of it is in progress.
    func markKilledDuringStop(_ identity: ProcessIdentity) -> Bool {
        state.withLock { s in
            guard s.stop?.identity == identity else { return false }
            s.killedDuringStop = true
            return true
        }
    }
}
