import Foundation

/// A blocking AF_UNIX stream socket with poll-based timeouts, for host-side test peers.
final class UnixStream: @unchecked Sendable {
    let fd: Int32

    private init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    private static func address(_ path: String) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in path.utf8.prefix(p.count - 1).enumerated() { p[i] = b }
        }
        return addr
    }

    /// Connects to `path`; nil if nobody listens there.
    static func connect(_ path: String) -> UnixStream? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = address(path)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else {
            close(fd)
            return nil
        }
        return UnixStream(fd: fd)
    }

    /// A listening socket at `path`.
    static func listen(_ path: String) throws -> UnixStream {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = address(path)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, r == 0, Glibc.listen(fd, 8) == 0 else {
            if fd >= 0 { close(fd) }
            throw POSIXError(.EADDRINUSE)
        }
        return UnixStream(fd: fd)
    }

    private func ready(_ timeout: Double) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, Int32(max(0, timeout) * 1000)) == 1
    }

    func accept(timeout: Double) -> UnixStream? {
        guard ready(timeout) else { return nil }
        let c = Glibc.accept(fd, nil, nil)
        return c >= 0 ? UnixStream(fd: c) : nil
    }

    func write(_ s: String) {
        _ = Array(s.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until `stop` says the bytes so far are complete, end of stream, or the timeout.
    func read(timeout: Double, until stop: ([UInt8]) -> Bool) -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stop(out), ready(deadline.timeIntervalSinceNow) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    func readString(timeout: Double, until stop: @escaping (String) -> Bool) -> String {
        String(decoding: read(timeout: timeout) { stop(String(decoding: $0, as: UTF8.self)) }, as: UTF8.self)
    }

    /// Reads to end of stream; true if it came within the timeout.
    func waitForEOF(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 256)
        while ready(deadline.timeIntervalSinceNow) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return true }
        }
        return false
    }
}
