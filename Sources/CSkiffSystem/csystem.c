#define _GNU_SOURCE
#include "csystem.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

int csystem_open(const char *path, int flags, unsigned int mode) { return open(path, flags, (mode_t)mode); }
int csystem_fcntl_getfl(int fd) { return fcntl(fd, F_GETFL); }
int csystem_fcntl_setfl(int fd, int flags) { return fcntl(fd, F_SETFL, flags); }

int csystem_sigrtmin(void) { return SIGRTMIN; }

int csystem_sanitizer_build(void) {
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return 1;
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return 1;
#else
    return 0;
#endif
}

static void noop_handler(int signo) { (void)signo; }

int csystem_install_noop_handler(int signo) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = noop_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    return sigaction(signo, &sa, NULL);
}

int csystem_memfd_create(const char *name, unsigned int flags) { return (int)syscall(SYS_memfd_create, name, flags); }
int csystem_gettid(void) { return (int)syscall(SYS_gettid); }
int csystem_tgkill(int tid, int signo) { return (int)syscall(SYS_tgkill, getpid(), tid, signo); }

#include <pthread.h>
int csystem_set_thread_name(const char *name) { return pthread_setname_np(pthread_self(), name); }
int csystem_unblock_signal(int signo) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}
#include <sys/signalfd.h>
int csystem_signalfd(const int *signos, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < count; i++) sigaddset(&set, signos[i]);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}
void csystem_atomic_or8(uint8_t *p, uint8_t bits) { __atomic_fetch_or(p, bits, __ATOMIC_SEQ_CST); }
#include <stdlib.h>
int csystem_open_pty(char *name, unsigned long size) {
    int fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (fd < 0) return -1;
    if (grantpt(fd) != 0 || unlockpt(fd) != 0 || ptsname_r(fd, name, size) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int csystem_open_append(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

#include <sys/timerfd.h>

int csystem_timerfd_create(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int csystem_timerfd_set(int fd, uint64_t initial_ns, uint64_t interval_ns) {
    struct itimerspec its;
    its.it_value.tv_sec = (time_t)(initial_ns / 1000000000ULL);
    its.it_value.tv_nsec = (long)(initial_ns % 1000000000ULL);
    its.it_interval.tv_sec = (time_t)(interval_ns / 1000000000ULL);
    its.it_interval.tv_nsec = (long)(interval_ns % 1000000000ULL);
    return timerfd_settime(fd, 0, &its, NULL) < 0 ? -errno : 0;
}
