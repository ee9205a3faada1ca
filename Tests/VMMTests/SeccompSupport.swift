import Foundation
import Seccomp
import Testing
import X86Emulator

/// The in-process tests run their VMs' threads under the monitor's seccomp filters, with a
/// trap-and-record action instead of killing the test process: a refused call fails with
/// EPERM, is recorded, and the next check (`expectNoRefusals`, run by `GuestKit.boot` and
/// `RunningVM`) fails the test naming the thread role, the call and its arguments.
///
/// Every thread the VMM creates is confined (vCPUs, device workers, console, control and
/// migration threads); the thread that calls `VirtualMachine.run()` is a test thread and is
/// not (the main thread's filter is exercised by the tests that run `skiff`/`skiff-vmm`,
/// which confine every thread with the default `--seccomp on`). SKIFF_TEST_SECCOMP=off
/// turns this off for debugging.
enum TestSeccomp {
    static let enabled = ProcessInfo.processInfo.environment["SKIFF_TEST_SECCOMP"] != "off"

    /// Confines VM threads created from now on; once per process (KVM tests reach it through
    /// `KVMAvailability.shouldRun`).
    static let activation: String? = {
        guard enabled else { return "SKIFF_TEST_SECCOMP=off" }
        var profile = SeccompProfile(network: true)
        if let region = ExecutableCodeRegion.shared {
            profile.executableRegion = .init(base: UInt64(region.base), size: UInt64(ExecutableCodeRegion.size),
                                             slotSize: UInt64(ExecutableCodeRegion.slotSize))
        }
        do {
            _ = try SeccompPolicy.activate(action: .trapAndRecord, profile: profile)
            return nil
        } catch {
            return "\(error)"
        }
    }()

    /// Records an issue for every call a filter refused so far in this process.
    static func expectNoRefusals(sourceLocation: SourceLocation = #_sourceLocation) {
        guard enabled else { return }
        #expect(activation == nil, "seccomp could not be turned on in the test process: \(activation ?? "")", sourceLocation: sourceLocation)
        let refused = SeccompViolations.all
        #expect(refused.isEmpty && SeccompViolations.count == 0,
                "seccomp refused \(SeccompViolations.count) calls: \(refused.prefix(8).map(\.description).joined(separator: "; "))",
                sourceLocation: sourceLocation)
    }
}
