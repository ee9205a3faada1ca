/// Whether the monitor confines its threads with seccomp filters (docs/seccomp.md).
public enum SeccompMode: String, Sendable, CaseIterable, Codable {
    /// A system call outside a thread's allow-list kills the process (SECCOMP_RET_KILL_PROCESS).
    case on
    /// Such a call is allowed and the kernel logs it (SECCOMP_RET_LOG: an audit record naming
    /// the call): for finding what a filter lacks.
    case log
    /// No filters.
    case off
}

/// What a filter does with a system call its thread's allow-list does not name.
public enum SeccompAction: Sendable, Equatable {
    /// SECCOMP_RET_KILL_PROCESS: the whole process dies of SIGSYS.
    case killProcess
    /// SECCOMP_RET_LOG: the call runs and the kernel logs it.
    case log
    /// SECCOMP_RET_TRAP: the call fails with EPERM and the process records it (`SeccompViolations`);
    /// for test processes, which must survive a missing rule to report it.
    case trapAndRecord

    /// The action of a mode; nil for `.off`.
    public init?(_ mode: SeccompMode) {
        switch mode {
        case .on: self = .killProcess
        case .log: self = .log
        case .off: return nil
        }
    }
}

/// Why the filters could not be built or installed.
public struct SeccompError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "seccomp: \(message)" }
}
