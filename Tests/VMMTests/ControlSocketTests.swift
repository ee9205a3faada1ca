#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing
import ControlProtocol
import Virtio
@testable import VMM

/// A VM stand-in that records what the control API asked of it.
final class FakeTarget: ControlTarget, @unchecked Sendable {
    let targets = Mutex<[UInt64]>([])
    let snapshots = Mutex<[SnapshotRequest]>([])
    let paused = Mutex(false)
    let limit: UInt64
    var balloon: VirtioBalloon.Status?

    init(limit: UInt64 = 16384, status: VirtioBalloon.Status? = nil) {
        self.limit = limit
        self.balloon = status
    }

    func status() -> VMStatus {
        VMStatus(state: paused.withLock { $0 } ? .paused : .running, vcpus: 2, memoryBytes: 64 << 20, uptimeSeconds: 1.5)
    }

    func pause() throws(VMError) {
        try paused.withLock { p throws(VMError) in
            guard !p else { throw VMError("the VM is already paused", kind: .invalidState) }
            p = true
        }
    }

    func resume() throws(VMError) {
        try paused.withLock { p throws(VMError) in
            guard p else { throw VMError("the VM is not paused", kind: .invalidState) }
            p = false
        }
    }

    func createSnapshot(_ request: SnapshotRequest) throws(VMError) -> SnapshotSummary {
        snapshots.withLock { $0.append(request) }
        return SnapshotSummary(directory: request.directory, diff: request.diff, pagesWritten: 3, memoryFileBytes: 64 << 20,
                               stateFileBytes: 1000, pausedMilliseconds: 2, resumed: !request.stopAfter)
    }

    func startMigration(_ request: MigrationRequest) throws(VMError) -> MigrationProgress {
        throw VMError("no network here", kind: .failed)
    }

    func migrationProgress() -> MigrationProgress { MigrationProgress(phase: .none) }

    func waitForMigration(seconds: Double) -> MigrationProgress { MigrationProgress(phase: .none) }

    func cancelMigration() throws(VMError) { throw VMError("no migration is in progress", kind: .invalidState) }

    func metrics() -> [(name: String, value: UInt64)] { [("assist.insn.clac", 7), ("exits.io", 42)] }

    let powerPresses = Mutex(0)
    func pressPowerButton() throws(VMError) { powerPresses.withLock { $0 += 1 } }
    let stops = Mutex(0)
    func stop() { stops.withLock { $0 += 1 } }
    let limits = Mutex<[(String, RateLimits)]>([])
    func setRateLimit(device: String, limits: RateLimits) throws(VMError) {
        guard device == "disk0" else { throw VMError("no device \(device)", kind: .invalidRequest) }
        self.limits.withLock { $0.append((device, limits)) }
    }

    func setBalloonTarget(pages: UInt64) throws(VMError) {
        guard pages <= limit else { throw VMError("balloon target \(pages) pages is larger than guest RAM (\(limit) pages)", kind: .invalidRequest) }
        targets.withLock { $0.append(pages) }
    }

    func balloonStatistics(freshWithin timeout: Double) -> VirtioBalloon.Status? { balloon }
}

/// The error a reply carries, if it is a failure.
func failure(_ reply: ControlReply) -> ControlError? {
    if case .failure(let e) = reply { return e }
    return nil
}

struct ControlCommandTests {
    @Test func balloonSetsTheTargetInPages() {
        let fake = FakeTarget()
        #expect(ControlCommands.handle(.setBalloon(targetMiB: 32), target: fake) == .done)
        #expect(ControlCommands.handle(.setBalloon(targetMiB: 0), target: fake) == .done)
        #expect(fake.targets.withLock { $0 } == [8192, 0])
    }

