import KVM
import GuestMemory
import SystemExtras

/// A failure to build or run a VM, with a message meant for the user.
public struct VMError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    static func kvm(_ e: KVMError) -> VMError { VMError(e.description) }
    static func memory(_ e: GuestMemoryError) -> VMError { VMError(e.description) }
}
