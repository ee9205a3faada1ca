import Foundation
import HostProcess
import Testing

/// The whole lifecycle through the `skiff` CLI against a real skiffd and real monitors
/// booting guest-kit programs.
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct LifecycleTests {
    @Test func createStartPauseResumeStopRebootKillDelete() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        let created = try d.ok(["create", "-f", try d.spec("web1", extra: "cpus: 1\nqos: {class: high}\nrestart: never\n")])
        #expect(created.contains("stopped"))
        var list = try d.ok(["list"])
        #expect(list.contains("web1") && list.contains("stopped"))

        try d.ok(["start", "web1"])
        var vm = try d.show("web1")
        #expect(vm["state"] as? String == "running")
        let pid = try #require(vm["pid"] as? Int)
        #expect(d.monitors()[Int32(pid)] == "web1")
        #expect(try eventually { try d.ok(["logs", "web1"]).contains("Hello from Skiff guest") })

        try d.ok(["pause", "web1"])
        #expect(try d.show("web1")["state"] as? String == "paused")
        try d.ok(["resume", "web1"])
        #expect(try d.show("web1")["state"] as? String == "running")

        // The idle guest ignores the power button: after the timeout the monitor's `stop` ends it, status 0.
        let stopped = try d.ok(["stop", "web1", "--timeout", "1"])
        #expect(stopped.contains("stopped"))
        vm = try d.show("web1")
        #expect(vm["state"] as? String == "stopped")
        #expect(vm["pid"] == nil)
        #expect((vm["lastExit"] as? [String: Any])?["status"] as? Int == 0)
        #expect(d.monitors().isEmpty)

        try d.ok(["start", "web1"])
        let pid1 = try #require(try d.show("web1")["pid"] as? Int)
        try d.ok(["reboot", "web1", "--timeout", "0"])
        vm = try d.show("web1")
        let pid2 = try #require(vm["pid"] as? Int)
        #expect(pid2 != pid1)
        #expect(vm["state"] as? String == "running")
        #expect(d.monitors()[Int32(pid1)] == nil)
        #expect(d.monitors().count == 1)

        try d.ok(["kill", "web1"])
        vm = try d.show("web1")
        #expect(vm["state"] as? String == "stopped")
        #expect((vm["lastExit"] as? [String: Any])?["signal"] as? Int == 9)
        #expect(d.monitors().isEmpty)

        try d.ok(["delete", "web1"])
        list = try d.ok(["list"])
        #expect(!list.contains("web1"))
        #expect(!FileManager.default.fileExists(atPath: "\(d.dataDir)/vms/web1"))
        let events = try d.ok(["events"])
        for kind in ["created", "started", "paused", "resumed", "stopped", "rebooted", "deleted"] { #expect(events.contains(kind), "\(kind)") }
    }

    @Test func listAndShowSpeakJSON() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("a"), "--start"])
        try d.ok(["create", "-f", try d.spec("b")])
        let text = try d.ok(["list", "--output", "json"])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
        #expect(list.map { $0["name"] as? String } == ["a", "b"])
        #expect(list.map { $0["state"] as? String } == ["running", "stopped"])
        let host = try d.ok(["host", "--output", "json"])
        let h = try #require(try JSONSerialization.jsonObject(with: Data(host.utf8)) as? [String: Any])
        #expect(h["vms"] as? Int == 2)
        #expect(h["allocatedMemoryBytes"] as? Int == 128 << 20)
    }

    /// skiffd says the same version as skiff, and a bad option is a usage error (64).
    @Test func versionAndUsageStatus() throws {
        func run(_ tool: String, _ arguments: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "\(Paths.bin)/\(tool)")
            p.arguments = arguments
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return (p.terminationStatus, text)
        }
        let daemon = try run("skiffd", ["--version"])
        let cli = try run("skiff", ["--version"])
        #expect(daemon.0 == 0 && cli.0 == 0)
        #expect(daemon.1 == cli.1 && !daemon.1.isEmpty, "skiffd \(daemon.1) vs skiff \(cli.1)")
        #expect(try run("skiffd", ["--no-such-option"]).0 == 64)
    }

    /// A graceful stop is the ACPI power button, which a guest that handles it honours at once
    /// (power-button.elf powers off through ACPI S5); `skiff stop` waits for the stop task and
    /// prints how the VM stopped.
    @Test func stopPressesThePowerButton() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("pwrb", guest: "power-button.elf"), "--start"])
        #expect(try eventually(30) { try d.ok(["logs", "pwrb"]).contains("PWRB waiting") })
        let started = Date()
        let out = try d.ok(["stop", "pwrb", "--timeout", "60", "--output", "json"])
        #expect(Date().timeIntervalSince(started) < 30, "the guest did not power off on the button")
        let task = try Self.json(out)
        #expect(task["kind"] as? String == "stop" && task["state"] as? String == "succeeded", "\(out)")
        let result = task["result"] as? [String: String]
        #expect(result?["how"] == "powered off", "\(out)")
        #expect(result?["exit"]?.contains("0") == true, "\(out)")
        let log = try d.ok(["logs", "pwrb"])
        #expect(log.contains("PWRB pressed"), "\(log)")
        let stopped = try d.show("pwrb")
        #expect(stopped["state"] as? String == "stopped")
        #expect((stopped["lastExit"] as? [String: Any])?["status"] as? Int == 0)
        #expect(try d.ok(["events", "--vm", "pwrb"]).contains("powered off"))
        // Text output says the same.
        try d.ok(["start", "pwrb"])
        #expect(try eventually(30) { try d.ok(["logs", "pwrb"]).components(separatedBy: "PWRB waiting").count > 2 })
        let text = try d.ok(["stop", "pwrb", "--timeout", "60"])
        #expect(text.contains("stop succeeded") && text.contains("how=powered off"), "\(text)")
    }

    /// `POST /vms/{name}/stop` answers at once with a task while the guest (idle.elf ignores the
    /// power button) is given an hour: the VM is `stopping`, reads are answered, a second stop
    /// answers with the same task, requests that need a running VM are refused, and a kill
    /// ends it at once; the task then records that a kill cut it short.
    @Test func stopIsATaskAndKillCutsItShort() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("deaf"), "--start"])
        #expect(try eventually(30) { try d.ok(["logs", "deaf"]).contains("Hello from Skiff guest") })
        let asked = Date()
        let stop = try d.raw("POST", "/vms/deaf/stop?timeout=3600")
        let took = Date().timeIntervalSince(asked)
        #expect(stop.status == 202, "\(stop.status) \(stop.body)")
        #expect(took < 1, "the stop answered after \(took) s")
        let task = try Self.json(stop.body)
        let id = try #require(task["id"] as? String)
        #expect(task["kind"] as? String == "stop" && task["state"] as? String == "running", "\(stop.body)")

        let vm = try d.raw("GET", "/vms/deaf")
        let state = try Self.json(vm.body)["state"] as? String
        #expect(vm.status == 200 && state == "stopping", "\(vm.body)")
        #expect(try eventually(30) {
            let t = try Self.json(try d.raw("GET", "/tasks/\(id)").body)
            return (t["message"] as? String ?? "").contains("waiting for the guest to power off")
        })
        // A second stop is the same task; the CLI's --no-wait prints its id.
        let again = try d.raw("POST", "/vms/deaf/stop?timeout=5")
        let againID = try Self.json(again.body)["id"] as? String
        #expect(again.status == 202 && againID == id, "\(again.body)")
        #expect(try d.ok(["stop", "deaf", "--no-wait"]).trimmingCharacters(in: .whitespacesAndNewlines) == id)
        let json = try Self.json(try d.ok(["stop", "deaf", "--no-wait", "--output", "json"]))
        #expect(json["id"] as? String == id && json["state"] as? String == "running")
        // Requests that need a running VM are refused, not queued for an hour.
        let pause = try d.raw("POST", "/vms/deaf/pause")
        #expect(pause.status == 409, "\(pause.status) \(pause.body)")
        let reboot = try d.raw("POST", "/vms/deaf/reboot")
        #expect(reboot.status == 409, "\(reboot.status) \(reboot.body)")
        #expect(try d.raw("GET", "/vms/deaf/console/log").status == 200)

        let killedAt = Date()
        try d.ok(["kill", "deaf"])
        #expect(Date().timeIntervalSince(killedAt) < 15, "kill waited behind the stop")
        let after = try d.show("deaf")
        #expect(after["state"] as? String == "stopped")
        #expect((after["lastExit"] as? [String: Any])?["signal"] as? Int == 9)
        #expect(d.monitors().isEmpty)
        var ended: [String: Any] = [:]
        #expect(try eventually(15) {
            ended = try Self.json(try d.raw("GET", "/tasks/\(id)").body)
            return ended["state"] as? String != "running"
        })
        #expect(ended["state"] as? String == "succeeded", "\(ended)")
        let result = ended["result"] as? [String: String]
        #expect(result?["how"] == "killed" && result?["cutShortBy"] == "kill", "\(ended)")
        #expect(try d.cli(["kill", "deaf"]).status != 0, "a kill of a stopped VM is refused")
        let late = try d.raw("POST", "/vms/deaf/stop")
        #expect(late.status == 409, "\(late.body)")
    }

    @Test func rebootIsATaskThatStopsAndStartsAgain() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("rb"), "--start"])
        let pid1 = try #require(try d.show("rb")["pid"] as? Int)
        // The idle guest ignores the power button: a long timeout keeps the reboot in its stop phase.
        let asked = Date()
        let reboot = try d.raw("POST", "/vms/rb/reboot?timeout=3600")
        let took = Date().timeIntervalSince(asked)
        #expect(reboot.status == 202, "\(reboot.status) \(reboot.body)")
        #expect(took < 5, "the reboot answered after \(took) s")
        let id = try #require(try Self.json(reboot.body)["id"] as? String)
        #expect(try Self.json(reboot.body)["kind"] as? String == "reboot")
        #expect(try d.show("rb")["state"] as? String == "stopping")
        // A stop or a second reboot meanwhile answers at once; only the kill ends it.
        #expect(try d.raw("POST", "/vms/rb/reboot").status == 409)
        #expect(try d.raw("POST", "/vms/rb/pause").status == 409)
        try d.ok(["kill", "rb"])
        var ended: [String: Any] = [:]
        #expect(try eventually(15) {
            ended = try Self.json(try d.raw("GET", "/tasks/\(id)").body)
            return ended["state"] as? String != "running"
        })
        #expect((ended["result"] as? [String: String])?["cutShortBy"] == "kill", "\(ended)")
        #expect(try d.show("rb")["state"] as? String == "stopped", "a killed reboot does not start the VM again")
        #expect(d.monitors().isEmpty)

        // A reboot that runs to its end: the monitor's stop after the timeout, then a new monitor.
        try d.ok(["start", "rb"])
        let pid2 = try #require(try d.show("rb")["pid"] as? Int)
        #expect(pid2 != pid1)
        let json = try Self.json(try d.ok(["reboot", "rb", "--timeout", "0", "--output", "json"]))
        #expect(json["state"] as? String == "succeeded", "\(json)")
        let result = json["result"] as? [String: String]
        #expect(result?["how"] == "stopped" && result?["state"] == "running", "\(json)")
        let vm = try d.show("rb")
        #expect(vm["state"] as? String == "running")
        let pid3 = try #require(vm["pid"] as? Int)
        #expect(pid3 != pid2)
        #expect(d.monitors().count == 1)
        let events = try d.ok(["events"])
        #expect(events.contains("rebooting") && events.contains("rebooted"), "\(events)")
    }

    static func json(_ text: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { throw HarnessError("not JSON: \(text)") }
        return object
    }
}