    @Test func targetsAboveRAMAndHugeNumbersAreRefused() {
        let fake = FakeTarget()
        #expect(failure(ControlCommands.handle(.setBalloon(targetMiB: 65), target: fake))
                == ControlError(.invalidRequest, "balloon target 16640 pages is larger than guest RAM (16384 pages)"))
        #expect(failure(ControlCommands.handle(.setBalloon(targetMiB: 9_999_999_999), target: fake))?.message.hasPrefix("balloon target 2559999999744 pages") == true)
        #expect(failure(ControlCommands.handle(.setBalloon(targetMiB: .max), target: fake))?.code == .invalidRequest)
        #expect(fake.targets.withLock { $0 }.isEmpty)
    }

    @Test func statisticsComeBackByName() throws {
        var stats = BalloonStatistics(parsing: [5, 0] + withUnsafeBytes(of: UInt64(64 << 20).littleEndian, Array.init))
        let total = try #require(stats[.totalMemory])  // unwrapped: see VirtioBalloonGuestTests
        #expect(total == 64 << 20)
        stats = BalloonStatistics(parsing: [5, 0] + withUnsafeBytes(of: UInt64(64 << 20).littleEndian, Array.init) + [4, 0, 1, 0, 0, 0, 0, 0, 0, 0])
        let status = VirtioBalloon.Status(targetPages: 512, actualPages: 256, statistics: stats, statisticsUpdates: 3,
                                          inflatedPages: 256, deflatedPages: 0, reportedPages: 7, rejected: 1)
        let reply = ControlCommands.handle(.balloonStatistics, target: FakeTarget(status: status))
        #expect(reply == .balloon(BalloonReport(targetPages: 512, actualPages: 256, inflatedPages: 256, deflatedPages: 0, reportedPages: 7,
                                                rejected: 1, statisticsUpdates: 3,
                                                statistics: [Metric(name: "free-memory", value: 1), Metric(name: "total-memory", value: 67108864)])))
        #expect(failure(ControlCommands.handle(.balloonStatistics, target: FakeTarget())) == ControlError(.unsupported, "the VM has no balloon device"))
    }

    @Test func metricsStatusPauseAndResume() {
        let fake = FakeTarget()
        #expect(ControlCommands.handle(.metrics, target: fake) == .metrics([Metric(name: "assist.insn.clac", value: 7), Metric(name: "exits.io", value: 42)]))
        #expect(ControlCommands.handle(.pause, target: fake) == .done)
        guard case .status(let s) = ControlCommands.handle(.status, target: fake) else {
            Issue.record("no status")
            return
        }
        #expect(s.state == .paused)
        #expect(failure(ControlCommands.handle(.pause, target: fake))?.code == .invalidState)
        #expect(ControlCommands.handle(.resume, target: fake) == .done)
        #expect(failure(ControlCommands.handle(.resume, target: fake)) == ControlError(.invalidState, "the VM is not paused"))
    }

    @Test func snapshotAndMigrationRequestsAreCheckedFirst() {
        let fake = FakeTarget()
        #expect(failure(ControlCommands.handle(.snapshot(SnapshotRequest(directory: "")), target: fake))?.code == .invalidRequest)
        #expect(failure(ControlCommands.handle(.snapshot(SnapshotRequest(directory: String(repeating: "a", count: 5000))), target: fake))?.code == .invalidRequest)
        #expect(failure(ControlCommands.handle(.snapshot(SnapshotRequest(directory: "/tmp/a\u{0}b")), target: fake))?.code == .invalidRequest)
        #expect(fake.snapshots.withLock { $0 }.isEmpty)
        guard case .snapshot(let summary) = ControlCommands.handle(.snapshot(SnapshotRequest(directory: "/tmp/s1", diff: true)), target: fake) else {
            Issue.record("no snapshot summary")
            return
        }
        #expect(summary.directory == "/tmp/s1" && summary.diff && summary.resumed)
        let endpoint = MigrationEndpoint.tcp(host: "127.0.0.1", port: 4444)
        #expect(failure(ControlCommands.handle(.migrate(MigrationRequest(destination: endpoint, maxDowntimeMilliseconds: 0)), target: fake))?.code == .invalidRequest)
        #expect(failure(ControlCommands.handle(.migrate(MigrationRequest(destination: endpoint)), target: fake)) == ControlError(.failed, "no network here"))
        #expect(failure(ControlCommands.handle(.cancelMigration, target: fake))?.code == .invalidState)
    }

    @Test(arguments: [("tcp://10.0.0.1:4444", "tcp://10.0.0.1:4444"), ("tcp://[::1]:80", "tcp://[::1]:80"), ("unix:/run/m.sock", "unix:/run/m.sock"),
                      ("tcp://host:0", nil), ("tcp://host", nil), ("udp://h:1", nil), ("tcp://:5", nil), ("unix:", nil), ("tcp://h:65536", nil)])
    func migrationEndpointsParse(_ text: String, _ expected: String?) {
        #expect(MigrationEndpoint(text)?.description == expected)
    }
}

