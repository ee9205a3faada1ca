/// One allowed form of a system call: its name, the checks its arguments must pass (all of
/// them), and why the thread needs it (docs/seccomp.md lists the reasons).
public struct SyscallRule: Sendable, Hashable {
    /// The system call's name as libseccomp knows it (`ioctl`, `epoll_wait`).
    public let name: String
    /// Argument checks; empty when any arguments are allowed.
    public let checks: [ArgumentCheck]
    /// What the rule allows, for people: `ioctl KVM_RUN`, `socket AF_UNIX`.
    public let label: String
    /// Why the thread makes this call.
    public let reason: String

    public init(_ name: String, _ checks: [ArgumentCheck] = [], label: String? = nil, reason: String) {
        self.name = name
        self.checks = checks
        self.label = label ?? name
        self.reason = reason
    }

    /// `ioctl` with request number `request` (compared as the kernel reads it: 32 bits).
    public static func ioctl(_ request: UInt, _ requestName: String, _ reason: String) -> SyscallRule {
        SyscallRule("ioctl", [.equals32(index: 1, value: UInt64(request))], label: "ioctl \(requestName)", reason: reason)
    }

    // Rules compare by what they allow, not by their wording.
    public static func == (a: SyscallRule, b: SyscallRule) -> Bool { a.name == b.name && a.checks == b.checks }
    public func hash(into h: inout Hasher) {
        h.combine(name)
        h.combine(checks)
    }
}

/// A check on one system call argument.
public enum ArgumentCheck: Sendable, Hashable {
    /// The low 32 bits of argument `index` equal `value`: for `int` and `unsigned int`
    /// arguments (ioctl requests, flags, signal numbers), of which the kernel reads 32 bits.
    case equals32(index: UInt32, value: UInt64)
    /// `argument & mask == value` on all 64 bits.
    case masked(index: UInt32, mask: UInt64, value: UInt64)

    var index: UInt32 {
        switch self {
        case .equals32(let i, _), .masked(let i, _, _): return i
        }
    }
}
