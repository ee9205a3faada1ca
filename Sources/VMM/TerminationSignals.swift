#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem
import Synchronization
import SystemExtras

/// SIGTERM, SIGINT and SIGHUP for a monitor: blocked in the creating thread (threads created
/// later inherit the mask) and delivered to one thread that waits for them with sigwait, which
/// then runs the handler (stop the VM: disks flushed, sockets removed, exit status 0).
final class TerminationSignals: Sendable {
    static let numbers: [Int32] = [SIGTERM, SIGINT, SIGHUP]
    private let set: sigset_t
    /// 0 armed, 1 the handler is running, 2 it ran or `finish` disarmed it.
    private let state = Atomic<Int>(0)

    init() {
        var set = sigset_t()
        unsafe sigemptyset(&set)
        for n in Self.numbers { unsafe sigaddset(&set, n) }
        unsafe pthread_sigmask(SIG_BLOCK, &set, nil)
        self.set = set
    }

    /// A descriptor that polls readable while one of the signals is pending (a signalfd; the
    /// signal stays pending for `onSignal`'s thread), for waits that must end on a stop signal
    /// before the VM exists. Nil if the kernel refuses one.
    func pendingDescriptor() -> OwnedFileDescriptor? {
        let fd = unsafe Self.numbers.withUnsafeBufferPointer { unsafe csystem_signalfd($0.baseAddress, Int32($0.count)) }
        return fd >= 0 ? OwnedFileDescriptor(taking: fd) : nil
    }

    /// Whether one of the signals is pending (sent and not yet taken).
    var arePending: Bool {
        var pending = sigset_t()
        guard unsafe sigpending(&pending) == 0 else { return false }
        for n in Self.numbers where unsafe sigismember(&pending, n) == 1 { return true }
        return false
    }

    /// Starts the thread that runs `handler` on the first of the signals.
    /// The handler should hold no strong reference to what the caller releases after
    /// `finish()`: the thread must not be the one that frees it (its seccomp filter allows
    /// waiting for signals and stopping the VM, not closing its disks).
    func onSignal(_ handler: @escaping @Sendable () -> Void) {
        let waited = set
        _ = try? HostThread.spawn(name: "signals", role: .signals) { [self] in
            var s = waited
            var number: Int32 = 0
            while unsafe sigwait(&s, &number) != 0 {}
            guard state.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged else { return }
            handler()
            state.store(2, ordering: .releasing)
        }
    }

    /// Disarms the handler, or waits for it to return if a signal already started it: after
    /// this the signal thread touches nothing of the caller's.
    func finish() {
        if state.compareExchange(expected: 0, desired: 2, ordering: .acquiringAndReleasing).exchanged { return }
        while state.load(ordering: .acquiring) != 2 { usleep(1000) }
    }
}
