import ControlProtocol
import Migration
import VMM

/// Seeds the harnesses build from values, for the targets whose inputs are encoded with
/// BinaryCoding (`skiff-fuzz` writes them with `SKIFF_FUZZ_SEEDS`; see fuzz/make-seeds.py).
public enum FuzzSeeds {
    /// Control API streams: a read pattern byte, then request frames.
    public static func controlRequests() -> [(name: String, bytes: [UInt8])] {
        let every: [ControlRequest] = [
            .status, .pause, .resume,
            .snapshot(SnapshotRequest(directory: "/srv/snapshots/a", diff: true, stopAfter: false)),
            .migrate(MigrationRequest(destination: .tcp(host: "10.0.0.2", port: 4444), bandwidthLimit: 1 << 30, copyDisks: true)),
            .migrate(MigrationRequest(destination: .unix(path: "/run/migrate.sock"))),
            .migrationStatus, .waitForMigration(seconds: 2.5), .cancelMigration, .setBalloon(targetMiB: 64), .balloonStatistics,
            .metrics, .powerButton,
            .setRateLimit(device: "disk0", limits: RateLimits(bandwidth: .rate(10 << 20, burst: 1 << 20), operations: .rate(1000))),
            .setRateLimit(device: "net0", limits: RateLimits(bandwidth: TokenBucket(size: 0), direction: .receive)),
            .stop,
        ]
        let refused: [ControlRequest] = [
            .snapshot(SnapshotRequest(directory: "")),
            .snapshot(SnapshotRequest(directory: "a\u{0}b")),
            .migrate(MigrationRequest(destination: .tcp(host: "h", port: 1), maxDowntimeMilliseconds: 0, timeoutSeconds: 0)),
            .waitForMigration(seconds: .nan), .waitForMigration(seconds: -1), .waitForMigration(seconds: .infinity),
            .setBalloon(targetMiB: .max),
            .setRateLimit(device: "", limits: RateLimits()),
            .setRateLimit(device: "disk0", limits: RateLimits(operations: TokenBucket(size: 5, refillMilliseconds: 0))),
        ]
        func frames(_ requests: [ControlRequest]) -> [UInt8] { requests.flatMap { (try? ControlFrame.encode($0)) ?? [] } }
        let all = frames(every)
        var badVersion = frames([.status])
        badVersion[3] = 2
        var oversized = frames([.metrics])
        oversized[6] = 0x20
        return [
            ("every-request", [0] + all),
            ("every-request-bytewise", [1] + all),
            ("every-request-pieces", [2] + all),
            ("every-request-refused-by-vm", [0xff] + all),
            ("refused-values", [3] + frames(refused)),
            ("bad-version-after-status", [0] + frames([.status]) + badVersion),
            ("oversized-frame", [0] + oversized),
            ("truncated-payload", [0] + Array(frames([.setBalloon(targetMiB: 1)]).dropLast(2)) + [0x53, 0x4b]),
        ]
    }

    /// Migration streams from snapshot state files (`snapshot-state` seeds: a mode byte, then a
    /// state file): hello, page batches, state, sync, complete, as a source sends them.
    public static func migrationStreams(fromStates states: [(name: String, bytes: [UInt8])]) -> [(name: String, bytes: [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        for (name, seed) in states {
            guard let state = try? SnapshotState(parsing: Array(seed.dropFirst()), path: name),
                  let hello = try? state.migrationHello(), let stateFrame = try? state.migrationStateFrame(),
                  let helloPayload = try? MigrationFrame.encode(hello) else { continue }
            func frame(_ kind: MigrationFrame.Kind, _ payload: [UInt8]) -> [UInt8] { MigrationFrame.header(kind, length: payload.count) + payload }
            var batch = PageBatch()
            batch.appendZero(0)
            let page = (0..<PageBatch.pageSize).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            unsafe page.withUnsafeBytes { unsafe batch.append(1, contents: $0) }
            batch.appendZero(hello.pageCount - 1)
            unsafe page.withUnsafeBytes { unsafe batch.append(256, contents: $0) }
            var zeros = PageBatch()
            for n in 2..<18 { zeros.appendZero(UInt64(n)) }
            let stream = frame(.hello, helloPayload) + frame(.pages, batch.serialized()) + frame(.sync, []) + frame(.pages, zeros.serialized())
                + frame(.state, stateFrame) + frame(.complete, (try? MigrationFrame.encode(MigrationComplete(pagesSent: 20, diskBytesSent: 0))) ?? [])
            seeds.append(("stream-\(name)", stream))
            if let checked = try? IncomingHello(hello, restore: RestoreOptions()), !checked.diskPaths.isEmpty {
                // The same VM with its disks copied: descriptors in the hello, chunks among the pages.
                var withDisks = hello
                withDisks.disks = checked.diskPaths.indices.map { DiskDescriptor(index: $0, size: 1 << 20, format: "raw", backingFile: nil, backingFormat: nil) }
                let data = DiskChunk(disk: 0, offset: 4096, length: 1024, data: (0..<1024).map { UInt8(truncatingIfNeeded: $0) })
                let zero = DiskChunk(disk: checked.diskPaths.count - 1, offset: 0, length: 512, data: nil)
                if let payload = try? MigrationFrame.encode(withDisks), let d = try? MigrationFrame.encode(data), let z = try? MigrationFrame.encode(zero) {
                    seeds.append(("disks-\(name)", frame(.hello, payload) + frame(.disk, d) + frame(.pages, batch.serialized()) + frame(.disk, z)
                                  + frame(.sync, []) + frame(.state, stateFrame) + frame(.complete, [])))
                }
            }
            if name == states.first?.name {
                let abort = (try? MigrationFrame.encode(MigrationAbort(reason: "source gave up"))) ?? []
                seeds.append(("aborted-\(name)", frame(.hello, helloPayload) + frame(.pages, zeros.serialized()) + frame(.abort, abort)))
            }
        }
        return seeds
    }
}
