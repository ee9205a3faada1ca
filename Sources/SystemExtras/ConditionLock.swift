#if canImport(Glibc)
import Glibc
#endif

/// A value guarded by a mutex with a condition variable: threads wait until the value
/// satisfies a predicate, and every change through `update` wakes them to look again.
/// (Swift's `Mutex` has no waiting; vCPU parking and pause hand-shakes need it.)
@safe public final class ConditionLock<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched with `mutex` held.
    private var value: Value
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init(_ initial: Value) {
        value = initial
        unsafe pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        unsafe pthread_condattr_init(&attributes)
        unsafe pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        unsafe pthread_cond_init(condition, &attributes)
        unsafe pthread_condattr_destroy(&attributes)
    }

    deinit {
        unsafe pthread_cond_destroy(condition)
        unsafe pthread_mutex_destroy(mutex)
        unsafe mutex.deallocate()
        unsafe condition.deallocate()
    }

    /// Reads the value.
    public func read<R>(_ body: (Value) throws -> R) rethrows -> R {
        unsafe pthread_mutex_lock(mutex)
        defer { unsafe pthread_mutex_unlock(mutex) }
        return try body(value)
    }

    /// Changes the value and wakes every waiter.
    @discardableResult
    public func update<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        unsafe pthread_mutex_lock(mutex)
        defer {
            unsafe pthread_cond_broadcast(condition)
            unsafe pthread_mutex_unlock(mutex)
        }
        return try body(&value)
    }

    /// Waits until `predicate` holds, then runs `body` on the value (still locked) and wakes
    /// the other waiters. With `timeout` (seconds) it gives up and returns nil when the time
    /// passes first.
    public func wait<R>(until predicate: (Value) -> Bool, timeout: Double? = nil, then body: (inout Value) -> R) -> R? {
        unsafe pthread_mutex_lock(mutex)
        defer { unsafe pthread_mutex_unlock(mutex) }
        var deadline = timespec()
        if let timeout {
            unsafe clock_gettime(CLOCK_MONOTONIC, &deadline)
            let whole = Int(max(timeout, 0))
            var nanos = deadline.tv_nsec + Int((max(timeout, 0) - Double(whole)) * 1e9)
            deadline.tv_sec += whole + nanos / 1_000_000_000
            nanos %= 1_000_000_000
            deadline.tv_nsec = nanos
        }
        while !predicate(value) {
            if timeout != nil {
                if unsafe pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT && !predicate(value) { return nil }
            } else {
                unsafe pthread_cond_wait(condition, mutex)
            }
        }
        let result = body(&value)
        unsafe pthread_cond_broadcast(condition)
        return result
    }
}