/// Raw bytes to and from the control socket, for malformed-input tests.
final class RawSocket {
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

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    private var buffer: [UInt8] = []

    /// The next reply, or nil when the server closed the connection (or nothing came in 5 s).
    func reply() -> ControlReply? {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let payload = try? ControlFrame.take(from: &buffer) { return try? ControlFrame.decode(ControlReply.self, from: payload) }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            buffer += chunk[0..<n]
        }
    }

    /// Whether the server has closed the connection (reads end).
    func isClosed() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64)
        return chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } == 0
    }
}

struct ControlFrameTests {
    @Test func framesRoundTripAndSplitAnywhere() throws {
        let a = try ControlFrame.encode(ControlRequest.snapshot(SnapshotRequest(directory: "/x", diff: true, stopAfter: true)))
        let b = try ControlFrame.encode(ControlRequest.setBalloon(targetMiB: 7))
        let stream = a + b
        for cut in 0...stream.count {
            var buffer = Array(stream[0..<cut])
            var got: [ControlRequest] = []
            while let p = try ControlFrame.take(from: &buffer) { got.append(try ControlFrame.decode(ControlRequest.self, from: p)) }
            buffer += stream[cut...]
            while let p = try ControlFrame.take(from: &buffer) { got.append(try ControlFrame.decode(ControlRequest.self, from: p)) }
            #expect(got == [.snapshot(SnapshotRequest(directory: "/x", diff: true, stopAfter: true)), .setBalloon(targetMiB: 7)])
            #expect(buffer.isEmpty)
        }
    }

    @Test func badHeadersAreRefused() {
        var wrongMagic: [UInt8] = Array("GET / HTTP/1.1\r\n".utf8)
        #expect(throws: ControlError.self) { try ControlFrame.take(from: &wrongMagic) }
        var wrongVersion: [UInt8] = [0x53, 0x4b, 0x43, 9, 0, 0, 0, 0]
        #expect((try? ControlFrame.take(from: &wrongVersion)) == nil)
        do {
            _ = try ControlFrame.take(from: &wrongVersion)
        } catch {
            #expect(error.code == .protocolMismatch)
        }
        var huge: [UInt8] = [0x53, 0x4b, 0x43, ControlFrame.version, 0xff, 0xff, 0xff, 0x7f]
        #expect(throws: ControlError.self) { try ControlFrame.take(from: &huge) }
    }

    @Test func randomPayloadsNeverCrashTheDecoder() {
        var generator = SplitMix(seed: 0x5eed)
        let valid = (try? ControlFrame.encode(ControlRequest.migrate(MigrationRequest(destination: .tcp(host: "h", port: 1))))) ?? []
        var decoded = 0
        for _ in 0..<5000 {
            var payload = Array(valid.dropFirst(ControlFrame.headerSize))
            for _ in 0..<(1 + Int(generator.next() % 4)) where !payload.isEmpty {
                payload[Int(generator.next() % UInt64(payload.count))] = UInt8(truncatingIfNeeded: generator.next())
            }
            if (try? ControlFrame.decode(ControlRequest.self, from: payload)) != nil { decoded += 1 }
        }
        // Some mutations still decode (e.g. a changed port number): the decoder is not just refusing everything.
        #expect(decoded > 0 && decoded < 5000)
    }
}

/// A small seeded generator for reproducible tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

