#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem
import SystemExtras

/// SIGTERM, SIGINT and SIGHUP for a monitor: blocked in the creating thread (threads created
/// later inherit the mask) and delivered to one thread that waits for them with sigwait, which
/// then runs the handler (stop the VM: disks flushed, sockets removed, exit status 0).
final class TerminationSignals: Sendable {
    static let numbers: [Int32] = [SIGTERM, SIGINT, SIGHUP]
    private let set: sigset_t

    init() {
        var set = sigset_t()
        sigemptyset(&set)
        for n in Self.numbers { sigaddset(&set, n) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        self.set = set
    }

    /// Starts the thread that runs `handler` on the first of the signals.
    func onSignal(_ handler: @escaping @Sendable () -> Void) {
        let waited = set
        _ = try? HostThread.spawn(name: "signals") {
            var s = waited
            var number: Int32 = 0
            while sigwait(&s, &number) != 0 {}
            handler()
        }
    }
}
