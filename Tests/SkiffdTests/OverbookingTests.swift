import Foundation
import Testing

/// Admission control against the allocation ratios, and the host report.
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct OverbookingTests {
    @Test func createsBeyondTheRatiosAreRefusedSayingByHowMuch() throws {
        // 1 vCPU per host CPU on this 2-CPU host.
        let d = try Daemon(extraArguments: ["--cpu-ratio", "1"])
        defer { d.tearDown() }
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        try d.ok(["create", "-f", try d.spec("big", extra: "cpus: \(cpus)\n")])
        let r = try d.cli(["create", "-f", try d.spec("one-more", extra: "cpus: 2\n")])
        #expect(r.status != 0)
        #expect(r.stderr.contains("capacityExceeded") && r.stderr.contains("not enough CPU") && r.stderr.contains("over by 2 vCPUs"), "\(r.stderr)")
        #expect(!(try d.ok(["list"])).contains("one-more"))
        // Deleting frees the allocation.
        try d.ok(["delete", "big"])
        try d.ok(["create", "-f", try d.spec("one-more", extra: "cpus: 2\n")])
    }

    @Test func memoryRatioIsEnforced() throws {
        let total = (try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)).split(separator: "\n")
            .first { $0.hasPrefix("MemTotal:") }.flatMap { Int($0.split(separator: " ")[1]) }.map { $0 * 1024 } ?? 0
        // Allocatable: this host's RAM less a reserve that leaves 200 MiB (and less than 1 MiB more).
        let reserve = total / (1 << 20) - 200
        let d = try Daemon(extraArguments: ["--memory-ratio", "1", "--reserved-memory", String(reserve)])
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("m1", memory: "128M")])
        let r = try d.cli(["create", "-f", try d.spec("m2", memory: "128M")])
        #expect(r.status != 0)
        #expect(r.stderr.contains("not enough memory") && r.stderr.contains("over by 56 MiB"), "\(r.stderr)")
        let host = try d.ok(["host", "--output", "json"])
        let h = try #require(try JSONSerialization.jsonObject(with: Data(host.utf8)) as? [String: Any])
        #expect(h["allocatedMemoryBytes"] as? Int == 128 << 20)
        #expect((h["ksm"] as? [String: Any])?["available"] as? Bool == FileManager.default.fileExists(atPath: "/sys/kernel/mm/ksm/run"))
    }
}
