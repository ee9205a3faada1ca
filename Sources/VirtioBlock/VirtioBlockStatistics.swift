import Synchronization

/// Counters of one virtio-blk device (for tests, benchmarks and diagnostics).
public final class VirtioBlockStatistics: Sendable {
    /// A snapshot of the counters.
    public struct Counts: Sendable, Equatable {
        /// Chains taken from the queue.
        public var requests: UInt64 = 0
        /// Chains without a writable status byte (completed with used length 0).
        public var malformed: UInt64 = 0
        /// Requests completed with IOERR.
        public var ioErrors: UInt64 = 0
        /// Requests completed with UNSUPP.
        public var unsupported: UInt64 = 0
        /// IN / OUT requests (whatever their outcome).
        public var reads: UInt64 = 0
        public var writes: UInt64 = 0
        /// Times the rate limiter held a request back.
        public var throttled: UInt64 = 0
        public var bytesRead: UInt64 = 0
        public var bytesWritten: UInt64 = 0
        /// FLUSH requests whose flush() returned.
        public var flushes: UInt64 = 0
        public var discards: UInt64 = 0
        public var writeZeroes: UInt64 = 0
    }

    private let state = Mutex(Counts())

    public init() {}

    /// The current values.
    public var counts: Counts { state.withLock { $0 } }

    func count(_ field: WritableKeyPath<Counts, UInt64>) {
        state.withLock { $0[keyPath: field] &+= 1 }
    }

    func add(_ field: WritableKeyPath<Counts, UInt64>, _ value: UInt64) {
        state.withLock { $0[keyPath: field] &+= value }
    }
}
