#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem

/// A joinable OS thread (pthread) running a closure: vCPUs and device loops block in system
/// calls, so they get threads of their own rather than Swift concurrency tasks.
public final class HostThread: @unchecked Sendable {
    private var handle: pthread_t?

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
        thread.handle = t
        return thread
    }

    /// Waits for the thread to finish. Calling it twice is harmless.
    public func join() {
        guard let t = handle else { return }
        handle = nil
        pthread_join(t, nil)
    }
}

/// Seconds on the monotonic clock, for timeouts and measurements.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
