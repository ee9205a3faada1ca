import Foundation

/// A minimal blocking WebSocket client for a VM's console over the daemon's unix socket
/// (RFC 6455: the upgrade, masked client frames, unmasked server frames, ping/pong, close).
/// One thread may receive while another sends: `receive` alone touches the read buffer, and
/// the socket takes concurrent send and recv.
public final class ConsoleWebSocket: @unchecked Sendable {
    private let fd: Int32
    private var buffer: [UInt8] = []

    /// Largest frame accepted from the daemon.
    static let maxFrame = 1 << 20

    /// Connects and upgrades `GET /vms/NAME/console[?write=true]`.
    public init(socketPath: String, vm: String, write: Bool) throws(DaemonClientError) {
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw DaemonClientError(unsafe "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(s)
            throw DaemonClientError("socket path \(socketPath) is too long")
        }
        unsafe withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { unsafe raw[i] = b }
        }
        let r = unsafe withUnsafePointer(to: &address) {
            unsafe $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else {
            let e = errno
            Glibc.close(s)
            throw DaemonClientError(unsafe "cannot connect to skiffd at \(socketPath): \(String(cString: strerror(e)))")
        }
        fd = s
        var key = [UInt8](repeating: 0, count: 16)
        for i in key.indices { key[i] = UInt8.random(in: 0...255) }
        let request = "GET /vms/\(vm)/console\(write ? "?write=true" : "") HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: \(Data(key).base64EncodedString())\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try sendAll(Array(request.utf8))
        // Read the response head.
        while true {
            if let end = find([13, 10, 13, 10]) {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                buffer.removeSubrange(0..<(end + 4))
                let statusLine = head.split(separator: "\r\n").first.map(String.init) ?? ""
                guard statusLine.contains(" 101 ") else {
                    let body = String(decoding: buffer, as: UTF8.self)
                    let message = (try? JSONDecoder().decode([String: String].self, from: Data(body.utf8)))?["message"]
                    Glibc.close(fd)
                    throw DaemonClientError(message ?? "console upgrade refused: \(statusLine)")
                }
                return
            }
            guard buffer.count < 65536, try fill() else {
                Glibc.close(fd)
                throw DaemonClientError("skiffd closed the connection during the console upgrade")
            }
        }
    }

    deinit { Glibc.close(fd) }

    public enum Frame: Equatable {
        case data([UInt8])
        case text(String)
        case closed
    }

    /// The next data frame (pings are answered here).
    public func receive() throws(DaemonClientError) -> Frame {
        while true {
            guard let (opcode, payload) = try takeFrame() else {
                guard try fill() else { return .closed }
                continue
            }
            switch opcode {
            case 0x1: return .text(String(decoding: payload, as: UTF8.self))
            case 0x0, 0x2: return .data(payload)
            case 0x8: return .closed
            case 0x9: try sendFrame(opcode: 0xA, payload)
            default: continue
            }
        }
    }

    /// Sends input bytes (a binary frame).
    public func send(_ bytes: [UInt8]) throws(DaemonClientError) { try sendFrame(opcode: 0x2, bytes) }

    /// Sends a close frame.
    public func close() { try? sendFrame(opcode: 0x8, [0x03, 0xE8]) }

    /// Shuts the connection down for reading and writing (wakes a blocked `receive`).
    public func shutdown() { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    private func sendFrame(opcode: UInt8, _ payload: [UInt8]) throws(DaemonClientError) {
        var frame: [UInt8] = [0x80 | opcode]
        let n = payload.count
        if n < 126 {
            frame.append(0x80 | UInt8(n))
        } else if n < 65536 {
            frame += [0x80 | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { frame.append(UInt8((UInt64(n) >> UInt64(shift)) & 0xFF)) }
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame += mask
        for (i, b) in payload.enumerated() { frame.append(b ^ mask[i & 3]) }
        try sendAll(frame)
    }

    private func takeFrame() throws(DaemonClientError) -> (UInt8, [UInt8])? {
        guard buffer.count >= 2 else { return nil }
        let opcode = buffer[0] & 0x0F
        let masked = buffer[1] & 0x80 != 0
        var length = Int(buffer[1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard buffer.count >= 4 else { return nil }
            length = Int(buffer[2]) << 8 | Int(buffer[3])
            offset = 4
        } else if length == 127 {
            guard buffer.count >= 10 else { return nil }
            var l: UInt64 = 0
            for i in 2..<10 { l = l << 8 | UInt64(buffer[i]) }
            guard l <= UInt64(Self.maxFrame) else { throw DaemonClientError("console frame of \(l) bytes is too large") }
            length = Int(l)
            offset = 10
        }
        var mask: [UInt8] = []
        if masked {
            guard buffer.count >= offset + 4 else { return nil }
            mask = Array(buffer[offset..<(offset + 4)])
            offset += 4
        }
        guard buffer.count >= offset + length else { return nil }
        var payload = Array(buffer[offset..<(offset + length)])
        if masked { for i in payload.indices { payload[i] ^= mask[i & 3] } }
        buffer.removeSubrange(0..<(offset + length))
        return (opcode, payload)
    }

    private func fill() throws(DaemonClientError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = unsafe chunk.withUnsafeMutableBytes { unsafe recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw DaemonClientError(unsafe "console connection: \(String(cString: strerror(errno)))") }
            if n == 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
    }

    private func sendAll(_ bytes: [UInt8]) throws(DaemonClientError) {
        var done = 0
        while done < bytes.count {
            let n = unsafe bytes.withUnsafeBytes { unsafe Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw DaemonClientError(unsafe "console connection: \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        for i in 0...(buffer.count - pattern.count) where Array(buffer[i..<(i + pattern.count)]) == pattern { return i }
        return nil
    }
}
