import Foundation
import Synchronization
import Testing
@testable import VMM

/// virtio-vsock against the guest kit's driver on real KVM, with host processes on the
/// AF_UNIX side: a guest-initiated stream to `PATH_5000` and a host-initiated one through
/// `CONNECT 1234` on `PATH`.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct VirtioVsockGuestTests {
    /// What the host side saw.
    final class HostLog: Sendable {
        let lines = Mutex<[String]>([])
        func add(_ s: String) { lines.withLock { $0.append(s) } }
        var all: [String] { lines.withLock { $0 } }
    }

    @Test func streamsFlowBothWaysFromBothEnds() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-vsock-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/v.sock"
        let service = try UnixStream.listen(path + "_5000")
        let log = HostLog()

        let run = try GuestKit.boot("virtio-vsock.elf", cmdline: "port=5000 listen=1234",
                                    configure: { $0.devices = [.vsock(cid: 7, socket: path)] },
                                    whileRunning: { _, _ in
            // Guest-initiated: the guest connects to host port 5000.
            if let guest = service.accept(timeout: 30) {
                log.add("accepted " + guest.readString(timeout: 10) { $0.contains("hello from guest 7") })
                guest.write("hello from host")
                log.add(guest.waitForEOF(timeout: 10) ? "guest closed" : "guest did not close")
            }
            // A port the guest does not listen on: the guest resets it, the host sees EOF without OK.
            if let refused = UnixStream.connect(path) {
                refused.write("CONNECT 9999\n")
                let answer = refused.readString(timeout: 10) { $0.contains("\n") }
                log.add(answer.isEmpty && refused.waitForEOF(timeout: 1) ? "port 9999 refused" : "port 9999 answered '\(answer)'")
            }
            // Host-initiated: CONNECT until the guest answers.
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                guard let host = UnixStream.connect(path) else {
                    usleep(50_000)
                    continue
                }
                host.write("CONNECT 1234\n")
                let ack = host.readString(timeout: 10) { $0.contains("\n") }
                guard ack.hasPrefix("OK ") else {
                    usleep(50_000)
                    continue
                }
                log.add("ack " + ack.trimmingCharacters(in: .newlines))
                host.write("ping from host")
                log.add("reply " + host.readString(timeout: 10) { $0.contains("echo:ping from host") })
                break
            }
        })
        #expect(run.outcome == GuestKit.passStatus, "\(run.output)")
        #expect(log.all == ["accepted hello from guest 7", "guest closed", "port 9999 refused", "ack OK 1073741825", "reply echo:ping from host"],
                "\(log.all)")
        for line in ["virtio-vsock 00:01.0 cid 7 features 0x100000000", "guest-initiated connected to port 5000",
                     "guest-initiated got \"hello from host\"", "guest-initiated closed",
                     "host-initiated connection from port 1073741825", "host-initiated got \"ping from host\"", "host-initiated closed"] {
            #expect(run.output.contains(line + "\n"), "missing '\(line)' in \(run.output)")
        }
        // The device removed its socket when the machine went away.
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func aGuestConnectingToAPortNobodyListensOnIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skiff-vsock-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try GuestKit.boot("virtio-vsock.elf", cmdline: "port=5000 listen=1234",
                                    configure: { $0.devices = [.vsock(cid: 3, socket: dir + "/v.sock")] })
        #expect(run.outcome == .debugExit(status: 35))
        #expect(run.output.contains("SKIFF-TEST FAIL virtio-vsock: host reset the guest-initiated connection (op 3)"), "\(run.output)")
    }
}
