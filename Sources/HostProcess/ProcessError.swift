#if canImport(Glibc)
import Glibc
#endif

/// A process operation that failed: what was tried and the errno's text.
public struct ProcessError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var errno: Int32

    public init(_ message: String, errno: Int32 = 0) {
        self.message = message
        self.errno = errno
    }

    static func fromErrno(_ what: String, _ code: Int32 = Glibc.errno) -> ProcessError {
        ProcessError(unsafe "\(what): \(String(cString: strerror(code)))", errno: code)
    }

    public var description: String { message }
}
