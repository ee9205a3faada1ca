import Foundation
import Testing
@testable import VMM

/// Debian's stock cloud kernel booted to its early milestones: the banner, the e820 map
/// exactly as Skiff built it, and the command line Skiff passed. Both entry paths.
@Suite(.enabled(if: KVMAvailability.shouldRun, KVMAvailability.skipReason))
struct LinuxBootTests {
    static let memory: UInt64 = 256 << 20

    /// Boots `kernel` until every milestone line has appeared, then stops the VM.
    func bootToMilestones(kernel: String, timeout: Double) throws -> (output: String, seconds: Double) {
        let marker = "skiff.test=\(UUID().uuidString.prefix(8))"
        let cmdline = LinuxKernel.commandLine(marker)
        let e820 = try LinuxKernel.expectedE820Lines(memory: Self.memory)
        let start = Date()
        let run = try GuestKit.boot(kernel, cmdline: cmdline, memory: Self.memory, timeout: timeout) { c in
            c.kernelPath = kernel
        } whileRunning: { vm, console in
            let deadline = Date().addingTimeInterval(timeout)
            for needle in ["Linux version ", "Command line: \(cmdline)\n"] + e820 {
                guard console.waitFor(needle, timeout: max(1, deadline.timeIntervalSinceNow)) else { break }
            }
            vm.stop()
        }
        let seconds = Date().timeIntervalSince(start)
        #expect(run.outcome == .stopped, "the kernel stopped before its milestones: \(run.outcome)")
        #expect(run.output.contains("Linux version 6."), "no kernel banner within \(timeout) s")
        #expect(run.output.contains("Command line: \(cmdline)\n"))
        #expect(LinuxKernel.printedE820Lines(run.output) == e820)
        return (run.output, seconds)
    }

    @Test func pvhVmlinuxReachesBannerE820AndCommandLine() throws {
        let kernel = try LinuxKernel.require(LinuxKernel.vmlinux)
        let (_, seconds) = try bootToMilestones(kernel: kernel, timeout: 240)
        print("PVH vmlinux: milestones after \(String(format: "%.1f", seconds)) s")
    }

    @Test func bzImageReachesBannerE820AndCommandLine() throws {
        let kernel = try LinuxKernel.require(LinuxKernel.bzImage)
        let (output, seconds) = try bootToMilestones(kernel: kernel, timeout: 420)
        // The decompressor ran with our zero page: it saw the command line.
        #expect(output.contains("KASLR disabled: 'nokaslr' on cmdline."))
        print("bzImage: milestones after \(String(format: "%.1f", seconds)) s")
    }
}
