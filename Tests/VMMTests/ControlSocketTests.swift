#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing
import Virtio
@testable import VMM

/// A balloon stand-in that records targets.
final class FakeBalloon: BalloonControl, @unchecked Sendable {
    let targets = Mutex<[UInt64]>([])
    let limit: UInt64
    var status: VirtioBalloon.Status?

    init(limit: UInt64 = 16384, status: VirtioBalloon.Status? = nil) {
        self.limit = limit
        self.status = status
    }

    func metrics() -> [(name: String, value: UInt64)] { [("assist.insn.clac", 7), ("exits.io", 42)] }

    func setBalloonTarget(pages: UInt64) throws(VMError) {
        guard pages <= limit else { throw VMError("balloon target \(pages) pages is larger than guest RAM (\(limit) pages)") }
        targets.withLock { $0.append(pages) }
    }

    func balloonStatistics(freshWithin timeout: Double) -> VirtioBalloon.Status? { status }
}

/// A client of the control socket.
final class ControlClient {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let r = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard r == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Bytes received past the last reply (a read may carry the start of the next reply).
    private var pending = ""

    /// Reads until a line `ok` or `error: …` (or end of stream / timeout) and returns that reply's
    /// lines; what follows it stays for the next call.
    func reply() -> [String] {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var lines: [String] = []
            var consumed = pending.startIndex
            while let newline = pending[consumed...].firstIndex(of: "\n") {
                let line = String(pending[consumed..<newline])
                lines.append(line)
                consumed = pending.index(after: newline)
                if line == "ok" || line.hasPrefix("error:") {
                    pending = String(pending[consumed...])
                    return lines
                }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 {
                defer { pending = "" }
                return pending.split(separator: "\n").map(String.init)
            }
            pending += String(decoding: buffer[0..<n], as: UTF8.self)
        }
    }

    func request(_ line: String) -> [String] {
        send(line + "\n")
        return reply()
    }
}

struct ControlCommandTests {
    @Test func balloonSetsTheTargetInPages() {
        let fake = FakeBalloon()
        #expect(ControlCommands.handle("balloon 32", target: fake) == ["target-mib 32", "ok"])
        #expect(ControlCommands.handle("  balloon\t0 ", target: fake) == ["target-mib 0", "ok"])
        #expect(fake.targets.withLock { $0 } == [8192, 0])
    }

    @Test(arguments: ["balloon", "balloon -1", "balloon 1.5", "balloon 0x10", "balloon 12345678901", "balloon 1 2", "balloon ３"])
    func malformedBalloonRequestsAreRefused(_ line: String) {
        let fake = FakeBalloon()
        let reply = ControlCommands.handle(line, target: fake)
        #expect(reply == ["error: usage: balloon <MiB> (a whole number of MiB)"])
        #expect(fake.targets.withLock { $0 }.isEmpty)
    }

    @Test func targetsAboveRAMAndHugeNumbersAreRefused() {
        let fake = FakeBalloon()
        #expect(ControlCommands.handle("balloon 65", target: fake) == ["error: balloon target 16640 pages is larger than guest RAM (16384 pages)"])
        #expect(ControlCommands.handle("balloon 9999999999", target: fake).first?.hasPrefix("error: balloon target 2559999999744 pages") == true)
        #expect(fake.targets.withLock { $0 }.isEmpty)
    }

