import Foundation
import Testing

/// Long operations as tasks through the monitor's own verbs, the metrics endpoint and the
/// event stream.
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct TaskTests {
    @Test func saveRestoreAndClone() throws {
        let d = try Daemon(extraArguments: ["--cpu-ratio", "8"])
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("src", guest: "workload.elf", extra: "cmdline: dirty=0\n"), "--start"])
        #expect(try eventually(20) { try d.ok(["logs", "src"]).contains("WL heartbeat n=1") })
        let snap = "\(d.dir)/snap1"
        let saved = try d.ok(["save", "src", "--dir", snap])
        #expect(saved.contains("snapshot succeeded") && saved.contains("directory=\(snap)"), "\(saved)")
        #expect(FileManager.default.fileExists(atPath: "\(snap)/state"))
        // A second save into the same directory is refused before any work.
        let again = try d.cli(["save", "src", "--dir", snap])
        #expect(again.status != 0 && again.stderr.contains("already exists"), "\(again.stderr)")
        // JSON output is the task.
        let task = try d.ok(["save", "src", "--output", "json"])
        let t = try #require(try JSONSerialization.jsonObject(with: Data(task.utf8)) as? [String: Any])
        #expect(t["state"] as? String == "succeeded" && t["kind"] as? String == "snapshot" && t["progress"] as? Double == 1)

        // Restore into a stopped VM: it continues the saved heartbeat count, not from 1.
        try d.ok(["stop", "src", "--timeout", "0"])
        let before = try d.ok(["logs", "src"]).components(separatedBy: "WL heartbeat n=").count
        let restored = try d.ok(["restore", "src", snap])
        #expect(restored.contains("restore succeeded"), "\(restored)")
        #expect(try d.show("src")["state"] as? String == "running")
        #expect(try eventually(20) { try d.ok(["logs", "src"]).components(separatedBy: "WL heartbeat n=").count > before + 1 })

        // Clone: two new VMs from a fresh snapshot of the running one.
        let cloned = try d.ok(["clone", "src", "--count", "2", "--prefix", "kid"])
        #expect(cloned.contains("fork succeeded") && cloned.contains("kid-1,kid-2"), "\(cloned)")
        for kid in ["kid-1", "kid-2"] {
            #expect(try d.show(kid)["state"] as? String == "running")
            #expect(try eventually(20) { try d.ok(["logs", kid]).contains("WL heartbeat") })
        }
        #expect(d.monitors().count == 3)
    }

    @Test func metricsAndEventStream() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("m1"), "--start"])
        let metrics = try d.raw("GET", "/metrics")
        #expect(metrics.status == 200)
        for name in ["skiff_host_memory_bytes", "skiff_vms_running 1", "skiff_vm_rss_bytes{vm=\"m1\"}", "skiff_vm_monitor_counter{",
                     "skiff_vm_cpu_seconds{vm=\"m1\"}", "skiff_vm_balloon_bytes{vm=\"m1\"}", "http_server_request_duration_bucket"] {
            #expect(metrics.body.contains(name), "missing \(name)")
        }
        // A follower sees events that happen after it attached.
        let (follow, seen) = try d.interactive(["events", "-f", "--vm", "m1"], until: "paused", then: []) {
            usleep(300_000)
            _ = try? d.cli(["pause", "m1"])
        }
        #expect(seen, "\(follow.stdout)")
    }

    /// Snapshot and restore directories are absolute: a relative one would land in whatever
    /// the monitor's working directory is. The CLI makes the user's relative paths absolute.
    @Test func relativeSnapshotDirectoriesAreRefused() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("rel"), "--start"])
        let json = ["Content-Type": "application/json"]
        let snap = try d.raw("POST", "/vms/rel/snapshot", body: Array(#"{"directory":"snaps/one"}"#.utf8), headers: json)
        #expect(snap.status == 400 && snap.body.contains("absolute"), "\(snap.status) \(snap.body)")
        try d.ok(["stop", "rel", "--timeout", "0"])
        let restore = try d.raw("POST", "/vms/rel/restore", body: Array(#"{"directory":"snaps/one"}"#.utf8), headers: json)
        #expect(restore.status == 400 && restore.body.contains("absolute"), "\(restore.status) \(restore.body)")
        #expect(!FileManager.default.fileExists(atPath: "snaps"))
    }
}
