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
    /// (power-button.elf powers off through ACPI S5); a guest that ignores it is stopped after
    /// the timeout, and a kill cuts a long stop short instead of waiting behind it.
    @Test func stopPressesThePowerButtonAndKillCutsALongStopShort() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("pwrb", guest: "power-button.elf"), "--start"])
        #expect(try eventually(30) { try d.ok(["logs", "pwrb"]).contains("PWRB waiting") })
        let started = Date()
        try d.ok(["stop", "pwrb", "--timeout", "60"])
        #expect(Date().timeIntervalSince(started) < 30, "the guest did not power off on the button")
        let log = try d.ok(["logs", "pwrb"])
        #expect(log.contains("PWRB pressed"), "\(log)")
        let stopped = try d.show("pwrb")
        #expect(stopped["state"] as? String == "stopped")
        #expect((stopped["lastExit"] as? [String: Any])?["status"] as? Int == 0)
        #expect(try d.ok(["events", "--vm", "pwrb"]).contains("powered off"))

        // idle.elf ignores the button: a stop with an hour's timeout, cut short by a kill.
        try d.ok(["create", "-f", try d.spec("deaf"), "--start"])
        let stopper = Thread { _ = try? d.cli(["stop", "deaf", "--timeout", "3600"]) }
        stopper.start()
        #expect(try eventually(10) { try d.show("deaf")["state"] as? String == "stopping" })
        let killedAt = Date()
        try d.ok(["kill", "deaf"])
        #expect(Date().timeIntervalSince(killedAt) < 15, "kill waited behind the stop")
        #expect(try d.show("deaf")["state"] as? String == "stopped")
        #expect(try d.cli(["kill", "deaf"]).status != 0, "a kill of a stopped VM is refused")
    }
}
