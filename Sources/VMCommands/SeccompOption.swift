import ArgumentParser
import Seccomp

/// `--seccomp on|log|off`.
enum SeccompOption {
    static let help = "Per-thread seccomp filters: on (default: a system call outside a thread's allow-list kills the monitor), "
        + "log (the kernel logs it instead, see docs/seccomp.md) or off."

    static func parse(_ value: String) throws(ValidationError) -> SeccompMode {
        guard let mode = SeccompMode(rawValue: value) else { throw ValidationError("--seccomp must be on, log or off") }
        return mode
    }
}
