import CHostProcess
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Notices at once when watched processes end: one thread polls a pidfd per process (a pidfd
/// becomes readable when its process exits, whoever its parent is). Children of this process
/// are reaped and their exit status reported; others (re-attached after a daemon restart)
/// report `.unknown`.
public final class ExitWatcher: Sendable {
    public typealias Handler = @Sendable (ProcessIdentity, ExitStatus) -> Void

    private struct Entry {
        var identity: ProcessIdentity
        var pidfd: Int32
        var handler: Handler
    }

    private struct State {
        var entries: [Int32: Entry] = [:]  // by pidfd
        var stopped = false
    }

    private let state = Mutex(State())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    public init() throws(ProcessError) {
        var fds: [Int32] = [0, 0]
        guard unsafe pipe(&fds) == 0 else { throw .fromErrno("pipe") }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
        let thread = Thread { [self] in run() }
        thread.name = "exit-watcher"
        thread.start()
    }

    /// Watches `identity`; `handler` runs once, on the watcher's thread, when it ends. A
    /// process that is already gone (or whose pid now belongs to another process) is reported
    /// at once as `.unknown`. Returns a pidfd-backed handle for signalling it safely.
    @discardableResult
    public func watch(_ identity: ProcessIdentity, handler: @escaping Handler) -> Bool {
        let pidfd = chp_pidfd_open(identity.pid)
        // Opening the pidfd first and checking the start time afterwards closes the race with
        // pid reuse: if the identity still matches now, the pidfd refers to that process.
        guard pidfd >= 0, identity.isAlive() || isZombieChild(identity) else {
            if pidfd >= 0 { close(pidfd) }
            handler(identity, .unknown)
            return false
        }
        state.withLock { $0.entries[pidfd] = Entry(identity: identity, pidfd: pidfd, handler: handler) }
        wake()
        return true
    }

    /// Sends `signal` through the process's pidfd (never to a recycled pid). False if it is
    /// not watched or already gone.
    @discardableResult
    public func signal(_ identity: ProcessIdentity, _ signal: Int32) -> Bool {
        state.withLock { s in
            guard let entry = s.entries.values.first(where: { $0.identity == identity }) else { return false }
            return chp_pidfd_send_signal(entry.pidfd, signal) == 0
        }
    }

    /// Whether `identity` is being watched (it has not been seen to exit).
    public func isWatching(_ identity: ProcessIdentity) -> Bool {
        state.withLock { s in s.entries.values.contains { $0.identity == identity } }
    }

    private func isZombieChild(_ identity: ProcessIdentity) -> Bool {
        guard let stat = ProcessIdentity.readStat(pid: identity.pid) else { return false }
        return stat.startTime == identity.startTime
    }

    private func wake() {
        var b: UInt8 = 1
        _ = unsafe write(wakeWrite, &b, 1)
    }

    private func run() {
        while true {
            let fds: [Int32] = state.withLock { s in s.stopped ? [] : Array(s.entries.keys) }
            var polls = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            polls += fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let r = unsafe poll(&polls, nfds_t(polls.count), -1)
            if r < 0 {
                if errno == EINTR { continue }
                return
            }
            if polls[0].revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 64)
                while unsafe read(wakeRead, &buffer, buffer.count) > 0 {}
            }
            for p in polls.dropFirst() where p.revents != 0 {
                guard let entry = state.withLock({ $0.entries.removeValue(forKey: p.fd) }) else { continue }
                var code: Int32 = 0
                var status: Int32 = 0
                let outcome: ExitStatus
                if unsafe chp_reap_pidfd(entry.pidfd, &code, &status) == 1 {
                    outcome = code == CLD_EXITED ? .exited(status) : .signalled(status)
                } else {
                    outcome = .unknown
                }
                close(entry.pidfd)
                entry.handler(entry.identity, outcome)
            }
        }
    }
}
