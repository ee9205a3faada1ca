import Foundation
import Testing

/// Automatic ballooning on real guests: under memory pressure the daemon inflates the balloon
/// of the lowest QoS class first, and the guest gives the pages up.
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct BalloonPolicyTests {
    @Test func pressureInflatesTheLowestClassFirst() throws {
        // A pressure threshold below zero: every policy round counts as under pressure, so the
        // policy acts on this host's real PSI reading without having to exhaust its memory.
        let config = "/tmp/skd-policy-\(getpid()).json"
        try #"{"pressureHigh": -1, "pressureLow": -2, "policyInterval": 0.5}"#.write(toFile: config, atomically: true, encoding: .utf8)
        defer { unlink(config) }
        let d = try Daemon(extraArguments: ["--config", config], autoBalloon: true)
        defer { d.tearDown() }
        // Each guest touches 16 MiB and reports the rest of its 64 MiB above 16 MiB as free (32 MiB).
        try d.ok(["create", "-f", try d.spec("lo", guest: "virtio-balloon.elf", extra: "qos: {class: low}\n"), "--start"])
        try d.ok(["create", "-f", try d.spec("hi", guest: "virtio-balloon.elf", extra: "qos: {class: high}\n"), "--start"])
        let inflated = try eventually(60) { try d.ok(["logs", "lo"]).contains("inflated") }
        #expect(inflated, "\((try? d.ok(["logs", "lo"])) ?? "")")
        let reclaims = try d.ok(["events"]).split(separator: "\n").filter { $0.contains("balloon-reclaim") }
        let first = try #require(reclaims.first, "no balloon-reclaim event")
        #expect(first.contains("balloon of lo"), "\(first)")
        // The balloon follows: the daemon's reading of it says what the guest gave.
        let balloon = try d.raw("GET", "/vms/lo/balloon")
        #expect(balloon.status == 200)
        let object = try JSONSerialization.jsonObject(with: Data(balloon.body.utf8)) as? [String: Any]
        let target = try #require(object?["targetMiB"] as? Int)
        #expect(target >= 4 && target <= 48, "target \(target) MiB of 64 (at most 75 %)")
        // The high-class VM gives nothing while the low one still has room under its cap.
        let hiReclaims = reclaims.filter { $0.contains("balloon of hi") }
        let loReclaims = reclaims.filter { $0.contains("balloon of lo") }
        if let firstHi = hiReclaims.first {
            #expect(loReclaims.contains { $0.contains("inflated to 48 MiB") }, "hi reclaimed before lo reached its cap: \(firstHi)")
        }
        #expect(!(try d.ok(["logs", "lo"])).contains("FAIL"))
    }
}

/// Giving back, and what the policy took surviving a daemon killed -9: the daemon reads memory
/// pressure from a file the test writes (`pressureFile`), so the test decides when the host is
/// under pressure. virtio-balloon.elf inflates as the target grows and ends with PASS once the
/// balloon is deflated back to 0 (its own target: the spec sets none).
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct BalloonGiveBackTests {
    /// PSI text with `some avg10` = `percent`, written atomically.
    static func writePressure(_ path: String, _ percent: Double) throws {
        let text = String(format: "some avg10=%.2f avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", percent)
        try text.write(toFile: path + ".tmp", atomically: false, encoding: .utf8)
        guard rename(path + ".tmp", path) == 0 else { throw HarnessError("rename \(path): \(String(cString: strerror(errno)))") }
    }

    static func balloon(_ d: Daemon, _ name: String) throws -> [String: Any] {
        let r = try d.raw("GET", "/vms/\(name)/balloon")
        guard r.status == 200, let object = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any] else {
            throw HarnessError("GET balloon: \(r.status) \(r.body)")
        }
        return object
    }

    @Test func takenMemoryOutlivesTheDaemonAndIsGivenBack() throws {
        let psi = "/tmp/skd-psi-\(getpid()).txt"
        let config = "/tmp/skd-psi-\(getpid()).json"
        defer { unlink(psi); unlink(config) }
        try Self.writePressure(psi, 50)
        try #"{"pressureHigh": 10, "pressureLow": 1, "policyInterval": 0.5, "pressureFile": "\#(psi)"}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let d = try Daemon(extraArguments: ["--config", config], autoBalloon: true)
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("bal", guest: "virtio-balloon.elf"), "--start"])
        let host = try JSONSerialization.jsonObject(with: Data(try d.ok(["host", "--output", "json"]).utf8)) as? [String: Any]
        #expect(host?["memoryPressureSome10"] as? Double == 50, "the daemon reads the pressure file: \(String(describing: host))")

        // Under pressure the policy inflates the balloon (and the guest gives pages).
        #expect(try eventually(90) { try d.ok(["logs", "bal"]).contains("inflated") }, "\((try? d.ok(["logs", "bal"])) ?? "")")
        #expect(try eventually(60) { (try Self.balloon(d, "bal")["autoTakenMiB"] as? Int ?? 0) >= 16 })
        // Between the thresholds the policy holds what it took.
        try Self.writePressure(psi, 5)
        var taken = -1
        #expect(try eventually(30) {
            let now = try Self.balloon(d, "bal")["autoTakenMiB"] as? Int ?? 0
            defer { taken = now }
            usleep(1_500_000)
            return now == taken
        })
        let before = try Self.balloon(d, "bal")
        #expect(before["targetMiB"] as? Int == taken, "all of the target is the policy's: \(before)")
        let pid = try #require(try d.show("bal")["pid"] as? Int)

        // skiffd killed -9 and started again: the VM ran on, and what was taken is still known.
        d.kill9()
        try d.start()
        #expect(try d.show("bal")["pid"] as? Int == pid)
        let after = try Self.balloon(d, "bal")
        #expect(after["autoTakenMiB"] as? Int == taken, "after the restart: \(after), before: \(before)")
        #expect(after["targetMiB"] as? Int == taken)

        // Pressure falls: the balloon deflates back to the VM's own target (0), and the guest,
        // seeing its balloon empty again, passes.
        try Self.writePressure(psi, 0)
        #expect(try eventually(120) { try d.ok(["logs", "bal"]).contains("SKIFF-TEST PASS") }, "\((try? d.ok(["logs", "bal"])) ?? "")")
        let log = try d.ok(["logs", "bal"])
        #expect(log.contains("deflated") && !log.contains("FAIL"), "\(log)")
        let events = try d.ok(["events", "--vm", "bal"])
        #expect(events.contains("balloon-return") && events.contains("deflated to 0 MiB"), "\(events)")
    }
}
