import Foundation
import HostProcess
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
}
