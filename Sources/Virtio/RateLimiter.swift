#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Firecracker-style rate limiting for a device: a bytes bucket and an operations bucket,
/// each `size` tokens refilled over `refillNanoseconds` (lazily, by elapsed time), with a
/// one-time burst spent first. A request takes from both buckets or from neither; a request
/// larger than a whole bucket is let through when the bucket is full and leaves it in debt
/// (so a big request waits out its share instead of never passing). Limits can change while
/// the device runs; the buckets then start full.
public final class RateLimiter: Sendable {
    /// One bucket's settings; `size` 0 means unlimited.
    public struct Bucket: Sendable, Equatable {
        public var size: UInt64
        public var oneTimeBurst: UInt64
        public var refillNanoseconds: UInt64

        public init(size: UInt64, oneTimeBurst: UInt64 = 0, refillNanoseconds: UInt64) {
            self.size = size
            self.oneTimeBurst = oneTimeBurst
            self.refillNanoseconds = max(refillNanoseconds, 1)
        }

        /// `perSecond` tokens a second: a bucket of 100 ms worth when that is a whole number,
        /// else of one second's worth.
        public static func rate(_ perSecond: UInt64, burst: UInt64 = 0) -> Bucket {
            perSecond >= 10 && perSecond % 10 == 0
                ? Bucket(size: perSecond / 10, oneTimeBurst: burst, refillNanoseconds: 100_000_000)
                : Bucket(size: perSecond, oneTimeBurst: burst, refillNanoseconds: 1_000_000_000)
        }
    }

    private struct BucketState {
        var settings: Bucket
        /// Tokens available; negative after an oversized request.
        var budget: Int64
        var burst: UInt64
        var lastRefill: UInt64

        init(_ settings: Bucket, now: UInt64) {
            self.settings = settings
            budget = Int64(clamping: settings.size)
            burst = settings.oneTimeBurst
            lastRefill = now
        }

        mutating func refill(now: UInt64) {
            guard now > lastRefill else { return }
            let elapsed = now - lastRefill
            // tokens = elapsed × size / refill, computed without overflow.
            let tokens = Self.scaled(elapsed, by: settings.size, over: settings.refillNanoseconds)
            guard tokens > 0 else { return }
            budget = min(Int64(clamping: settings.size), Self.add(budget, Int64(clamping: tokens)))
            // Advance by the time those tokens took, keeping the remainder for later.
            let used = Self.scaled(tokens, by: settings.refillNanoseconds, over: max(settings.size, 1))
            let (advanced, overflow) = lastRefill.addingReportingOverflow(max(used, 1))
            lastRefill = overflow ? now : min(now, advanced)
        }

        /// Whether `tokens` are there (taking burst first); nanoseconds to wait otherwise.
        func check(_ tokens: UInt64) -> UInt64? {
            if tokens <= burst { return nil }
            let need = Int64(clamping: tokens - burst)
            if budget >= need { return nil }
            let size = Int64(clamping: settings.size)
            // Oversized: pass when the bucket is full.
            if need > size && budget >= size { return nil }
            // Wait until the budget reaches what is needed (at most a full bucket).
            let target = min(need, size)
            let missing: UInt64 = budget >= 0
                ? UInt64(target - budget)
                : UInt64(target).addingReportingOverflow(budget.magnitude).partialValue
            return max(Self.scaled(missing, by: settings.refillNanoseconds, over: max(settings.size, 1)), 1)
        }

        mutating func take(_ tokens: UInt64) {
            let fromBurst = min(tokens, burst)
            burst -= fromBurst
            budget = Self.add(budget, -Int64(clamping: tokens - fromBurst))
        }

        /// value × multiplier / divisor, saturating at UInt64.max.
        static func scaled(_ value: UInt64, by multiplier: UInt64, over divisor: UInt64) -> UInt64 {
            let product = value.multipliedFullWidth(by: multiplier)
            return divisor > product.high ? divisor.dividingFullWidth(product).quotient : UInt64.max
        }

        /// a + b, saturating.
        static func add(_ a: Int64, _ b: Int64) -> Int64 {
            let (sum, overflow) = a.addingReportingOverflow(b)
            return overflow ? (b > 0 ? .max : .min) : sum
        }
    }

    private struct State {
        var bytes: BucketState?
        var operations: BucketState?
    }
    private let state: Mutex<State>

    public convenience init(bytes: Bucket? = nil, operations: Bucket? = nil) {
        self.init(bytes: bytes, operations: operations, at: Self.now())
    }

    init(bytes: Bucket?, operations: Bucket?, at now: UInt64) {
        state = Mutex(State(bytes: bytes.flatMap { $0.size > 0 ? BucketState($0, now: now) : nil },
                            operations: operations.flatMap { $0.size > 0 ? BucketState($0, now: now) : nil }))
    }

    /// Whether the limiter limits anything.
    public var isLimiting: Bool { state.withLock { $0.bytes != nil || $0.operations != nil } }

    /// Replaces both buckets (full again).
    public func update(bytes: Bucket?, operations: Bucket?) {
        let now = Self.now()
        state.withLock { s in
            s.bytes = bytes.flatMap { $0.size > 0 ? BucketState($0, now: now) : nil }
            s.operations = operations.flatMap { $0.size > 0 ? BucketState($0, now: now) : nil }
        }
    }

    /// Takes `bytes` and `operations` tokens if both buckets have them and returns nil;
    /// otherwise takes nothing and returns how many nanoseconds to wait before trying again.
    public func consume(bytes: UInt64, operations: UInt64 = 1) -> UInt64? {
        consume(bytes: bytes, operations: operations, at: Self.now())
    }

    func consume(bytes: UInt64, operations: UInt64, at now: UInt64) -> UInt64? {
        state.withLock { s -> UInt64? in
            s.bytes?.refill(now: now)
            s.operations?.refill(now: now)
            let waits = [s.bytes?.check(bytes), s.operations?.check(operations)].compactMap { $0 }
            if let longest = waits.max() { return longest }
            s.bytes?.take(bytes)
            s.operations?.take(operations)
            return nil
        }
    }

    /// CLOCK_MONOTONIC in nanoseconds (the limiter's clock).
    public static func now() -> UInt64 {
        var ts = timespec()
        unsafe clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
