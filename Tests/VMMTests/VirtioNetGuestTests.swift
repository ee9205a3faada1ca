import Foundation
import Synchronization
import Testing

/// Root, `ip`, /dev/net/tun and python3: what the TAP tests need. In CI they must run (a
/// missing piece fails them); elsewhere they are skipped with the reason.
enum NetworkNamespaceSupport {
    static let problem: String? = {
        if getuid() != 0 { return "not root (network namespaces and TAP devices need CAP_NET_ADMIN)" }
        if !FileManager.default.fileExists(atPath: "/dev/net/tun") { return "/dev/net/tun is missing" }
        for tool in ["/usr/sbin/ip", "/usr/bin/python3"] where !FileManager.default.isExecutableFile(atPath: tool) {
            if tool.hasSuffix("python3"), findPython() != nil { continue }
            return "\(tool) is missing (apt-get install iproute2 python3)"
        }
        return nil
    }()

    static var shouldRun: Bool { KVMAvailability.shouldRun && (KVMAvailability.inCI || problem == nil) }
    static var skipReason: Comment { "TAP tests skipped: \(problem ?? "KVM unavailable")" }

    static func findPython() -> String? {
        ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        let r = try tool("/usr/sbin/ip", arguments)
        guard r.status == 0 else { throw SetupError(description: "ip \(arguments.joined(separator: " ")): \(r.output)") }
        return r.output
    }

    static func tool(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    struct SetupError: Error, CustomStringConvertible {
        let description: String
    }
}

/// A network namespace this test creates and deletes; nothing outside it is touched.
final class TestNamespace {
    let name: String
    /// The third octet of 10.200.X.0/30, so parallel runs do not share addresses.
    let subnet: Int

    init() throws {
        if let p = NetworkNamespaceSupport.problem { throw NetworkNamespaceSupport.SetupError(description: p) }
        subnet = Int.random(in: 0...255)
        name = "skiff-test-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        try NetworkNamespaceSupport.ip(["netns", "add", name])
    }

    deinit { _ = try? NetworkNamespaceSupport.ip(["netns", "del", name]) }

    var hostAddress: String { "10.200.\(subnet).1" }
    var guestAddress: String { "10.200.\(subnet).2" }

    func ip(_ arguments: [String]) throws -> String { try NetworkNamespaceSupport.ip(["-n", name] + arguments) }

    /// A process running inside the namespace.
    func process(_ executable: String, _ arguments: [String]) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = ["netns", "exec", name, executable] + arguments
        return p
    }
}

/// virtio-net through a real TAP: the guest kit's driver ARPs for the host, sends a UDP
/// datagram to a responder in the namespace and receives its replies (one of them larger
/// than a receive buffer). Only addresses inside the test's own namespace are used.
@Suite(.enabled(if: NetworkNamespaceSupport.shouldRun, NetworkNamespaceSupport.skipReason))
struct VirtioNetGuestTests {
    static let responder = """
        import socket, sys
        addr, port, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        s.settimeout(60)
        print("ready", flush=True)
        data, peer = s.recvfrom(65536)
        print("got", data.decode(errors="replace"), "from", peer[0], peer[1], flush=True)
        s.sendto(b"pong:" + data, peer)
        s.sendto(bytes((i * 7 + 3) & 0xff for i in range(big)), peer)
        print("replied", flush=True)
        """

    static let skiff = CLITests.binDirectory.appendingPathComponent("skiff").path

