/* Linux system headers that the Swift Glibc module does not export, and wrappers for
 * variadic or macro-only calls (open, fcntl, SIGRTMIN). */
#ifndef CSYSTEM_H
#define CSYSTEM_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <linux/memfd.h>
#include <stdint.h>

int csystem_open(const char *path, int flags, unsigned int mode);
int csystem_fcntl_getfl(int fd);
int csystem_fcntl_setfl(int fd, int flags);
int csystem_sigrtmin(void);
/// 1 in a build instrumented by AddressSanitizer or ThreadSanitizer (the C targets are
/// compiled with the same -fsanitize as the Swift ones), else 0.
int csystem_sanitizer_build(void);
/* Installs a no-op handler for signo without SA_RESTART, so blocking calls return EINTR. */
int csystem_install_noop_handler(int signo);
int csystem_memfd_create(const char *name, unsigned int flags);
/* A non-blocking, close-on-exec CLOCK_MONOTONIC timerfd, or -errno. */
int csystem_timerfd_create(void);
/* Arms the timer (first expiry after initial_ns, then every interval_ns; 0 and 0 disarm). */
int csystem_timerfd_set(int fd, uint64_t initial_ns, uint64_t interval_ns);
/* Opens (creating, mode 0640) `path` for appending, close-on-exec; returns the fd or -errno. */
int csystem_open_append(const char *path);
int csystem_gettid(void);
/* Sends signo to the thread `tid` of this process. */
int csystem_tgkill(int tid, int signo);
/* Names the calling thread (at most 15 characters). */
int csystem_set_thread_name(const char *name);
/* A non-blocking, close-on-exec signalfd readable while one of `signos` (count of them) is
 * pending; they must be blocked. Reading it is not needed to see one: poll shows it and the
 * signal stays pending for sigwait. Returns the fd or -errno. */
int csystem_signalfd(const int *signos, int count);
/* Unblocks signo for the calling thread (threads inherit the creator's mask). */
int csystem_unblock_signal(int signo);
/* Atomically ORs bits into the byte at p (page-table accessed/dirty bits shared with other vCPUs). */
void csystem_atomic_or8(uint8_t *p, uint8_t bits);
/* 64-bit atomics on words of a bitmap shared between threads (dirty-page tracking). */
static inline void csystem_atomic_or64(uint64_t *p, uint64_t bits) { __atomic_fetch_or(p, bits, __ATOMIC_RELAXED); }
static inline uint64_t csystem_atomic_exchange64(uint64_t *p, uint64_t value) { return __atomic_exchange_n(p, value, __ATOMIC_ACQ_REL); }
static inline uint64_t csystem_atomic_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
/* Opens a pseudo-terminal master, unlocks it and writes the slave path into name; returns the fd or -1. */
int csystem_open_pty(char *name, unsigned long size);

/* --- seccomp (Sources/CSkiffSystem/seccomp.c) --- */
/* Sets no_new_privs on the calling thread (threads created later inherit it); 0 or -errno. */
int csystem_set_no_new_privs(void);
/* Installs a classic BPF program (`count` struct sock_filter instructions) as a seccomp
 * filter of the calling thread; 0 or -errno. */
int csystem_seccomp_install(const void *instructions, unsigned short count);

/* A system call a SECCOMP_RET_TRAP filter refused, as the SIGSYS recorder saw it. */
#define CSYSTEM_SIGSYS_SLOTS 256
struct csystem_sigsys_record {
    int valid;
    int number;
    int tag;
    uint64_t arguments[6];
};
/* Tags the calling thread's records (the thread role's index). */
void csystem_set_thread_tag(int tag);
/* Handles SIGSYS by recording the refused call and returning -EPERM from it. */
int csystem_install_sigsys_recorder(void);
/* Copies out up to `capacity` records; returns how many. */
int csystem_sigsys_records(struct csystem_sigsys_record *out, int capacity);
/* Refusals seen so far (records past CSYSTEM_SIGSYS_SLOTS are counted, not kept). */
unsigned int csystem_sigsys_count(void);

#endif
