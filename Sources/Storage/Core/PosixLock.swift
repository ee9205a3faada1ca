import Glibc

/// A plain pthread mutex for state shared between the device threads of one image.
@safe package final class PosixLock: @unchecked Sendable {
    // SAFETY: the mutex lives in its own allocation that never moves and is freed only in deinit.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        unsafe mutex = .allocate(capacity: 1)
        unsafe mutex.initialize(to: pthread_mutex_t())
        unsafe pthread_mutex_init(mutex, nil)
    }

    deinit {
        unsafe pthread_mutex_destroy(mutex)
        unsafe mutex.deallocate()
    }

    package func withLock<T>(_ body: () throws -> T) rethrows -> T {
        unsafe pthread_mutex_lock(mutex)
        defer { unsafe pthread_mutex_unlock(mutex) }
        return try body()
    }
}