    @Test func statisticsArePrintedOnePerLine() {
        var stats = BalloonStatistics(parsing: [5, 0] + withUnsafeBytes(of: UInt64(64 << 20).littleEndian, Array.init))
        #expect(stats[.totalMemory] == 64 << 20)
        stats = BalloonStatistics(parsing: [5, 0] + withUnsafeBytes(of: UInt64(64 << 20).littleEndian, Array.init) + [4, 0, 1, 0, 0, 0, 0, 0, 0, 0])
        let status = VirtioBalloon.Status(targetPages: 512, actualPages: 256, statistics: stats, statisticsUpdates: 3,
                                          inflatedPages: 256, deflatedPages: 0, reportedPages: 7, rejected: 1)
        let reply = ControlCommands.handle("balloon-stats", target: FakeBalloon(status: status))
        #expect(reply == ["target-pages 512", "actual-pages 256", "target-mib 2", "actual-mib 1", "inflated-pages 256", "deflated-pages 0",
                          "reported-pages 7", "rejected 1", "statistics-updates 3", "free-memory 1", "total-memory 67108864", "ok"])
        #expect(ControlCommands.handle("balloon-stats", target: FakeBalloon()) == ["error: the VM has no balloon device (start it with --balloon)"])
        #expect(ControlCommands.handle("balloon-stats now", target: FakeBalloon()) == ["error: balloon-stats takes no arguments"])
    }

    @Test func metricsArePrintedOnePerLine() {
        #expect(ControlCommands.handle("metrics", target: FakeBalloon()) == ["assist.insn.clac 7", "exits.io 42", "ok"])
        #expect(ControlCommands.handle("metrics now", target: FakeBalloon()) == ["error: metrics takes no arguments"])
    }

    @Test func unknownAndEmptyRequestsGetAnError() {
        #expect(ControlCommands.handle("", target: FakeBalloon()) == ["error: empty request; commands: balloon <MiB>, balloon-stats, metrics, help"])
        #expect(ControlCommands.handle("reboot", target: FakeBalloon()) == ["error: unknown command 'reboot'; commands: balloon <MiB>, balloon-stats, metrics, help"])
        #expect(ControlCommands.handle("help", target: FakeBalloon()) == ["commands: balloon <MiB>, balloon-stats, metrics, help", "ok"])
    }
}

struct ControlSocketTests {
    func withSocket(_ body: (String, FakeBalloon) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-api-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("api.sock").path
        let fake = FakeBalloon()
        let server = try ControlSocket(path: path) { line in ControlCommands.handle(line, target: fake) }
        try server.start()
        defer { server.stop() }
        try body(path, fake)
    }

    @Test func requestsAreAnsweredLineByLine() throws {
        try withSocket { path, fake in
            let c = try ControlClient(path: path)
            #expect(c.request("balloon 16") == ["target-mib 16", "ok"])
            // Two requests in one write, CR LF line ends.
            c.send("balloon 1\r\nbogus\n")
            #expect(c.reply() == ["target-mib 1", "ok"])
            #expect(c.reply() == ["error: unknown command 'bogus'; commands: balloon <MiB>, balloon-stats, metrics, help"])
            #expect(fake.targets.withLock { $0 } == [4096, 256])
            let attrs = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attrs[.posixPermissions] as? Int) == 0o600)
        }
    }

    @Test func anOverlongRequestClosesOnlyThatConnection() throws {
        try withSocket { path, _ in
            let bad = try ControlClient(path: path)
            let good = try ControlClient(path: path)
            bad.send(String(repeating: "x", count: 10_000))
            #expect(bad.reply() == ["error: request longer than 256 bytes"])
            #expect(good.request("help").last == "ok")
        }
    }

    @Test func connectionsAreLimitedAndAClientThatNeverReadsIsDropped() throws {
        try withSocket { path, _ in
            var clients: [ControlClient] = []
            for _ in 0..<ControlSocket.maxClients { clients.append(try ControlClient(path: path)) }
            for c in clients { #expect(c.request("help").last == "ok") }
            let extra = try ControlClient(path: path)
            #expect(extra.reply() == ["error: too many connections"])
            // One client floods requests and never reads its replies: the server drops it
            // instead of buffering, and the others are still served.
            let flooder = clients[0]
            for _ in 0..<20_000 { flooder.send("help\n") }
            #expect(clients[1].request("balloon 2") == ["target-mib 2", "ok"])
            clients.removeFirst()
            let again = try ControlClient(path: path)
            #expect(again.request("help").last == "ok")
        }
    }

    @Test func anExistingPathOrAnOverlongPathIsRefused() throws {
        let existing = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-api-exists-\(UUID().uuidString.prefix(8))")
        try Data().write(to: existing)
        defer { try? FileManager.default.removeItem(at: existing) }
        #expect(throws: VMError.self) { try ControlSocket(path: existing.path) { _ in [] } }
        #expect(throws: VMError.self) { try ControlSocket(path: "/tmp/" + String(repeating: "s", count: 200)) { _ in [] } }
        #expect(throws: VMError.self) { try ControlSocket(path: "") { _ in [] } }
    }
}
