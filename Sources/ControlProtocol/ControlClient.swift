#if canImport(Glibc)
import Glibc
#endif

/// A blocking client of one monitor's control socket: one request, one reply, in turn.
public final class ControlClient {
    public let path: String
    private let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to the socket at `path`.
    public init(path: String) throws(ControlError) {
        self.path = path
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { throw ControlError(.invalidRequest, "socket path '\(path)' is too long") }
        unsafe withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { unsafe raw[i] = b }
        }
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw ControlError(.transport, unsafe "socket: \(String(cString: strerror(errno)))") }
        let r = unsafe withUnsafePointer(to: &address) {
            unsafe $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else {
            let e = errno
            close(s)
            throw ControlError(.transport, unsafe "cannot connect to \(path): \(String(cString: strerror(e)))")
        }
        fd = s
    }

    deinit { close(fd) }

    /// Sends `request` and waits up to `timeout` seconds for the reply. A `.failure` reply
    /// is thrown as its `ControlError`.
    @discardableResult
    public func send(_ request: ControlRequest, timeout: Double = 30) throws(ControlError) -> ControlReply {
        let frame = try ControlFrame.encode(request)
        var done = 0
        while done < frame.count {
            let n = unsafe frame.withUnsafeBytes { unsafe Glibc.send(fd, $0.baseAddress.map { unsafe $0 + done }, frame.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ControlError(.transport, unsafe "cannot send to \(path): \(String(cString: strerror(errno)))")
            }
            done += n
        }
        let deadline = Self.now() + timeout
        while true {
            if let payload = try ControlFrame.take(from: &buffer) {
                let reply = try ControlFrame.decode(ControlReply.self, from: payload)
                if case .failure(let error) = reply { throw error }
                return reply
            }
            let left = deadline - Self.now()
            guard left > 0 else { throw ControlError(.transport, "no reply from \(path) within \(Int(timeout)) s") }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = unsafe poll(&p, 1, Int32(min(left, 1) * 1000) + 1)
            if r < 0 && errno != EINTR { throw ControlError(.transport, unsafe "poll: \(String(cString: strerror(errno)))") }
            guard r > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = unsafe chunk.withUnsafeMutableBytes { unsafe recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw ControlError(.transport, unsafe "cannot read from \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw ControlError(.transport, "\(path) closed the connection") }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    private static func now() -> Double {
        var ts = timespec()
        unsafe clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
