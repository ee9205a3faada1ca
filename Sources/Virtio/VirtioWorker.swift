import SystemExtras
import Synchronization

/// A device's event loop: one OS thread waiting in epoll on the queue notifiers and any
/// backend descriptors (TAP, sockets), calling the device's handler for each ready source.
/// Stopping is synchronous, so after `stop()` the device no longer touches guest memory.
public final class VirtioWorker: @unchecked Sendable {
    /// What became ready.
    public enum Source: Equatable, Sendable {
        case queue(Int)
        case backend(Int)
    }

    private let epoll: Epoll
    private let stopEvent: EventFD
    private var thread: HostThread?
    private let stopToken = UInt64.max

    /// Starts a thread named `name` that waits on `notifiers` (queue i → `.queue(i)`) and
    /// `backends` (fd j → `.backend(j)`), calling `handler` on that thread.
    public init(name: String, notifiers: [EventFD], backends: [(fd: Int32, events: UInt32)] = [],
                handler: @escaping @Sendable (Source, UInt32) -> Void) throws(SystemError) {
        epoll = try Epoll()
        stopEvent = try EventFD()
        try epoll.add(stopEvent.rawValue, token: stopToken)
        for (i, n) in notifiers.enumerated() { try epoll.add(n.rawValue, token: UInt64(i)) }
        for (j, b) in backends.enumerated() { try epoll.add(b.fd, token: (1 << 32) | UInt64(j), events: b.events) }
        let epoll = self.epoll
        let stopToken = self.stopToken
        thread = try HostThread.spawn(name: name) {
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
        thread?.join()
        thread = nil
    }

    deinit { stop() }
}
