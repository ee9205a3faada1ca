/// Why a snapshot cannot be written or loaded; every case reads as one line.
public enum SnapshotError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A file is missing, unreadable or cannot be written.
    case io(path: String, reason: String)
    /// The state file is not a Skiff snapshot.
    case notASnapshot(path: String)
    /// Written by another format version.
    case version(found: UInt32, supported: UInt32)
    /// The file ends early, or a length points past its end.
    case truncated(path: String, what: String)
    /// A length or count is larger than the format allows.
    case tooLarge(what: String, size: UInt64, limit: UInt64)
    /// A section's checksum does not match its contents.
    case checksum(section: String)
    /// A section is unknown, repeated or missing.
    case sections(String)
    /// A section's contents cannot be decoded or fail validation.
    case invalid(section: String, reason: String)
    /// The snapshot does not fit this VM or host (memory size, devices, CPU features).
    case incompatible(String)

    public var description: String {
        switch self {
        case .io(let path, let reason): return "\(path): \(reason)"
        case .notASnapshot(let path): return "\(path) is not a Skiff snapshot state file"
        case .version(let found, let supported):
            return "snapshot format version \(found) is not supported (this Skiff reads version \(supported))"
        case .truncated(let path, let what): return "\(path) is truncated (\(what))"
        case .tooLarge(let what, let size, let limit): return "\(what) is \(size) bytes, more than the limit of \(limit)"
        case .checksum(let section): return "snapshot section '\(section)' is corrupt (checksum mismatch)"
        case .sections(let reason): return "snapshot sections: \(reason)"
        case .invalid(let section, let reason): return "snapshot section '\(section)': \(reason)"
        case .incompatible(let reason): return "the snapshot does not fit: \(reason)"
        }
    }
}
