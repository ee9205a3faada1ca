/* ThreadSanitizer builds only (scripts/sanitize.sh thread): tells TSan about the lock hand-over
 * that Synchronization.Mutex leaves to the kernel on Linux.
 *
 * Mutex takes and releases its lock word with atomics TSan sees, but under contention it calls
 * FUTEX_LOCK_PI / FUTEX_UNLOCK_PI, and then the kernel passes ownership from the unlocking thread
 * straight to a waiter: the waiter returns owning the lock without an atomic operation that reads
 * the unlocker's store, so TSan sees no happens-before edge and reports every access the lock
 * orders as a race (docs/sanitizers.md shows the two-thread program that reproduces it). This
 * wrapper around libc's syscall() adds exactly that edge: a release on the lock word before
 * FUTEX_UNLOCK_PI and an acquire after a FUTEX_LOCK_PI or FUTEX_TRYLOCK_PI that took the lock.
 * Accesses the lock does not order are still reported. Nothing here exists in other builds. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>

void __tsan_acquire(void *addr);
void __tsan_release(void *addr);

typedef long (*csystem_syscall_fn)(long, ...);

/* Whether `pc` is in Synchronization's _MutexHandle (its slow paths make the futex calls). The
 * runtime's own locks use PI futexes too, also on threads TSan has already torn down; those
 * order nothing TSan checks and are left alone. */
__attribute__((no_sanitize("thread")))
static int csystem_called_from_mutex(void *pc) {
    Dl_info info;
    return dladdr(pc, &info) && info.dli_sname && strstr(info.dli_sname, "12_MutexHandle");
}

/* Not instrumented itself: every other system call passes straight through. */
__attribute__((no_sanitize("thread")))
long syscall(long number, ...) {
    static csystem_syscall_fn next;
    csystem_syscall_fn real = __atomic_load_n(&next, __ATOMIC_ACQUIRE);
    if (!real) {
        real = (csystem_syscall_fn)dlsym(RTLD_NEXT, "syscall");
        __atomic_store_n(&next, real, __ATOMIC_RELEASE);
    }
    /* Like glibc's own syscall(): six argument registers, whatever the call uses. */
    va_list ap;
    va_start(ap, number);
    long a0 = va_arg(ap, long), a1 = va_arg(ap, long), a2 = va_arg(ap, long);
    long a3 = va_arg(ap, long), a4 = va_arg(ap, long), a5 = va_arg(ap, long);
    va_end(ap);
    if (number != SYS_futex) return real(number, a0, a1, a2, a3, a4, a5);
    int op = (int)a1 & FUTEX_CMD_MASK;
    int unlock = op == FUTEX_UNLOCK_PI;
    int lock = op == FUTEX_LOCK_PI || op == FUTEX_LOCK_PI2 || op == FUTEX_TRYLOCK_PI;
    if (!(lock || unlock) || !csystem_called_from_mutex(__builtin_return_address(0))) return real(number, a0, a1, a2, a3, a4, a5);
    if (unlock) __tsan_release((void *)a0);
    long r = real(number, a0, a1, a2, a3, a4, a5);
    if (lock && r == 0) __tsan_acquire((void *)a0);
    return r;
}
#endif
#endif