struct ControlSocketTests {
    func withSocket(_ body: (String, FakeTarget) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-api-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("api.sock").path
        let fake = FakeTarget()
        let server = try ControlSocket(path: path) { request in ControlCommands.handle(request, target: fake) }
        try server.start()
        defer { server.stop() }
        try body(path, fake)
    }

    @Test func requestsAreAnsweredInTurn() throws {
        try withSocket { path, fake in
            let c = try ControlProtocol.ControlClient(path: path)
            #expect(try c.send(.setBalloon(targetMiB: 16)) == .done)
            // Two requests in one write.
            let raw = try RawSocket(path: path)
            raw.send(try ControlFrame.encode(ControlRequest.setBalloon(targetMiB: 1)) + ControlFrame.encode(ControlRequest.metrics))
            #expect(raw.reply() == .done)
            #expect(raw.reply() == .metrics([Metric(name: "assist.insn.clac", value: 7), Metric(name: "exits.io", value: 42)]))
            #expect(fake.targets.withLock { $0 } == [4096, 256])
            // A failure is thrown by the client as the monitor's error.
            #expect(throws: ControlError(.invalidRequest, "balloon target 16640 pages is larger than guest RAM (16384 pages)")) {
                try c.send(.setBalloon(targetMiB: 65))
            }
            let attrs = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attrs[.posixPermissions] as? Int) == 0o600)
        }
    }

    @Test func aMalformedStreamClosesOnlyThatConnection() throws {
        try withSocket { path, _ in
            let bad = try RawSocket(path: path)
            let good = try ControlProtocol.ControlClient(path: path)
            bad.send(Array("balloon 32\n".utf8))
            guard case .failure(let e)? = bad.reply() else {
                Issue.record("no error reply")
                return
            }
            #expect(e.code == .protocolMismatch)
            #expect(bad.isClosed())
            let oversized = try RawSocket(path: path)
            oversized.send([0x53, 0x4b, 0x43, ControlFrame.version, 0, 0, 0x20, 0])
            #expect(failure(oversized.reply() ?? .done)?.code == .invalidRequest)
            let garbage = try RawSocket(path: path)
            garbage.send([0x53, 0x4b, 0x43, ControlFrame.version, 3, 0, 0, 0, 0xee, 0xee, 0xee])
            #expect(failure(garbage.reply() ?? .done)?.code == .invalidRequest)
            #expect(try good.send(.status) == .status(VMStatus(state: .running, vcpus: 2, memoryBytes: 64 << 20, uptimeSeconds: 1.5)))
        }
    }

    @Test func connectionsAreLimitedAndAClientThatNeverReadsIsDropped() throws {
        try withSocket { path, _ in
            var clients: [RawSocket] = []
            let metrics = try ControlFrame.encode(ControlRequest.metrics)
            for _ in 0..<ControlSocket.maxClients { clients.append(try RawSocket(path: path)) }
            for c in clients {
                c.send(metrics)
                #expect(c.reply() != nil)
            }
            let extra = try RawSocket(path: path)
            #expect(failure(extra.reply() ?? .done)?.code == .busy)
            // One client floods requests and never reads its replies: the server drops it
            // instead of buffering, and the others are still served.
            let flooder = clients[0]
            for _ in 0..<20_000 { flooder.send(metrics) }
            clients[1].send(try ControlFrame.encode(ControlRequest.setBalloon(targetMiB: 2)))
            #expect(clients[1].reply() == .done)
            clients.removeFirst()
            let again = try ControlProtocol.ControlClient(path: path)
            #expect(try again.send(.pause) == .done)
        }
    }

    @Test func anExistingPathOrAnOverlongPathIsRefused() throws {
        let existing = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-api-exists-\(UUID().uuidString.prefix(8))")
        try Data().write(to: existing)
        defer { try? FileManager.default.removeItem(at: existing) }
        #expect(throws: VMError.self) { try ControlSocket(path: existing.path) { _ in .done } }
        #expect(throws: VMError.self) { try ControlSocket(path: "/tmp/" + String(repeating: "s", count: 200)) { _ in .done } }
        #expect(throws: VMError.self) { try ControlSocket(path: "") { _ in .done } }
    }
}
