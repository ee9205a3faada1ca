import Foundation
import Testing

/// `--on-reboot restart` builds a new machine per boot; the old one must be freed with its
/// KVM descriptors, eventfds and guest RAM (a reference cycle once kept every one of them, so a
/// guest rebooting in a loop ran the monitor out of descriptors).
@Suite(.serialized) struct RebootResourceTests {
    /// Descriptor targets of `pid` ("anon_inode:kvm-vm", "anon_inode:[eventfd]", ...), counted.
    static func descriptors(of pid: Int32) -> [String: Int] {
        let directory = "/proc/\(pid)/fd"
        var counts: [String: Int] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + name) else { continue }
            let kind = target.hasPrefix("anon_inode:kvm-vcpu") ? "anon_inode:kvm-vcpu" : target
            counts[kind, default: 0] += 1
        }
        return counts
    }

    @Test(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
    func rebootLoopKeepsDescriptorsBounded() throws {
        let process = Process()
        process.executableURL = CLITests.binDirectory.appendingPathComponent("skiff-vmm")
        process.arguments = ["--kernel", try GuestKit.path("i8042-reset.elf"), "--memory", "32M", "--on-reboot", "restart", "--rng"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            // SIGKILL: children of the test runner inherit a mask that blocks SIGTERM.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        // Wait for 40 boots (each prints "resetting" once).
        var text = ""
        let deadline = Date().addingTimeInterval(60)
        while text.components(separatedBy: "resetting").count - 1 < 40 && Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        let boots = text.components(separatedBy: "resetting").count - 1
        try #require(boots >= 40, "only \(boots) boots in 60 s")
        let counts = Self.descriptors(of: process.processIdentifier)
        let total = counts.values.reduce(0, +)
        // One machine at a time: its VM (plus the CPUID probe's, if still open), one vCPU, a few eventfds.
        #expect(counts["anon_inode:kvm-vm", default: 0] <= 2, "\(counts)")
        #expect(counts["anon_inode:kvm-vcpu", default: 0] <= 2, "\(counts)")
        #expect(counts["anon_inode:[eventfd]", default: 0] <= 16, "\(counts)")
        #expect(total < 64, "\(total) descriptors after \(boots) boots: \(counts)")
    }
}
