import ControlProtocol
import Virtio
import VMM

/// The control API as the monitor's control server reads it: the bytes a client sends, cut
/// into frames by `ControlFrame.take` as they arrive in pieces, each payload decoded as a
/// `ControlRequest` and answered by `ControlCommands.handle` on a VM stand-in that records
/// what reaches it.
///
/// Input: a byte that picks how the stream is cut into reads (and which requests the VM
/// stand-in refuses), then the stream.
///
/// Properties: frames come out the same however the stream is cut; a bad header is refused
/// with `protocolMismatch` or `invalidRequest`; an accepted request encodes and decodes back
/// to the same encoding; every value `handle` passes on is one it promises to have checked
/// (snapshot directories, migration downtime and timeout, wait times, balloon sizes, device
/// names and token buckets); the reply answers the request's kind and survives its frame.
enum ControlRequestHarness {
    static func run(_ data: [UInt8]) throws(FuzzInvariantViolation) {
        var input = FuzzInput(data)
        let pattern = input.u8()
        let stream = input.rest()

        // All at once, as a reference.
        var whole = stream
        var reference: [[UInt8]] = []
        var referenceError: ControlError?
        do {
            while let payload = try ControlFrame.take(from: &whole) { reference.append(payload) }
        } catch {
            referenceError = error
        }

        // In pieces, as recv(2) may deliver them.
        var buffer: [UInt8] = []
        var payloads: [[UInt8]] = []
        var refusal: ControlError?
        var position = 0
        var step = 0
        reading: while position < stream.count {
            let size = pieceSize(pattern, step)
            step += 1
            buffer += stream[position..<min(stream.count, position + size)]
            position = min(stream.count, position + size)
            while true {
                do {
                    guard let payload = try ControlFrame.take(from: &buffer) else { break }
                    payloads.append(payload)
                } catch {
                    refusal = error
                    break reading
                }
            }
        }
        try require(payloads == reference, "\(payloads.count) frames in pieces, \(reference.count) at once")
        try require(refusal?.code == referenceError?.code, "refused in pieces with \(String(describing: refusal)), at once with \(String(describing: referenceError))")
        if let refusal {
            try require(refusal.code == .protocolMismatch || refusal.code == .invalidRequest, "a bad header refused with \(refusal.code)")
        }

        let target = ControlTargetStandIn(refusing: pattern)
        for payload in payloads {
            let request: ControlRequest
            do {
                request = try ControlFrame.decode(ControlRequest.self, from: payload)
            } catch {
                try require(error.code == .invalidRequest, "a malformed request refused with \(error.code)")
                continue
            }
            try checkRoundTrip(request)
            target.request = request
            let reply = ControlCommands.handle(request, target: target)
            if let violation = target.violation { throw FuzzInvariantViolation(violation) }
            try checkReply(reply, answers: request)
        }
    }

    /// Read sizes: one byte at a time, a header's worth, odd sizes, or large reads.
    static func pieceSize(_ pattern: UInt8, _ step: Int) -> Int {
        switch pattern & 3 {
        case 0: return 65536
        case 1: return 1
        case 2: return 1 + (step * 7 + Int(pattern >> 2)) % 13
        default: return step % 2 == 0 ? ControlFrame.headerSize : 1 + Int(pattern >> 2)
        }
    }

    /// The request's frame decodes to a request with the same encoding (NaN-safe, unlike ==).
    static func checkRoundTrip(_ request: ControlRequest) throws(FuzzInvariantViolation) {
        do {
            var frame = try ControlFrame.encode(request)
            guard let payload = try ControlFrame.take(from: &frame), frame.isEmpty else {
                throw FuzzInvariantViolation("a request's own frame is not one whole frame")
            }
            let again = try ControlFrame.decode(ControlRequest.self, from: payload)
            let (first, second) = (try ControlFrame.encode(request), try ControlFrame.encode(again))
            try require(first == second, "\(request.name) request decodes back different")
        } catch let violation as FuzzInvariantViolation {
            throw violation
        } catch {
            throw FuzzInvariantViolation("an accepted \(request.name) request does not survive its frame: \(error)")
        }
    }

