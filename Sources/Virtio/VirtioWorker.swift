import SystemExtras
import Synchronization

/// A device's event loop: one OS thread waiting in epoll on the queue notifiers and any
/// backend descriptors (TAP, sockets), calling the device's handler for each ready source.
/// Stopping is synchronous, so after `stop()` the device no longer touches guest memory.
public final class VirtioWorker: Sendable {
    /// What became ready.
    public enum Source: Equatable, Sendable {
        case queue(Int)
        case backend(Int)
    }

    private let epoll: Epoll
    private let stopEvent: EventFD
    private let thread: HostThread
    private let stopToken = UInt64.max

    /// Starts a thread named `name` in `role` that waits on `notifiers` (queue i → `.queue(i)`) and
    /// `backends` (fd j → `.backend(j)`), calling `handler` on that thread.
    public init(name: String, role: ThreadRole, notifiers: [EventFD], backends: [(fd: Int32, events: UInt32)] = [],
                handler: @escaping @Sendable (Source, UInt32) -> Void) throws(SystemError) {
        epoll = try Epoll()
        stopEvent = try EventFD()
        try epoll.add(stopEvent.rawValue, token: stopToken)
        for (i, n) in notifiers.enumerated() { try epoll.add(n.rawValue, token: UInt64(i)) }
        for (j, b) in backends.enumerated() { try epoll.add(b.fd, token: (1 << 32) | UInt64(j), events: b.events) }
        let epoll = self.epoll
        let stopToken = self.stopToken
        thread = try HostThread.spawn(name: name, role: role) {
            while true {
                let ready: [(token: UInt64, events: UInt32)]
                do {
                    ready = try epoll.wait(timeoutMilliseconds: -1)
                } catch {
                    return
                }
                for r in ready {
                    if r.token == stopToken { return }
                    if r.token >> 32 == 1 {
                        handler(.backend(Int(r.token & 0xffff_ffff)), r.events)
                    } else {
                        let i = Int(r.token)
                        if i < notifiers.count { notifiers[i].consume() }
                        handler(.queue(i), r.events)
                    }
                }
            }
        }
    }

    /// Changes the events watched on backend `index` (e.g. add EPOLLOUT while output is blocked).
    public func watchBackend(_ index: Int, fd: Int32, events: UInt32) {
        try? epoll.modify(fd, token: (1 << 32) | UInt64(index), events: events)
    }

    /// Stops the thread and waits for it.
    public func stop() {
        stopEvent.signal()
        thread.join()
    }

    deinit { stop() }
}

/// The worker thread of an active device, which a VM pause stops and a resume starts again.
///
/// `pause()` returns once the thread has finished the handler call it was in (so requests
/// the device had taken are completed and published) and no handler runs until `resume()`.
/// The device keeps its queues and backends meanwhile; only the thread goes away.
public final class PausableWorker: Sendable {
    public typealias Factory = @Sendable () throws(SystemError) -> VirtioWorker

    private let factory: Factory
    private let notifiers: [EventFD]
    private let current = Mutex<VirtioWorker?>(nil)

    /// Prepares a worker made by `factory`; it starts running only with `resume()`.
    /// `notifiers` are signalled on every resume so requests queued meanwhile are seen.
    public init(notifiers: [EventFD], factory: @escaping Factory) {
        self.notifiers = notifiers
        self.factory = factory
    }

    /// The running worker, if any (for backends that change what they watch).
    public var worker: VirtioWorker? { current.withLock { $0 } }

    /// Starts the thread if it is not running; `onStart` runs with the new worker before
    /// the queues are signalled.
    public func resume(onStart: (VirtioWorker) -> Void = { _ in }) throws(SystemError) {
        let started: VirtioWorker? = try current.withLock { w throws(SystemError) -> VirtioWorker? in
            guard w == nil else { return nil }
            let made = try factory()
            w = made
            return made
        }
        guard let started else { return }
        onStart(started)
        for n in notifiers { n.signal() }
    }

    /// Stops the thread after its current handler call; idempotent.
    public func pause() {
        let w = current.withLock { $0.take() }
        w?.stop()
    }
}
