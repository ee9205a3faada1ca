import Foundation
import Testing

/// Disk rate limits through the daemon: the spec's limit reaches the monitor and holds the
/// guest to it, and `PUT /vms/{name}/rate-limits` changes it while the VM runs. Measured from
/// the monitor's device counters as `GET /metrics` reports them.
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct RateLimitTests {
    /// `skiff_vm_device_write_bytes` of `vm`'s disk0 from `/metrics`.
    static func writtenBytes(_ d: Daemon, _ vm: String) throws -> Double {
        let metrics = try d.raw("GET", "/metrics")
        guard metrics.status == 200 else { throw HarnessError("GET /metrics: \(metrics.status)") }
        for line in metrics.body.split(separator: "\n") where line.hasPrefix("skiff_vm_device_write_bytes{")
            && line.contains("vm=\"\(vm)\"") && line.contains("device=\"disk0\"") {
            if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { return value }
        }
        throw HarnessError("no skiff_vm_device_write_bytes for \(vm)/disk0 in /metrics")
    }

    /// Bytes written a second over `seconds`.
    static func rate(_ d: Daemon, _ vm: String, over seconds: Double) throws -> Double {
        let (b0, t0) = (try writtenBytes(d, vm), Date())
        usleep(UInt32(seconds * 1_000_000))
        let (b1, t1) = (try writtenBytes(d, vm), Date())
        return (b1 - b0) / t1.timeIntervalSince(t0)
    }

    func setLimit(_ d: Daemon, _ json: String) throws {
        let r = try d.raw("PUT", "/vms/rl/rate-limits", body: Array(json.utf8), headers: ["Content-Type": "application/json"])
        #expect(r.status == 200, "\(r.body)")
    }

    @Test func aSpecLimitHoldsTheDiskAndTheAPIChangesIt() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        let disk = "\(d.dir)/disk.img"
        #expect(FileManager.default.createFile(atPath: disk, contents: nil))
        #expect(truncate(disk, 1 << 30) == 0)
        // 4 KiB writes back to back (a busy host that emulates guest instructions manages under
        // 100 KiB/s), limited to 32 KiB/s by the spec: 8 writes a second, so one write more or
        // less is 2.5 % of a 5 s window.
        let limit = 32_768.0
        try d.ok(["create", "-f", try d.spec("rl", guest: "virtio-blk.elf", extra: """
            cmdline: mode=seq count=100000 sectors=8
            disks: [{path: \(disk), format: raw, bandwidth: 32768}]

            """), "--start"])
        #expect(try eventually(60) { try d.ok(["logs", "rl"]).contains("blk seq=16") })
        // The bucket starts full (a second's worth): measure once that has gone.
        usleep(1_500_000)
        let limited = try Self.rate(d, "rl", over: 5)
        print("rate limit via skiffd: \(Int(limited / 1024)) KiB/s with bandwidth 32 KiB/s")
        #expect(abs(limited - limit) / limit < 0.1, "\(limited / 1024) KiB/s with a 32 KiB/s limit")

        // No limit: faster than the limit, or the limit showed nothing.
        try setLimit(d, #"{"device":"disk0","bandwidth":0}"#)
        usleep(300_000)
        let free = try Self.rate(d, "rl", over: 1.5)
        print("rate limit via skiffd: \(Int(free / 1024)) KiB/s without a limit")
        try #require(free > 1.3 * limit, "\(free / 1024) KiB/s without a limit")

        // 16 KiB a second, set while it runs.
        try setLimit(d, #"{"device":"disk0","bandwidth":16384}"#)
        usleep(1_500_000)
        let half = try Self.rate(d, "rl", over: 5)
        print("rate limit via skiffd: \(Int(half / 1024)) KiB/s with bandwidth 16 KiB/s")
        #expect(abs(half - limit / 2) / (limit / 2) < 0.1, "\(half / 1024) KiB/s with a 16 KiB/s limit")

        // A device the VM does not have is refused, saying so.
        let r = try d.raw("PUT", "/vms/rl/rate-limits", body: Array(#"{"device":"disk7","bandwidth":1}"#.utf8),
                          headers: ["Content-Type": "application/json"])
        #expect(r.status >= 400 && r.status < 500, "\(r.status) \(r.body)")
        #expect(!(try d.ok(["logs", "rl"])).contains("FAIL"))
    }
}
