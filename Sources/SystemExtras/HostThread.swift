#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem
import Synchronization

/// A joinable OS thread (pthread) running a closure: vCPUs and device loops block in system
/// calls, so they get threads of their own rather than Swift concurrency tasks.
public final class HostThread: Sendable {
    /// The thread until someone joins it.
    private let handle = Mutex<pthread_t?>(nil)

    private final class Start {
        let name: String
        let body: () -> Void
        init(name: String, body: @escaping () -> Void) {
            self.name = name
            self.body = body
        }
    }

    private init() {}

    /// Starts `body` on a new thread named `name` (at most 15 characters are kept).
    public static func spawn(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) -> HostThread {
        let thread = HostThread()
        let start = Unmanaged.passRetained(Start(name: name, body: body))
        var t = pthread_t()
        let r = pthread_create(&t, nil, { arg in
            guard let arg else { return nil }
            let start = Unmanaged<Start>.fromOpaque(arg).takeRetainedValue()
            _ = csystem_set_thread_name(String(start.name.prefix(15)))
            start.body()
            return nil
        }, start.toOpaque())
        guard r == 0 else {
            start.release()
            throw SystemError("pthread_create \(name)", code: r)
        }
        thread.handle.withLock { $0 = t }
        return thread
    }

    /// Waits for the thread to finish. Calling it again, or from two threads at once, is
    /// harmless: every call returns after the thread has finished.
    public func join() {
        handle.withLock { handle in
            guard let t = handle else { return }
            pthread_join(t, nil)
            handle = nil
        }
    }

    /// A thread nobody joined is detached, so what it holds goes when it ends (ThreadSanitizer
    /// reported the signal thread, whose handle the monitor drops, as a leaked thread).
    deinit {
        if let t = handle.withLock({ $0.take() }) { pthread_detach(t) }
    }
}

/// Seconds on the monotonic clock, for timeouts and measurements.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
