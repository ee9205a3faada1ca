#if canImport(Glibc)
import Glibc
#endif
import ControlProtocol
import Synchronization
import SystemExtras

/// One migration connection: frames sent and received with deadlines, and a cancel switch
/// that interrupts any wait. Bytes sent and received are counted for progress reports.
public final class MigrationConnection: Sendable {
    private let fd: OwnedFileDescriptor
    private let cancelEvent: EventFD
    private let timeoutSeconds = Mutex<Double>(30)
    private let sent = Atomic<UInt64>(0)
    private let received = Atomic<UInt64>(0)
    /// Seconds a send or receive may wait for the peer.
    public var timeout: Double {
        get { timeoutSeconds.withLock { $0 } }
        set { timeoutSeconds.withLock { $0 = newValue } }
    }
    public var bytesSent: UInt64 { sent.load(ordering: .relaxed) }
    public var bytesReceived: UInt64 { received.load(ordering: .relaxed) }

    init(fd: OwnedFileDescriptor) throws(MigrationError) {
        self.fd = fd
        do {
            cancelEvent = try EventFD()
            try fd.setNonBlocking(true)
        } catch {
            throw .transport("\(error)")
        }
        var one: Int32 = 1
        _ = unsafe setsockopt(fd.rawValue, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Makes every current and later wait fail with `.cancelled`.
    public func cancel() {
        cancelEvent.signal()
    }

    /// Connects to `endpoint` (waits up to `timeout` seconds).
    public static func connect(to endpoint: MigrationEndpoint, timeout: Double = 10) throws(MigrationError) -> MigrationConnection {
        let fd = try Sockets.connect(endpoint, timeout: timeout)
        return try MigrationConnection(fd: fd)
    }

    /// Sends one frame.
    public func send(_ kind: MigrationFrame.Kind, _ payload: [UInt8]) throws(MigrationError) {
        try write(MigrationFrame.header(kind, length: payload.count))
        try write(payload)
    }

    /// Sends a Codable payload.
    public func send<T: Encodable>(_ kind: MigrationFrame.Kind, value: T) throws(MigrationError) {
        try send(kind, try MigrationFrame.encode(value))
    }

    /// Receives one frame. An `abort` from the peer is thrown as `.aborted`.
    public func receive() throws(MigrationError) -> (kind: MigrationFrame.Kind, payload: [UInt8]) {
        let header = try read(MigrationFrame.headerSize)
        let (kind, length) = try MigrationFrame.parseHeader(header)
        let payload = try read(length)
        if kind == .abort {
            let reason = (try? MigrationFrame.decode(MigrationAbort.self, payload, kind: .abort))?.reason ?? "no reason given"
            throw .aborted(reason)
        }
        return (kind, payload)
    }

    /// Receives a frame that must be of `kind` and decodes it.
    public func receive<T: Decodable>(_ kind: MigrationFrame.Kind, as type: T.Type) throws(MigrationError) -> T {
        let frame = try receive()
        guard frame.kind == kind else { throw .malformed("expected \(kind), got \(frame.kind)") }
        return try MigrationFrame.decode(type, frame.payload, kind: kind)
    }

    /// Tells the peer why this side gives up (best effort).
    public func abort(_ reason: String) {
        let saved = timeout
        timeout = 1
        try? send(.abort, value: MigrationAbort(reason: reason))
        timeout = saved
    }

    private func wait(for events: Int16) throws(MigrationError) {
        var fds = [pollfd(fd: fd.rawValue, events: events, revents: 0), pollfd(fd: cancelEvent.rawValue, events: Int16(POLLIN), revents: 0)]
        let deadline = monotonicSeconds() + timeout
        while true {
            let left = deadline - monotonicSeconds()
            guard left > 0 else { throw .transport("the peer did not respond within \(Int(timeout)) s") }
            let r = unsafe poll(&fds, 2, Int32(min(left, 1) * 1000) + 1)
            if r < 0 {
                if errno == EINTR { continue }
                throw .transport(unsafe "poll: \(String(cString: strerror(errno)))")
            }
            if fds[1].revents != 0 { throw .cancelled }
            if fds[0].revents != 0 { return }
        }
    }

    private func write(_ bytes: [UInt8]) throws(MigrationError) {
        var done = 0
        while done < bytes.count {
            let n = unsafe bytes.withUnsafeBytes { unsafe Glibc.send(fd.rawValue, $0.baseAddress.map { unsafe $0 + done }, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    try wait(for: Int16(POLLOUT))
                    continue
                }
                throw .transport(unsafe "send: \(String(cString: strerror(errno)))")
            }
            done += n
            sent.add(UInt64(n), ordering: .relaxed)
        }
    }

    private func read(_ count: Int) throws(MigrationError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = unsafe buffer.withUnsafeMutableBytes { unsafe recv(fd.rawValue, $0.baseAddress.map { unsafe $0 + done }, count - done, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    try wait(for: Int16(POLLIN))
                    continue
                }
                throw .transport(unsafe "receive: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw .transport("the peer closed the connection") }
            done += n
            received.add(UInt64(n), ordering: .relaxed)
        }
        return buffer
    }
}

/// A listening socket for `--incoming`.
public final class MigrationListener: Sendable {
    private let fd: OwnedFileDescriptor
    public let endpoint: MigrationEndpoint
    private let unixPath: String?

    /// Listens on `endpoint` (for unix sockets the path must not exist; it is removed on close).
    public init(endpoint: MigrationEndpoint) throws(MigrationError) {
        self.endpoint = endpoint
        fd = try Sockets.listen(endpoint)
        if case .unix(let path) = endpoint { unixPath = path } else { unixPath = nil }
    }

    deinit {
        if let unixPath { unsafe unlink(unixPath) }
    }

    /// The TCP port actually bound (useful with port 0), if TCP.
    public var boundPort: UInt16? { Sockets.boundPort(fd.rawValue) }

    /// Waits for the source (up to `timeout` seconds; nil waits forever). With `stopWhenReadable`
    /// it gives up with `.cancelled` as soon as that descriptor is readable (e.g. a signalfd of
    /// the stop signals), without reading it.
    public func accept(timeout: Double?, stopWhenReadable stop: Int32? = nil) throws(MigrationError) -> MigrationConnection {
        var fds = [pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0), pollfd(fd: stop ?? -1, events: Int16(POLLIN), revents: 0)]
        let deadline = timeout.map { monotonicSeconds() + $0 }
        while true {
            let wait = deadline.map { max(0, $0 - monotonicSeconds()) }
            if let wait, wait <= 0 { throw .transport("no source connected within \(Int(timeout ?? 0)) s") }
            let r = unsafe poll(&fds, 2, Int32(min(wait ?? 1, 1) * 1000) + 1)
            if r < 0 && errno != EINTR { throw .transport(unsafe "poll: \(String(cString: strerror(errno)))") }
            guard r > 0 else { continue }
            if fds[1].revents != 0 { throw .cancelled }
            guard fds[0].revents != 0 else { continue }
            let c = Glibc.accept(fd.rawValue, nil, nil)
            if c < 0 {
                if errno == EINTR || errno == EAGAIN || errno == ECONNABORTED { continue }
                throw .transport(unsafe "accept: \(String(cString: strerror(errno)))")
            }
            _ = fcntl(c, F_SETFD, FD_CLOEXEC)
            return try MigrationConnection(fd: OwnedFileDescriptor(taking: c))
        }
    }
}