    /// Runs `skiff run` with virtio-net.elf inside `ns`; returns its status and output.
    static func runGuest(_ ns: TestNamespace, net: String, cmdline: String, timeout: Double = 60) throws -> (status: Int32, output: String) {
        let p = ns.process(skiff, ["run", "--kernel", try GuestKit.path("virtio-net.elf"), "--net", net, "--cmdline", cmdline])
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        // SIGKILL: a child may inherit SIGTERM blocked from the test runner's thread.
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Packets the kernel counted on `dev` in `ns` (rx = frames Skiff wrote into the TAP).
    static func stats(_ ns: TestNamespace, _ dev: String) throws -> (rx: Int, tx: Int) {
        let json = try ns.ip(["-j", "-s", "link", "show", "dev", dev])
        guard let list = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]],
              let s = list.first?["stats64"] as? [String: Any],
              let rx = (s["rx"] as? [String: Any])?["packets"] as? Int, let tx = (s["tx"] as? [String: Any])?["packets"] as? Int else {
            throw NetworkNamespaceSupport.SetupError(description: "cannot read the statistics of \(dev): \(json)")
        }
        return (rx, tx)
    }

    @Test(arguments: [(csum: 0, big: 4000, flags: "0x0", buffers: 2), (csum: 1, big: 8000, flags: "0x1", buffers: 4)])
    func guestTalksToAResponderBehindATap(csum: Int, big: Int, flags: String, buffers: Int) throws {
        let ns = try TestNamespace()
        let tap = "sktap0"
        let mac = "02:53:4b:00:00:\(String(format: "%02x", ns.subnet))"
        // The TAP exists before Skiff opens it (so it can have an address); MTU 9000 lets a
        // single frame be larger than the guest's 2 KiB receive buffers.
        try ns.ip(["tuntap", "add", "dev", tap, "mode", "tap"])
        try ns.ip(["addr", "add", "\(ns.hostAddress)/30", "dev", tap])
        try ns.ip(["link", "set", tap, "mtu", "9000", "up"])
        try ns.ip(["neigh", "add", ns.guestAddress, "lladdr", mac, "dev", tap, "nud", "permanent"])

        let python = try #require(NetworkNamespaceSupport.findPython())
        let responder = ns.process(python, ["-c", Self.responder, ns.hostAddress, "7777", "\(big)"])
        let responderOut = Pipe()
        responder.standardOutput = responderOut
        responder.standardError = responderOut
        try responder.run()
        defer { if responder.isRunning { kill(responder.processIdentifier, SIGKILL) } }
        let ready = responderOut.fileHandleForReading.availableData
        #expect(String(decoding: ready, as: UTF8.self).contains("ready"))

        let run = try Self.runGuest(ns, net: "tap=\(tap),mac=\(mac)",
                                    cmdline: "ip=\(ns.guestAddress) host=\(ns.hostAddress) port=7777 csum=\(csum) big=\(big)")
        responder.waitUntilExit()
        let heard = String(decoding: responderOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)

        #expect(run.status == 33, "\(run.output)")
        #expect(run.output.contains("virtio-net 00:01.0 mac \(mac) link 1"), "\(run.output)")
        #expect(run.output.contains("arp reply from "), "\(run.output)")
        // The guest's datagram came out of the TAP and reached the responder...
        #expect(heard.contains("got skiff-ping from \(ns.guestAddress) 40000"), "\(heard)")
        // ...and both replies came back in; the checksum offload shows in the header flags.
        #expect(run.output.contains("udp reply \"pong:skiff-ping\" flags \(flags)\n"), "\(run.output)")
        #expect(run.output.contains("udp big reply \(big) bytes in \(buffers) buffers ok"), "\(run.output)")
        let counted = try Self.stats(ns, tap)
        #expect(counted.rx >= 2 && counted.tx >= 3, "\(counted)")
    }

    @Test func skiffCreatesAMissingTapAndItGoesAwayWithTheVM() throws {
        let ns = try TestNamespace()
        let p = ns.process(Self.skiff, ["run", "--kernel", try GuestKit.path("idle.elf"), "--net", "tap=skcreated0"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        var seen = false
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && !seen {
            seen = (try? ns.ip(["link", "show", "dev", "skcreated0"])) != nil
            if !seen { usleep(20_000) }
        }
        // SIGKILL (SIGTERM may be blocked in the child): the kernel closes the TAP fd either way.
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(seen, "the TAP never appeared")
        #expect((try? ns.ip(["link", "show", "dev", "skcreated0"])) == nil, "the TAP outlived the VM")
    }
}

/// virtio-net across a snapshot: a driver set up before the snapshot talks through the TAP
/// the restored monitor reopens (the snapshot's configuration names it).
@Suite(.enabled(if: NetworkNamespaceSupport.shouldRun, NetworkNamespaceSupport.skipReason))
struct VirtioNetRestoreTests {
    /// `skiff ARGS` inside `ns`, its console collected; stdin is a pipe the test writes.
    final class NamespacedSkiff: @unchecked Sendable {
        let process: Process
        let input = Pipe()
        let output = Pipe()
        private let collected = Mutex(Data())
        private let done = DispatchSemaphore(value: 0)

        init(_ ns: TestNamespace, _ arguments: [String]) throws {
            process = ns.process(VirtioNetGuestTests.skiff, arguments)
            process.standardInput = input
            process.standardOutput = output
            process.standardError = FileHandle.standardError
            try process.run()
            let reader = output.fileHandleForReading
            Thread.detachNewThread { [self] in
                while true {
                    let d = reader.availableData
                    if d.isEmpty { break }
                    self.collected.withLock { $0.append(d) }
                }
                self.done.signal()
            }
        }

        var text: String { String(decoding: collected.withLock { $0 }, as: UTF8.self) }

        func waitFor(_ needle: String, timeout: Double = 60) -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if text.contains(needle) { return true }
                usleep(20_000)
            }
            return text.contains(needle)
        }

        func finish(timeout: Double = 60) -> Int32 {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            _ = done.wait(timeout: .now() + 5)
            return process.terminationStatus
        }
    }

    @Test func aRestoredDriverTalksThroughTheReopenedTap() throws {
        let ns = try TestNamespace()
        let dir = ScratchDirectory("skiff-net-restore")
        defer { dir.cleanup() }
        let tap = "sktap1"
        let mac = "02:53:4b:00:01:\(String(format: "%02x", ns.subnet))"
        try ns.ip(["tuntap", "add", "dev", tap, "mode", "tap"])
        try ns.ip(["addr", "add", "\(ns.hostAddress)/30", "dev", tap])
        try ns.ip(["link", "set", tap, "mtu", "9000", "up"])
        try ns.ip(["neigh", "add", ns.guestAddress, "lladdr", mac, "dev", tap, "nud", "permanent"])

        let socket = dir.file("api.sock")
        let source = try NamespacedSkiff(ns, ["run", "--kernel", try GuestKit.path("virtio-net.elf"), "--net", "tap=\(tap),mac=\(mac)",
                                              "--api-socket", socket,
                                              "--cmdline", "ip=\(ns.guestAddress) host=\(ns.hostAddress) port=7778 big=6000 wait-key=1"])
        #expect(source.waitFor("virtio-net ready"), "\(source.text)")
        let snapshot = try CLITests.run("skiff", ["snapshot", "create", "--api-socket", socket, dir.file("snap"), "--stop"])
        #expect(snapshot.status == 0, "\(snapshot)")
        #expect(source.finish() == 0, "the source stops after --stop: \(source.text)")

        let python = try #require(NetworkNamespaceSupport.findPython())
        let responder = ns.process(python, ["-c", VirtioNetGuestTests.responder, ns.hostAddress, "7778", "6000"])
        let heardPipe = Pipe()
        responder.standardOutput = heardPipe
        responder.standardError = heardPipe
        try responder.run()
        defer { if responder.isRunning { kill(responder.processIdentifier, SIGKILL) } }
        #expect(String(decoding: heardPipe.fileHandleForReading.availableData, as: UTF8.self).contains("ready"))

        // No --net: the restored monitor reopens the TAP the snapshot names.
        let restored = try NamespacedSkiff(ns, ["run", "--restore", dir.file("snap")])
        restored.input.fileHandleForWriting.write(Data("k".utf8))
        #expect(restored.finish() == 33, "\(restored.text)")
        responder.waitUntilExit()
        let heard = String(decoding: heardPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(heard.contains("got skiff-ping from \(ns.guestAddress) 40000"), "\(heard)")
        #expect(restored.text.contains("arp reply from "), "\(restored.text)")
        #expect(restored.text.contains("udp reply \"pong:skiff-ping\""), "\(restored.text)")
        #expect(restored.text.contains("udp big reply 6000 bytes in 3 buffers ok"), "\(restored.text)")
    }
}