    static func checkReply(_ reply: ControlReply, answers request: ControlRequest) throws(FuzzInvariantViolation) {
        let fits: Bool
        switch (request, reply) {
        case (_, .failure): fits = true
        case (.status, .status), (.snapshot, .snapshot), (.migrate, .migration), (.migrationStatus, .migration),
             (.waitForMigration, .migration), (.balloonStatistics, .balloon), (.metrics, .metrics): fits = true
        case (.pause, .done), (.resume, .done), (.cancelMigration, .done), (.setBalloon, .done), (.powerButton, .done),
             (.stop, .done), (.setRateLimit, .done): fits = true
        default: fits = false
        }
        try require(fits, "\(request.name) answered with \(reply)")
        do {
            var frame = try ControlFrame.encode(reply)
            guard let payload = try ControlFrame.take(from: &frame) else { throw FuzzInvariantViolation("a reply's frame is incomplete") }
            let again = try ControlFrame.decode(ControlReply.self, from: payload)
            let (first, second) = (try ControlFrame.encode(reply), try ControlFrame.encode(again))
            try require(first == second, "the reply to \(request.name) decodes back different")
        } catch let violation as FuzzInvariantViolation {
            throw violation
        } catch {
            throw FuzzInvariantViolation("the reply to \(request.name) does not survive its frame: \(error)")
        }
    }
}

/// A VM for `ControlCommands.handle`: checks that every value reaching it is one `handle`
/// validated, and refuses some calls (picked by the input) as a VM in the wrong state would.
final class ControlTargetStandIn: ControlTarget, @unchecked Sendable {
    var request: ControlRequest = .status
    var violation: String?
    private let refusing: UInt8

    init(refusing: UInt8) { self.refusing = refusing }

    private func refuse(_ bit: UInt8) throws(VMError) {
        if refusing & (1 << (bit % 8)) != 0 { throw VMError("refused by the VM", kind: bit % 2 == 0 ? .invalidState : .unsupported) }
    }

    private func expect(_ ok: Bool, _ what: String) {
        if !ok && violation == nil { violation = "ControlCommands passed on \(what)" }
    }

    func status() -> VMStatus { VMStatus(state: .running, vcpus: 1, memoryBytes: 1 << 27, uptimeSeconds: 1) }
    func pause() throws(VMError) { try refuse(2) }
    func resume() throws(VMError) { try refuse(3) }

    func createSnapshot(_ r: SnapshotRequest) throws(VMError) -> SnapshotSummary {
        expect(!r.directory.isEmpty && r.directory.utf8.count <= SnapshotRequest.maxPathLength && !r.directory.utf8.contains(0),
               "snapshot directory of \(r.directory.utf8.count) bytes")
        try refuse(4)
        return SnapshotSummary(directory: r.directory, diff: r.diff, pagesWritten: 1, memoryFileBytes: 4096, stateFileBytes: 100,
                               pausedMilliseconds: 1, resumed: !r.stopAfter)
    }

    func startMigration(_ r: MigrationRequest) throws(VMError) -> MigrationProgress {
        expect((1...600_000).contains(r.maxDowntimeMilliseconds) && r.timeoutSeconds >= 1,
               "a migration with \(r.maxDowntimeMilliseconds) ms downtime and a \(r.timeoutSeconds) s timeout")
        try refuse(5)
        return MigrationProgress(phase: .connecting, destination: r.destination.description)
    }

    func migrationProgress() -> MigrationProgress { MigrationProgress(phase: .none) }

    func waitForMigration(seconds: Double) -> MigrationProgress {
        expect(seconds.isFinite && seconds >= 0 && seconds <= 10, "a wait of \(seconds) s")
        return MigrationProgress(phase: .none)
    }

    func cancelMigration() throws(VMError) { try refuse(6) }

    func setBalloonTarget(pages: UInt64) throws(VMError) {
        if case .setBalloon(let mib) = request {
            expect(pages == mib &* 256 && pages / 256 == mib, "\(pages) balloon pages for \(mib) MiB")
        } else {
            expect(false, "a balloon target for a \(request.name) request")
        }
        try refuse(7)
    }

    func balloonStatistics(freshWithin timeout: Double) -> VirtioBalloon.Status? {
        guard refusing & 1 == 0 else { return nil }
        return VirtioBalloon.Status(targetPages: 0, actualPages: 0, statistics: nil, statisticsUpdates: 0, inflatedPages: 0, deflatedPages: 0,
                                    reportedPages: 0, rejected: 0)
    }

    func metrics() -> [(name: String, value: UInt64)] { [("exits.io", 1), ("exits.mmio", 2)] }
    func pressPowerButton() throws(VMError) { try refuse(0) }
    func stop() {}

    func setRateLimit(device: String, limits: RateLimits) throws(VMError) {
        expect(!device.isEmpty && device.utf8.count <= 16, "device name of \(device.utf8.count) bytes")
        for bucket in [limits.bandwidth, limits.operations].compactMap({ $0 }) {
            expect(bucket.size == 0 || (1...3_600_000).contains(bucket.refillMilliseconds), "a bucket refilled every \(bucket.refillMilliseconds) ms")
        }
        try refuse(1)
    }
}
