import Foundation
import HostProcess
import Testing

/// skiffd killed and restarted with VMs running; monitors that die; restart policies.
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct SupervisionTests {
    /// kill -9 of skiffd with 5 VMs running: a new skiffd re-attaches to all five, starts none
    /// twice, and still controls them.
    @Test func reattachesAfterKill9() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        let names = (1...5).map { "vm\($0)" }
        for n in names { try d.ok(["create", "-f", try d.spec(n, extra: "restart: always\n"), "--start"]) }
        var before: [String: Int] = [:]
        for n in names { before[n] = try #require(try d.show(n)["pid"] as? Int) }
        #expect(d.monitors().count == 5)

        d.kill9()
        // The monitors do not notice.
        #expect(d.monitors().count == 5)
        try d.start()
        for n in names {
            let vm = try d.show(n)
            #expect(vm["state"] as? String == "running", "\(n)")
            #expect(vm["pid"] as? Int == before[n], "\(n) was started again")
        }
        #expect(Set(d.monitors().keys.map(Int.init)) == Set(before.values))
        let events = try d.ok(["events", "--vm", "vm3"])
        #expect(events.contains("re-attached"))
        // Still controlled: pause, resume, stop work on a re-attached monitor, and its exit is seen.
        try d.ok(["pause", "vm2"])
        try d.ok(["resume", "vm2"])
        try d.ok(["stop", "vm2", "--timeout", "0"])
        #expect(try d.show("vm2")["state"] as? String == "stopped")
        #expect(d.monitors().count == 4)
        // A re-attached monitor that dies is noticed (pidfd) and restarted by policy.
        let victim = try #require(before["vm4"])
        kill(Int32(victim), SIGKILL)
        #expect(try eventually(20) { (try d.show("vm4")["pid"] as? Int).map { $0 != victim } ?? false })
        // The new pid is recorded before its control socket answers ("starting"), then "running".
        #expect(try eventually(20) { try d.show("vm4")["state"] as? String == "running" })
        #expect(try d.show("vm4")["restartCount"] as? Int == 1)
    }

    /// A monitor killed behind the daemon's back is noticed at once and handled per policy.
    @Test func restartPolicies() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("always", extra: "restart: always\n"), "--start"])
        try d.ok(["create", "-f", try d.spec("onfail", extra: "restart: on-failure\n"), "--start"])
        try d.ok(["create", "-f", try d.spec("never", extra: "restart: never\n"), "--start"])
        // poweroff.elf powers the VM off (ACPI S5) at once: the monitor exits with status 0.
        try d.ok(["create", "-f", try d.spec("clean", guest: "poweroff.elf", extra: "restart: on-failure\n"), "--start"])
        let pids = try ["always", "onfail", "never"].map { try #require(try d.show($0)["pid"] as? Int) }
        for pid in pids { kill(Int32(pid), SIGKILL) }
        #expect(try eventually(20) { (try d.show("always")["pid"] as? Int).map { $0 != pids[0] } ?? false })
        #expect(try eventually(20) { (try d.show("onfail")["pid"] as? Int).map { $0 != pids[1] } ?? false })
        #expect(try eventually(10) { try d.show("never")["state"] as? String == "crashed" })
        let never = try d.show("never")
        #expect(never["desiredState"] as? String == "stopped")
        #expect((never["lastExit"] as? [String: Any])?["signal"] as? Int == 9)
        // A guest that powers off (status 0) is not restarted under on-failure.
        #expect(try eventually(20) { try d.show("clean")["state"] as? String == "stopped" })
        usleep(1_500_000)
        let clean = try d.show("clean")
        #expect(clean["state"] as? String == "stopped")
        #expect(clean["restartCount"] as? Int == 0)
        #expect((clean["lastExit"] as? [String: Any])?["status"] as? Int == 0)
        let events = try d.ok(["events", "--vm", "always"])
        #expect(events.contains("crashed") && events.contains("restarted"))
    }

    /// A monitor that keeps dying is restarted with a growing back-off.
    @Test func backoffGrows() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        // The workload guest ends after two heartbeats (about half a second, status 33): each run is short.
        try d.ok(["create", "-f", try d.spec("flappy", guest: "workload.elf", extra: "restart: always\ncmdline: dirty=0 stop=2\n"), "--start"])
        #expect(try eventually(30) { (try d.show("flappy")["restartCount"] as? Int ?? 0) >= 3 })
        let events = try d.ok(["events", "--vm", "flappy"])
        let delays = events.split(separator: "\n").compactMap { line -> Double? in
            guard let r = line.range(of: "restarts in ") else { return nil }
            return Double(line[r.upperBound...].split(separator: " ").first ?? "")
        }
        #expect(delays.count >= 3)
        #expect(Array(delays.prefix(3)) == [0.5, 1, 2])
        _ = try d.cli(["delete", "flappy", "--force"])
    }

    /// SIGTERM ends skiffd promptly even with a request that never ends (an event stream
    /// being followed), and its VMs keep running for the next skiffd.
    @Test func sigtermEndsTheDaemonButNotItsVMs() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("keep"), "--start"])
        let pid = try #require(try d.show("keep")["pid"] as? Int)
        let follower = Process()
        follower.executableURL = URL(fileURLWithPath: "\(Paths.bin)/skiff")
        follower.arguments = ["events", "-f", "--socket", d.socket]
        follower.standardOutput = FileHandle.nullDevice
        follower.standardError = FileHandle.nullDevice
        try follower.run()
        defer { Daemon.stop(follower) }
        usleep(500_000)
        let daemon = try #require(d.process)
        let sent = Date()
        kill(daemon.processIdentifier, SIGTERM)
        #expect(try eventually(15) { !daemon.isRunning }, "skiffd still runs 15 s after SIGTERM")
        let took = Date().timeIntervalSince(sent)
        #expect(took < 10, "skiffd took \(took) s to stop")
        #expect(daemon.terminationStatus == 0)
        #expect(kill(Int32(pid), 0) == 0, "the VM's monitor died with the daemon")
        try d.start()
        #expect(try d.show("keep")["pid"] as? Int == pid)
        #expect(try d.show("keep")["state"] as? String == "running")
    }
}
