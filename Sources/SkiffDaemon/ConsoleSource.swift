import Foundation
import Synchronization

/// Where a console client's bytes come from and go to: the monitor's console socket (recent
/// output, then live output; input goes to the guest), or, with a monitor that has no console
/// socket, the console log followed as it grows (output only).
final class ConsoleSource: Sendable {
    private enum Kind { case socket(Int32), log(String) }
    private let kind: Kind
    private let stopped = Atomic<Bool>(false)
    private let stopPipe: (Int32, Int32)

    /// Most scrollback replayed from a log.
    static let scrollback = 64 << 10

    var acceptsInput: Bool {
        if case .socket = kind { return true }
        return false
    }

    init(socketPath: String?, logPath: String) throws(DaemonError) {
        var fds: [Int32] = [0, 0]
        guard unsafe pipe(&fds) == 0 else { throw DaemonError(.internal, unsafe "pipe: \(String(cString: strerror(errno)))") }
        stopPipe = (fds[0], fds[1])
        if let socketPath {
            let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(socketPath.utf8)
            unsafe withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, b) in bytes.prefix(raw.count - 1).enumerated() { unsafe raw[i] = b }
            }
            let r = unsafe withUnsafePointer(to: &address) {
                unsafe $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { unsafe connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard s >= 0, r == 0 else {
                let e = errno
                if s >= 0 { close(s) }
                close(fds[0])
                close(fds[1])
                throw DaemonError(.monitorFailed, unsafe "cannot connect to the console socket \(socketPath): \(String(cString: strerror(e)))")
            }
            kind = .socket(s)
        } else {
            kind = .log(logPath)
        }
    }

    deinit {
        if case .socket(let s) = kind { close(s) }
        close(stopPipe.0)
        close(stopPipe.1)
    }

    /// Ends `read` (from any thread).
    func stop() {
        stopped.store(true, ordering: .releasing)
        var b: UInt8 = 1
        _ = unsafe write(stopPipe.1, &b, 1)
    }

    /// Sends input to the guest's console.
    func send(_ bytes: [UInt8]) {
        guard case .socket(let s) = kind else { return }
        var done = 0
        while done < bytes.count {
            let n = unsafe bytes.withUnsafeBytes { unsafe Glibc.send(s, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }

    /// Calls `deliver` with output chunks until `stop()` or the end of the source.
    func pump(_ deliver: ([UInt8]) -> Void) {
        switch kind {
        case .socket(let s):
            var buffer = [UInt8](repeating: 0, count: 16384)
            while !stopped.load(ordering: .acquiring) {
                var fds = [pollfd(fd: s, events: Int16(POLLIN), revents: 0), pollfd(fd: stopPipe.0, events: Int16(POLLIN), revents: 0)]
                if unsafe poll(&fds, 2, -1) < 0 { if errno == EINTR { continue } else { return } }
                if fds[1].revents != 0 { return }
                let n = unsafe buffer.withUnsafeMutableBytes { unsafe recv(s, $0.baseAddress, $0.count, 0) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 { return }
                deliver(Array(buffer[0..<n]))
            }
        case .log(let path):
            // Recent output, then what is appended (a rotation to PATH.1 restarts at 0).
            var position = fileSize(path)
            let old = position < UInt64(Self.scrollback) ? readRange(path + ".1", fromEnd: UInt64(Self.scrollback) - position) : []
            let recent = readRange(path, from: position > UInt64(Self.scrollback) ? position - UInt64(Self.scrollback) : 0, to: position)
            if !(old + recent).isEmpty { deliver(old + recent) }
            while !stopped.load(ordering: .acquiring) {
                var fds = [pollfd(fd: stopPipe.0, events: Int16(POLLIN), revents: 0)]
                _ = unsafe poll(&fds, 1, 100)
                if fds[0].revents != 0 { return }
                let size = fileSize(path)
                if size < position { position = 0 }
                if size > position {
                    let chunk = readRange(path, from: position, to: min(size, position + 1 << 20))
                    position += UInt64(chunk.count)
                    if !chunk.isEmpty { deliver(chunk) }
                }
            }
        }
    }

    private func readRange(_ path: String, from start: UInt64, to end: UInt64) -> [UInt8] {
        guard end > start, let h = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? h.close() }
        try? h.seek(toOffset: start)
        return [UInt8]((try? h.read(upToCount: Int(end - start))) ?? Data())
    }

    private func readRange(_ path: String, fromEnd count: UInt64) -> [UInt8] {
        let size = fileSize(path)
        return readRange(path, from: size > count ? size - count : 0, to: size)
    }
}
