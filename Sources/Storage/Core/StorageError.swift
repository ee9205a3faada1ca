import Glibc




/// Every failure the storage layer reports. Messages are short and name the file involved.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed; `errno` is the raw error number.
    case system(operation: String, path: String, errno: Int32)
    /// The host file system is full (ENOSPC or EDQUOT).
    case noSpace(path: String)
    /// A request reaches past the end of the virtual disk.
    case outOfRange(offset: UInt64, length: UInt64, size: UInt64)
    /// A write, discard or resize on a device opened read-only.
    case readOnly(path: String)
    /// Another process holds a conflicting lock on the image.
    case locked(path: String)
    /// The file is not a valid image of the requested format (hostile or damaged input).
    case invalidImage(path: String, reason: String)
    /// A valid image that uses a feature this implementation does not support.
    case unsupported(path: String, reason: String)
    /// The image metadata is inconsistent, or the image is marked corrupt.
    case corrupt(path: String, reason: String)
    /// An earlier flush failed; data written since the last good flush may be lost, so every flush fails.
    case flushFailed(path: String, errno: Int32)
    /// A bad argument from the caller (size, format name, option).
    case invalidArgument(String)
    /// The content-addressed store reports a problem.
    case store(String)

    /// The errno a device model should report for this error (EIO, ENOSPC, EROFS, ...).
    public var errno: Int32 {
        switch self {
        case .system(_, _, let code): return code
        case .noSpace: return ENOSPC
        case .outOfRange: return EINVAL
        case .readOnly: return EROFS
        case .locked: return EAGAIN
        case .invalidImage, .corrupt, .flushFailed, .store: return EIO
        case .unsupported: return ENOTSUP
        case .invalidArgument: return EINVAL
        }
    }

    public var description: String {
        switch self {
        case .system(let operation, let path, let code):
            return "\(path): \(operation) failed: \(StorageError.errnoText(code))"
        case .noSpace(let path):
            return "\(path): no space left on the host file system"
        case .outOfRange(let offset, let length, let size):
            return "request of \(length) bytes at offset \(offset) is outside the disk (size \(size))"
        case .readOnly(let path):
            return "\(path): image is open read-only"
        case .locked(let path):
            return "\(path): image is in use by another process (lock held)"
        case .invalidImage(let path, let reason):
            return "\(path): invalid image: \(reason)"
        case .unsupported(let path, let reason):
            return "\(path): unsupported: \(reason)"
        case .corrupt(let path, let reason):
            return "\(path): image is corrupt: \(reason)"
        case .flushFailed(let path, let code):
            return "\(path): an earlier flush failed (\(StorageError.errnoText(code))); the image needs checking"
        case .invalidArgument(let text):
            return text
        case .store(let text):
            return "store: \(text)"
        }
    }

    static func errnoText(_ code: Int32) -> String {
        guard let text = unsafe strerror(code) else { return "errno \(code)" }
        return unsafe String(cString: text)
    }

    /// Builds an error from the current `errno`, mapping ENOSPC/EDQUOT to `.noSpace`.
    package static func fromErrno(_ operation: String, path: String, code: Int32 = Glibc.errno) -> StorageError {
        if code == ENOSPC || code == EDQUOT { return .noSpace(path: path) }
        return .system(operation: operation, path: path, errno: code)
    }
}
