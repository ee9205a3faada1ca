import Foundation
import Testing
@testable import VMM

/// Opt-in (SKIFF_SLOW_TESTS=1): the Debian kernel boots with a busybox initramfs to `/init`,
/// which prints a marker and powers the VM off. On hosts whose KVM emulates instructions this
/// takes many minutes; the test prints how long it took, or how far the kernel got.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SKIFF_SLOW_TESTS"] == "1", "set SKIFF_SLOW_TESTS=1 to boot Linux to /init"))
struct LinuxSlowTests {
    /// Initcalls that only set up tracing and run for minutes at emulation speed.
    static let skippedInitcalls = "initcall_blacklist=ftrace_check_for_weak_functions,trace_eval_init,tracer_init_tracefs"

    @Test func debianKernelBootsToInitAndPowersOff() throws {
        let kernel = try LinuxKernel.require(LinuxKernel.vmlinux)
        let initramfs = try LinuxKernel.require(LinuxKernel.initramfs)
        let limit = Double(ProcessInfo.processInfo.environment["SKIFF_SLOW_TIMEOUT"] ?? "") ?? 3600
        let start = Date()
        let run = try GuestKit.boot(kernel, cmdline: LinuxKernel.commandLine("\(Self.skippedInitcalls) rdinit=/init"),
                                    memory: 256 << 20, initrd: initramfs, timeout: limit)
        let seconds = Date().timeIntervalSince(start)
        let lastLine = run.output.split(separator: "\n").last.map(String.init) ?? "(no output)"
        print("Linux to /init: \(run.outcome) after \(String(format: "%.0f", seconds)) s; last console line: \(lastLine)")
        #expect(run.output.contains("SKIFF-INIT-OK"), "did not reach /init in \(Int(seconds)) s; got as far as: \(lastLine); outcome \(run.outcome)")
        #expect(run.outcome == .powerOff)
    }
}
