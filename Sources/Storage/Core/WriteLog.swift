import Synchronization

/// A record of every change an `ImageFile` makes to its file and every `fdatasync`, in the order
/// they were issued, like Linux's dm-log-writes target. A power-loss test replays prefixes of it
/// with the writes after the last completed flush dropped, reordered or torn.
///
/// Recording is keyed by path: `WriteLog.record(path:)` before opening, and every `ImageFile`
/// opened or created at that path appends here until `stop()`. Files opened while nothing is
/// being recorded pay one atomic load at open and a nil check per call.
public final class WriteLog: Sendable {
    /// One logged operation.
    public enum Entry: Sendable, Equatable {
        /// `bytes` written at `offset`.
        case write(offset: UInt64, bytes: [UInt8])
        /// The file's length set to `length`.
        case truncate(length: UInt64)
        /// `length` bytes at `offset` now read as zeros: a hole punched (the file keeps its length)
        /// or a range zeroed (`extendsFile`: the file grows to cover it).
        case zero(offset: UInt64, length: UInt64, extendsFile: Bool)
        /// An `fdatasync` that returned: everything before it is durable.
        case flush
    }

    /// The path being recorded.
    public let path: String
    private let log = Mutex<[Entry]>([])

    private static let active = Mutex<[String: WriteLog]>([:])
    private static let anyActive = Atomic<Bool>(false)

    private init(path: String) { self.path = path }

    /// Starts recording the files opened at `path` from now on.
    public static func record(path: String) -> WriteLog {
        let log = WriteLog(path: path)
        active.withLock {
            $0[path] = log
            anyActive.store(true, ordering: .releasing)
        }
        return log
    }

    /// Stops attaching this log to newly opened files (files already open keep appending).
    public func stop() {
        Self.active.withLock {
            if $0[path] === self { $0[path] = nil }
            Self.anyActive.store(!$0.isEmpty, ordering: .releasing)
        }
    }

    /// The log for a file being opened at `path`, if one is recording.
    static func attached(to path: String) -> WriteLog? {
        guard anyActive.load(ordering: .acquiring) else { return nil }
        return active.withLock { $0[path] }
    }

    /// The operations so far.
    public var entries: [Entry] { log.withLock { $0 } }

    /// How many operations were logged so far (a position to compare later entries with).
    public var count: Int { log.withLock { $0.count } }

    func append(_ entry: Entry) {
        log.withLock { $0.append(entry) }
    }
}
