import KVM
import GuestMemory
import SystemExtras

/// A failure to build or run a VM, with a message meant for the user.
public struct VMError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure, for programs (the control API's error codes).
    public enum Kind: Sendable, Equatable {
        /// Something was tried and failed.
        case failed
        /// The VM is in the wrong state for the request.
        case invalidState
        /// The VM cannot do this (e.g. it has no such device).
        case unsupported
        /// A value given is out of range or malformed.
        case invalidRequest
    }
    public let message: String
    public let kind: Kind
    public init(_ message: String, kind: Kind = .failed) {
        self.message = message
        self.kind = kind
    }
    public var description: String { message }

    static func kvm(_ e: KVMError) -> VMError { VMError(e.description) }
    static func memory(_ e: GuestMemoryError) -> VMError { VMError(e.description) }
}
