/// Why a migration stream failed; every case reads as one line.
public enum MigrationError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The connection broke, timed out or could not be made.
    case transport(String)
    /// The peer speaks another protocol or version.
    case version(String)
    /// A frame is malformed: unknown type, bad length, bad contents.
    case malformed(String)
    /// The target refused the VM (its configuration or host does not fit).
    case refused(String)
    /// The peer gave up and said why.
    case aborted(String)
    /// The migration was cancelled on this side.
    case cancelled

    public var description: String {
        switch self {
        case .transport(let s): return "migration connection: \(s)"
        case .version(let s): return "migration protocol: \(s)"
        case .malformed(let s): return "malformed migration stream: \(s)"
        case .refused(let s): return "the target refused the VM: \(s)"
        case .aborted(let s): return "the peer abandoned the migration: \(s)"
        case .cancelled: return "the migration was cancelled"
        }
    }
}
