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
