/* ThreadSanitizer builds only (scripts/sanitize.sh thread): tells TSan where Synchronization.Mutex
 * takes and releases its lock on Linux when TSan cannot see it.
 *
 * Mutex's fast paths are atomics inlined into Skiff's (instrumented) code, which TSan sees. Its
 * slow paths live in the uninstrumented libswiftSynchronization.so: they spin with atomics TSan
 * does not see and then call FUTEX_LOCK_PI / FUTEX_UNLOCK_PI, where the kernel hands the lock
 * from the unlocking thread straight to a waiter. Either way the new owner got the lock without
 * an operation TSan saw, so TSan found no happens-before edge and reported every access a
 * contended Mutex orders as a race (docs/sanitizers.md has a two-thread program showing it).
 *
 * These definitions interpose the three slow-path entry points the inlined fast paths call
 * (the executable's definition wins over the library's): each calls the library's own and adds
 * exactly the missing edge, an acquire on the lock word after _lockSlow (and after a successful
 * _tryLockSlow) and a release on it before _unlockSlow. Accesses the lock does not order are still
 * reported. `self` (the lock word's address) arrives in the Swift self register, which clang
 * calls swift_context. Nothing here exists in other builds. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>

void __tsan_acquire(void *addr);
void __tsan_release(void *addr);

#define LOCK_SLOW "$s15Synchronization12_MutexHandleV9_lockSlowyys6UInt32VF"
#define TRYLOCK_SLOW "$s15Synchronization12_MutexHandleV12_tryLockSlowSbyF"
#define UNLOCK_SLOW "$s15Synchronization12_MutexHandleV11_unlockSlowyyF"

typedef __attribute__((swiftcall)) void (*csystem_lock_slow_fn)(uint32_t, void *__attribute__((swift_context)));
typedef __attribute__((swiftcall)) bool (*csystem_trylock_slow_fn)(void *__attribute__((swift_context)));
typedef __attribute__((swiftcall)) void (*csystem_unlock_slow_fn)(void *__attribute__((swift_context)));

/* The library's definition of `name`, looked up once. */
__attribute__((no_sanitize("thread")))
static void *csystem_next_symbol(const char *name, void **cache) {
    void *f = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (!f) {
        f = dlsym(RTLD_NEXT, name);
        __atomic_store_n(cache, f, __ATOMIC_RELEASE);
    }
    return f;
}

__attribute__((swiftcall, no_sanitize("thread")))
void csystem_mutex_lock_slow(uint32_t self_id, void *__attribute__((swift_context)) handle) __asm__(LOCK_SLOW);
__attribute__((swiftcall, no_sanitize("thread")))
void csystem_mutex_lock_slow(uint32_t self_id, void *__attribute__((swift_context)) handle) {
    static void *cache;
    ((csystem_lock_slow_fn)csystem_next_symbol(LOCK_SLOW, &cache))(self_id, handle);
    __tsan_acquire(handle);
}

__attribute__((swiftcall, no_sanitize("thread")))
bool csystem_mutex_trylock_slow(void *__attribute__((swift_context)) handle) __asm__(TRYLOCK_SLOW);
__attribute__((swiftcall, no_sanitize("thread")))
bool csystem_mutex_trylock_slow(void *__attribute__((swift_context)) handle) {
    static void *cache;
    bool taken = ((csystem_trylock_slow_fn)csystem_next_symbol(TRYLOCK_SLOW, &cache))(handle);
    if (taken) __tsan_acquire(handle);
    return taken;
}

__attribute__((swiftcall, no_sanitize("thread")))
void csystem_mutex_unlock_slow(void *__attribute__((swift_context)) handle) __asm__(UNLOCK_SLOW);
__attribute__((swiftcall, no_sanitize("thread")))
void csystem_mutex_unlock_slow(void *__attribute__((swift_context)) handle) {
    static void *cache;
    __tsan_release(handle);
    ((csystem_unlock_slow_fn)csystem_next_symbol(UNLOCK_SLOW, &cache))(handle);
}
#endif
#endif
