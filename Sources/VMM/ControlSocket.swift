#if canImport(Glibc)
import Glibc
#endif
import ControlProtocol
import SystemExtras
import Synchronization

/// The monitor's control API on a unix stream socket: typed `ControlRequest`s in, one
/// `ControlReply` each out, as `ControlFrame`s.
///
/// One thread serves every client with poll(2), one request at a time. Everything a client
/// sends is bounded: at most `maxClients` connections, frames of at most
/// `ControlFrame.maxPayload` bytes (a bad or oversized frame gets an error reply and the
/// connection is closed), and a client that does not read its replies is dropped rather
/// than buffered for. The socket file is created mode 0600 and removed on stop.
public final class ControlSocket: Sendable {
    public static let maxClients = 8
    /// Answers one request.
    public typealias Handler = @Sendable (ControlRequest) -> ControlReply

    public let path: String
    private let listener: OwnedFileDescriptor
    private let handler: Handler
    private let stopEvent: EventFD
    private let thread = Mutex<HostThread?>(nil)

    /// Creates and binds the socket at `path`; fails if the path exists or is too long.
    /// The process umask is changed for the duration of bind(2), so create the socket
    /// before other threads create files (as `VMLauncher` does, before the VM runs).
    public init(path: String, handler: @escaping Handler) throws(VMError) {
        self.path = path
        self.handler = handler
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw VMError("control socket \(path): a socket path must be 1 to \(capacity - 1) bytes")
        }
        var st = stat()
        if unsafe lstat(path, &st) == 0 { throw VMError("control socket \(path): the path already exists") }
        unsafe withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { unsafe raw[i] = b }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw VMError(unsafe "control socket \(path): socket: \(String(cString: strerror(errno)))") }
        listener = OwnedFileDescriptor(taking: fd)
        // The socket file is created owner-only: bind(2) applies the umask.
        let oldMask = umask(0o177)
        let bound = unsafe withUnsafePointer(to: &address) {
            unsafe $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        let bindError = errno
        umask(oldMask)
        guard bound == 0 else { throw VMError(unsafe "control socket \(path): bind: \(String(cString: strerror(bindError)))") }
        guard listen(fd, 8) == 0 else {
            unsafe unlink(path)
            throw VMError(unsafe "control socket \(path): listen: \(String(cString: strerror(errno)))")
        }
        do {
            stopEvent = try EventFD()
        } catch {
            unsafe unlink(path)
            throw VMError("control socket \(path): \(error)")
        }
    }

    /// Starts serving on a thread.
    public func start() throws(VMError) {
        do {
            let serving = try HostThread.spawn(name: "control-api", role: .control) { [self] in self.serve() }
            thread.withLock { $0 = serving }
        } catch {
            throw VMError("control socket \(path): \(error)")
        }
    }

    /// Stops serving, closes every connection and removes the socket file.
    public func stop() {
        stopEvent.signal()
        thread.withLock { $0 }?.join()
        unsafe unlink(path)
    }

    private struct Client {
        let fd: OwnedFileDescriptor
        var buffer: [UInt8] = []
    }

    private func serve() {
        var clients: [Client] = []
        while true {
            var fds = [pollfd(fd: stopEvent.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0)]
            for c in clients { fds.append(pollfd(fd: c.fd.rawValue, events: Int16(POLLIN), revents: 0)) }
            let r = unsafe poll(&fds, nfds_t(fds.count), -1)
            if r < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[0].revents != 0 { return }
            var closed: Set<Int> = []
            for (i, f) in fds.enumerated().dropFirst(2) where f.revents != 0 {
                if !serviceClient(&clients[i - 2]) { closed.insert(i - 2) }
            }
            clients = clients.enumerated().filter { !closed.contains($0.offset) }.map(\.element)
            if fds[1].revents != 0 {
                let fd = accept(listener.rawValue, nil, nil)
                if fd >= 0 {
                    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                    let client = Client(fd: OwnedFileDescriptor(taking: fd))
                    if clients.count < Self.maxClients {
                        clients.append(client)
                    } else {
                        reply(.failure(ControlError(.busy, "too many connections")), to: client.fd.rawValue)
                    }
                }
            }
        }
    }

    /// Reads what the client sent and answers complete frames; returns false to close it.
    private func serviceClient(_ client: inout Client) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = unsafe chunk.withUnsafeMutableBytes { unsafe recv(client.fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n < 0 { return errno == EINTR || errno == EAGAIN }
        if n == 0 { return false }
        client.buffer.append(contentsOf: chunk[0..<n])
        while true {
            let payload: [UInt8]
            do {
                guard let p = try ControlFrame.take(from: &client.buffer) else { return true }
                payload = p
            } catch {
                reply(.failure(error), to: client.fd.rawValue)
                return false
            }
            let answer: ControlReply
            do {
                answer = handler(try ControlFrame.decode(ControlRequest.self, from: payload))
            } catch {
                answer = .failure(error)
            }
            guard reply(answer, to: client.fd.rawValue) else { return false }
        }
    }

    /// Sends `message` without blocking; returns false if the client cannot take it.
    @discardableResult
    private func reply(_ message: ControlReply, to fd: Int32) -> Bool {
        let encoded = try? ControlFrame.encode(message)
        guard let text = encoded ?? (try? ControlFrame.encode(ControlReply.failure(ControlError(.failed, "reply too large")))) else { return false }
        var done = 0
        while done < text.count {
            let n = unsafe text.withUnsafeBytes { unsafe send(fd, $0.baseAddress.map { unsafe $0 + done }, text.count - done, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            done += n
        }
        return true
    }
}
