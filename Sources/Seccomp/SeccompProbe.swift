#if canImport(Glibc)
import Glibc
#endif
import CKVM
import Synchronization
import SystemExtras

/// A test seam, compiled into debug builds only: with SKIFF_SECCOMP_PROBE=ROLE in the
/// environment, the first thread of ROLE makes one system call its allow-list lacks right
/// after installing its filter — getsid(2), which no role and no sanitizer runtime needs, or
/// with ROLE:ioctl=0xNUMBER an ioctl with that request number on descriptor -1 (harmless if
/// it runs) — saying so on stderr before
/// (`skiff: seccomp probe: ROLE calls ...`) and after (`... ROLE survived ...`). Tests use it to show that a
/// forbidden call kills the monitor (`--seccomp on`) or is only logged (`--seccomp log`).
final class SeccompProbe: Sendable {
    let role: ThreadRole
    let ioctlRequest: UInt?
    private let fired = Atomic<Bool>(false)

    init(role: ThreadRole, ioctlRequest: UInt?) {
        self.role = role
        self.ioctlRequest = ioctlRequest
    }

    static func fromEnvironment() -> SeccompProbe? {
        #if DEBUG
        guard let raw = unsafe getenv("SKIFF_SECCOMP_PROBE") else { return nil }
        return unsafe parse(String(cString: raw))
        #else
        return nil
        #endif
    }

    /// `ROLE` or `ROLE:ioctl=0xNUMBER`.
    static func parse(_ text: String) -> SeccompProbe? {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let role = ThreadRole(rawValue: first) else { return nil }
        guard parts.count == 2 else { return SeccompProbe(role: role, ioctlRequest: nil) }
        guard parts[1].hasPrefix("ioctl=0x"), let number = UInt(parts[1].dropFirst(8), radix: 16) else { return nil }
        return SeccompProbe(role: role, ioctlRequest: number)
    }

    func fire(on current: ThreadRole) {
        guard current == role, !fired.exchange(true, ordering: .relaxed) else { return }
        let call = ioctlRequest.map { "ioctl 0x\(String($0, radix: 16))" } ?? "getsid"
        Self.say("skiff: seccomp probe: \(role.rawValue) calls \(call)\n")
        let result = ioctlRequest.map { Int(ckvm_ioctl_val(-1, $0, 0)) } ?? Int(getsid(0))
        Self.say("skiff: seccomp probe: \(role.rawValue) survived \(call) (result \(result))\n")
    }

    private static func say(_ line: String) {
        unsafe line.utf8CString.withUnsafeBufferPointer { _ = unsafe write(2, $0.baseAddress, $0.count - 1) }
    }
}
