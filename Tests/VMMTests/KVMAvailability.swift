import Foundation
import Testing
import KVM

/// Decides whether KVM tests run: always in CI (where a missing /dev/kvm must fail the
/// test), and outside CI only when /dev/kvm opens.
enum KVMAvailability {
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"

    static let openError: String? = {
        do {
            _ = try KVMSystem()
            return nil
        } catch {
            return "\(error)"
        }
    }()

    /// Run the test: in CI always, elsewhere when KVM opens. (Turns on the test process's
    /// seccomp filters for VM threads first: see `TestSeccomp`.)
    static var shouldRun: Bool {
        _ = TestSeccomp.activation
        return inCI || openError == nil
    }

    /// Why a KVM test was skipped.
    static var skipReason: Comment { "KVM unavailable outside CI: \(openError ?? "")" }
}
