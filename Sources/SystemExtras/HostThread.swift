#if canImport(Glibc)
import Glibc
#endif
import CSkiffSystem
import Synchronization

/// A joinable OS thread (pthread) running a closure: vCPUs and device loops block in system
/// calls, so they get threads of their own rather than Swift concurrency tasks.
///
/// Every thread has a `ThreadRole`. Once the process confines its threads
/// (`confineThreads(with:)`), each new thread confines itself to its role before its body
/// runs, and threads are no longer created by the thread that asks for one but by a spawner
/// thread: a confined thread inherits its creator's seccomp filters, which only narrow, so a
/// vCPU thread that starts a device worker would otherwise pass its own restrictions on to
/// the worker (and would need clone(2) itself).
public final class HostThread: Sendable {
    /// The thread until someone joins it.
    private let handle = Mutex<pthread_t?>(nil)

    private final class Start {
        let name: String
        let role: ThreadRole
        let confinement: (any ThreadConfinement)?
        let body: () -> Void
        init(name: String, role: ThreadRole, confinement: (any ThreadConfinement)?, body: @escaping () -> Void) {
            self.name = name
            self.role = role
            self.confinement = confinement
            self.body = body
        }
    }

    private init() {}

    /// Starts `body` on a new thread named `name` (at most 15 characters are kept) in `role`.
    public static func spawn(name: String, role: ThreadRole, _ body: @escaping @Sendable () -> Void) throws(SystemError) -> HostThread {
        let active = Confinement.current
        let start = unsafe Unmanaged.passRetained(Start(name: name, role: role, confinement: active?.confinement, body: body))
        let handle: pthread_t
        do {
            if let spawner = active?.spawner {
                handle = unsafe try spawner.create(start.toOpaque())
            } else {
                handle = unsafe try create(start.toOpaque())
            }
        } catch {
            unsafe start.release()
            throw SystemError("pthread_create \(name)", code: error.code)
        }
        let thread = HostThread()
        thread.handle.withLock { $0 = handle }
        return thread
    }

    /// pthread_create with the trampoline that names the thread, confines it and runs its body.
    fileprivate static func create(_ start: UnsafeMutableRawPointer) throws(SystemError) -> pthread_t {
        var t = pthread_t()
        let r = unsafe pthread_create(&t, nil, { arg in
            guard let arg = unsafe arg else { return nil }
            let start = unsafe Unmanaged<Start>.fromOpaque(arg).takeRetainedValue()
            _ = unsafe csystem_set_thread_name(String(start.name.prefix(15)))
            start.confinement?.confine(start.role)
            start.body()
            return nil
        }, unsafe start)
        guard r == 0 else { throw SystemError("pthread_create", code: r) }
        return t
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

    /// From now on, every thread this process creates confines itself with `confinement`
    /// before its body runs, and threads are created by a spawner thread (itself confined as
    /// `.spawner`), which also gives them its signal mask: call this after blocking the
    /// signals no thread but a dedicated one should take. Once per process; later calls
    /// change nothing and return false.
    @discardableResult
    public static func confineThreads(with confinement: any ThreadConfinement) throws(SystemError) -> Bool {
        try Confinement.activate(confinement)
    }

    /// Confines the calling thread (which was not created by `spawn`, e.g. the process's main
    /// thread) to `role`; false when threads are not confined.
    @discardableResult
    public static func confineCurrentThread(as role: ThreadRole) -> Bool {
        guard let active = Confinement.current else { return false }
        active.confinement.confine(role)
        return true
    }

    /// Whether threads are confined in this process.
    public static var threadsAreConfined: Bool { Confinement.current != nil }
}

/// The process-wide confinement and its spawner thread.
private enum Confinement {
    struct Active: Sendable {
        let confinement: any ThreadConfinement
        let spawner: ThreadSpawner
    }
    private static let state = Mutex<Active?>(nil)

    static var current: Active? { state.withLock { $0 } }

    static func activate(_ confinement: any ThreadConfinement) throws(SystemError) -> Bool {
        try state.withLock { active throws(SystemError) -> Bool in
            guard active == nil else { return false }
            active = Active(confinement: confinement, spawner: try ThreadSpawner(confinement: confinement))
            return true
        }
    }
}

/// The thread that creates every other thread once threads are confined. Its own filter
/// allows what any role needs plus what creating a thread takes, so each new thread starts
/// with no more than the process as a whole may do and then narrows itself to its role.
private final class ThreadSpawner: @unchecked Sendable {
    // @unchecked: the start pointers handed over through `state` are owned by one request each.
    @safe private struct State {
        var next: UInt64 = 0
        var requests: [(id: UInt64, start: UnsafeMutableRawPointer)] = unsafe []
        var results: [UInt64: Result<pthread_t, SystemError>] = [:]
    }
    private let state = ConditionLock(State())

    init(confinement: any ThreadConfinement) throws(SystemError) {
        let own = unsafe Unmanaged.passRetained(HostThreadSpawnerStart(body: { [self] in self.serve() }, confinement: confinement))
        var t = pthread_t()
        let r = unsafe pthread_create(&t, nil, { arg in
            guard let arg = unsafe arg else { return nil }
            let start = unsafe Unmanaged<HostThreadSpawnerStart>.fromOpaque(arg).takeRetainedValue()
            _ = unsafe csystem_set_thread_name("spawner")
            start.confinement.confine(.spawner)
            start.body()
            return nil
        }, unsafe own.toOpaque())
        guard r == 0 else {
            unsafe own.release()
            throw SystemError("pthread_create spawner", code: r)
        }
        pthread_detach(t)
    }

    /// Creates a thread for `start` on the spawner thread and returns its handle.
    func create(_ start: UnsafeMutableRawPointer) throws(SystemError) -> pthread_t {
        let id = state.update { s -> UInt64 in
            s.next += 1
            unsafe s.requests.append((s.next, start))
            return s.next
        }
        let result = state.wait(until: { $0.results[id] != nil }) { $0.results.removeValue(forKey: id) } ?? nil
        guard let result else { throw SystemError("pthread_create", code: EAGAIN) }
        return try result.get()
    }

    private func serve() {
        while true {
            let request = unsafe state.wait(until: { unsafe !$0.requests.isEmpty }) { unsafe $0.requests.removeFirst() }
            guard let request = unsafe request else { continue }
            let result: Result<pthread_t, SystemError>
            do {
                result = unsafe .success(try HostThread.create(request.start))
            } catch {
                result = .failure(error)
            }
            state.update { unsafe $0.results[request.id] = result }
        }
    }
}

private final class HostThreadSpawnerStart {
    let body: () -> Void
    let confinement: any ThreadConfinement
    init(body: @escaping () -> Void, confinement: any ThreadConfinement) {
        self.body = body
        self.confinement = confinement
    }
}

/// Seconds on the monotonic clock, for timeouts and measurements.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    unsafe clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
