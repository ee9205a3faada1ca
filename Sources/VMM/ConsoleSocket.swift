#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SystemExtras

/// The serial console on a unix stream socket, for a host daemon and its console clients: each
/// client first receives the recent output (up to `scrollback` bytes), then the live output,
/// as raw bytes; what a client sends is console input for the guest (the daemon decides who
/// may type). A client that does not read is disconnected once `clientBacklog` bytes wait for
/// it; at most `maxClients` at once. The socket file is created mode 0600 and removed on close.
@safe public final class ConsoleSocket: ConsoleSink, Sendable {
    public static let scrollback = 64 << 10
    public static let clientBacklog = 256 << 10
    public static let maxClients = 16
    /// Takes guest input; returns how many bytes the console accepted.
    public typealias Input = @Sendable (UnsafeRawBufferPointer) -> Int

    public let path: String
    private let listener: OwnedFileDescriptor
    private let stopEvent: EventFD
    private let input: Input
    private let thread = Mutex<HostThread?>(nil)

    // @unchecked: `backlog` is only touched with `shared` locked; `pendingInput` only on the server thread.
    private final class Client: @unchecked Sendable {
        let fd: OwnedFileDescriptor
        var backlog: [UInt8] = []
        var pendingInput: [UInt8] = []
        init(fd: OwnedFileDescriptor) { self.fd = fd }
    }
    private struct Shared {
        var clients: [Client] = []
        var recent: [UInt8] = []
    }
    private let shared = Mutex(Shared())

    /// Creates and binds the socket at `path` (which must not exist).
    public init(path: String, input: @escaping Input) throws(VMError) {
        self.path = path
        unsafe self.input = unsafe input
        do {
            listener = try UnixListener.bind(path: path)
            stopEvent = try EventFD()
        } catch {
            throw VMError("console socket \(path): \(error)")
        }
        do {
            let serving = try HostThread.spawn(name: "console-sock", role: .consoleSocket) { [self] in self.serve() }
            thread.withLock { $0 = serving }
        } catch {
            unsafe unlink(path)
            throw VMError("console socket \(path): \(error)")
        }
    }

    // MARK: ConsoleSink (console writer thread)

    public func deliver(_ bytes: UnsafeRawBufferPointer) -> Bool {
        shared.withLock { s in
            unsafe s.recent.append(contentsOf: bytes)
            if s.recent.count > Self.scrollback { s.recent.removeFirst(s.recent.count - Self.scrollback) }
            s.clients.removeAll { client in
                unsafe client.backlog.append(contentsOf: bytes)
                return !Self.flush(client)
            }
        }
        return true
    }

    public func close() {
        stopEvent.signal()
        thread.withLock { $0 }?.join()
        shared.withLock { $0.clients.removeAll() }
        unsafe unlink(path)
    }

    /// Sends what waits for `client` without blocking; false if it must be dropped.
    private static func flush(_ client: Client) -> Bool {
        var sent = 0
        while sent < client.backlog.count {
            let n = unsafe client.backlog.withUnsafeBytes {
                unsafe send(client.fd.rawValue, $0.baseAddress.map { unsafe $0 + sent }, $0.count - sent, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                return false
            }
            sent += n
        }
        client.backlog.removeFirst(sent)
        return client.backlog.count <= clientBacklog
    }

    // MARK: Server thread

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let clients = shared.withLock { $0.clients }
            var fds = [pollfd(fd: stopEvent.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0)]
            for c in clients {
                var events = Int16(POLLIN)
                if !c.backlog.isEmpty { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: c.fd.rawValue, events: events, revents: 0))
            }
            let waitingInput = clients.contains { !$0.pendingInput.isEmpty }
            let r = unsafe poll(&fds, nfds_t(fds.count), waitingInput ? 10 : 500)
            if r < 0 && errno != EINTR { return }
            if fds[0].revents != 0 { return }
            var dropped: [ObjectIdentifier] = []
            for (i, c) in clients.enumerated() {
                let revents = fds[i + 2].revents
                if revents & Int16(POLLOUT) != 0 {
                    let ok = shared.withLock { _ in Self.flush(c) }
                    if !ok { dropped.append(ObjectIdentifier(c)) }
                }
                // Input: only what the guest can take now; the rest waits (bounded) and the
                // client is not read from meanwhile.
                if !c.pendingInput.isEmpty {
                    let taken = unsafe c.pendingInput.withUnsafeBytes { unsafe input($0) }
                    c.pendingInput.removeFirst(min(taken, c.pendingInput.count))
                }
                guard revents & Int16(POLLIN | POLLHUP | POLLERR) != 0, c.pendingInput.isEmpty else { continue }
                let n = unsafe buffer.withUnsafeMutableBytes { unsafe recv(c.fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
                    dropped.append(ObjectIdentifier(c))
                    continue
                }
                if n > 0 {
                    let taken = unsafe buffer.withUnsafeBytes { unsafe input(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                    if taken < n { c.pendingInput = Array(buffer[taken..<n]) }
                }
            }
            if !dropped.isEmpty { shared.withLock { $0.clients.removeAll { dropped.contains(ObjectIdentifier($0)) } } }
            if fds[1].revents != 0 {
                let fd = accept(listener.rawValue, nil, nil)
                if fd >= 0 {
                    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                    let client = Client(fd: OwnedFileDescriptor(taking: fd))
                    shared.withLock { s in
                        guard s.clients.count < Self.maxClients else { return }
                        client.backlog = s.recent
                        if Self.flush(client) { s.clients.append(client) }
                    }
                }
            }
        }
    }
}

/// A listening unix stream socket created owner-only.
enum UnixListener {
    static func bind(path: String) throws(SystemError) -> OwnedFileDescriptor {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path), !bytes.contains(0) else {
            throw SystemError("a socket path must be 1 to 107 bytes", code: ENAMETOOLONG)
        }
        var st = stat()
        if unsafe lstat(path, &st) == 0 { throw SystemError("the path already exists", code: EEXIST) }
        unsafe withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { unsafe raw[i] = b }
        }
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw .current("socket") }
        let fd = OwnedFileDescriptor(taking: s)
        let oldMask = umask(0o177)
        let r = unsafe withUnsafePointer(to: &address) {
            unsafe $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe Glibc.bind(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        let bindError = errno
        umask(oldMask)
        guard r == 0 else { throw SystemError("bind", code: bindError) }
        guard listen(s, 16) == 0 else {
            unsafe unlink(path)
            throw .current("listen")
        }
        return fd
    }
}
