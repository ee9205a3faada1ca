#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call: the operation that failed and the errno it returned.
public struct SystemError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The errno value.
    public let code: Int32
    /// What was being done, e.g. "KVM_CREATE_VM" or "open /dev/kvm".
    public let operation: String

    public init(_ operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    /// Captures the calling thread's current errno.
    public static func current(_ operation: String) -> SystemError {
        SystemError(operation, code: errno)
    }

    /// The errno's text, e.g. "Permission denied".
    public var message: String { unsafe String(cString: strerror(code)) }

    public var description: String { "\(operation): \(message) (errno \(code))" }
}

/// Runs a system call that returns -1 and sets errno on failure, retrying on EINTR.
@inline(__always)
public func retryingOnInterrupt<T: SignedInteger>(_ operation: @autoclosure () -> String, _ call: () -> T) throws(SystemError) -> T {
    while true {
        let result = call()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(operation(), code: code)
    }
}
