import Foundation
import Testing

/// The console over the API: scrollback, live output to several watchers, the detach keys,
/// input from the one writer (with a monitor that has the console socket), and `skiff logs`.
@Suite(.serialized, .enabled(if: KVMGate.shouldRun, KVMGate.skipReason))
struct ConsoleTests {
    @Test func logsAndScrollbackAndDetach() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        // workload dirty=0 prints a heartbeat about every 250 ms of guest time.
        try d.ok(["create", "-f", try d.spec("talky", guest: "workload.elf", extra: "cmdline: dirty=0\n"), "--start"])
        #expect(try eventually(20) { try d.ok(["logs", "talky"]).contains("WL heartbeat n=2") })
        let logs = try d.ok(["logs", "talky", "--bytes", "20"])
        #expect(logs.utf8.count <= 20)

        // Ctrl-] detaches; the recent output comes first, then live lines.
        let (first, sawHistory) = try d.interactive(["console", "talky"], until: "WL heartbeat n=1", then: [0x1D])
        #expect(sawHistory, "\(first.stdout.suffix(300)) \(first.stderr)")
        #expect(first.status == 0, "\(first.stderr)")
        // Ctrl-A x detaches too, and a watcher sees output that is produced after it attached.
        let now = try d.ok(["logs", "talky"]).components(separatedBy: "WL heartbeat n=").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        let (second, sawLive) = try d.interactive(["console", "talky", "--read-only"], until: "WL heartbeat n=\(now + 3)", then: [0x01, 0x78])
        #expect(sawLive, "\(second.stdout.suffix(300))")
        #expect(second.status == 0)

        // `logs -f` follows.
        let (follow, sawFollow) = try d.interactive(["logs", "talky", "-f"], until: "WL heartbeat n=\(now + 6)", then: [])
        #expect(sawFollow, "\(follow.stdout.suffix(200))")
    }

    @Test func severalWatchersOneWriter() throws {
        let d = try Daemon()
        defer { d.tearDown() }
        try d.ok(["create", "-f", try d.spec("echo", guest: "uart-echo.elf"), "--start"])
        #expect(try eventually(20) { !(try d.ok(["logs", "echo"])).isEmpty })
        if Daemon.monitorHasConsoleSocket {
            // Typed bytes reach the guest (uart-echo echoes them); a second writer is read-only.
            // The guest prints "ready" and then waits 20 s for a line: the scrollback shows it.
            let (r, ready) = try d.interactive(["console", "echo"], until: "ready", then: Array("skiff\n".utf8) + [0x1D])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(ready, "\(r.stdout.suffix(200))")
            #expect(try eventually(10) { try d.ok(["logs", "echo"]).contains("got: skiff") })
            // A plain GET of the console (no upgrade) is told to upgrade, in the API's error shape.
            let plain = try d.raw("GET", "/vms/echo/console")
            #expect(plain.status == 426, "\(plain.body)")
            #expect(plain.body.contains("\"code\"") && plain.body.contains("WebSocket"), "\(plain.body)")
            #expect(try d.raw("GET", "/vms/nosuch/console").status == 404)
        } else {
            // Without the monitor's console socket the daemon serves the log: watchers only.
            print("note: this skiff-vmm has no --console-socket: console input is not available through skiffd")
            let firstLine = String(try d.ok(["logs", "echo"]).split(separator: "\n").first ?? "")
            let (r, seen) = try d.interactive(["console", "echo"], until: firstLine, then: [0x1D])
            #expect(seen)
            #expect(r.stderr.contains("read-only"), "\(r.stderr)")
        }
    }
}
