#define _GNU_SOURCE
#include "csystem.h"
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

int csystem_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : -errno; }

int csystem_seccomp_install(const void *instructions, unsigned short count) {
    struct sock_fprog program;
    memset(&program, 0, sizeof(program));
    program.len = count;
    program.filter = (struct sock_filter *)instructions;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0 ? 0 : -errno;
}

/* The trap recorder: a SIGSYS handler (async-signal-safe: a fixed array, atomics, no calls)
 * that notes the refused call and makes it return -EPERM, so a test process survives. */
static struct csystem_sigsys_record records[CSYSTEM_SIGSYS_SLOTS];
static unsigned int record_count;
static __thread int thread_tag = -1;

void csystem_set_thread_tag(int tag) { thread_tag = tag; }

static void sigsys_handler(int signo, siginfo_t *info, void *context) {
    (void)signo;
    ucontext_t *uc = context;
    greg_t *g = uc->uc_mcontext.gregs;
    unsigned int i = __atomic_fetch_add(&record_count, 1, __ATOMIC_RELAXED);
    if (i < CSYSTEM_SIGSYS_SLOTS) {
        records[i].number = info->si_syscall;
        records[i].tag = thread_tag;
        records[i].arguments[0] = (uint64_t)g[REG_RDI];
        records[i].arguments[1] = (uint64_t)g[REG_RSI];
        records[i].arguments[2] = (uint64_t)g[REG_RDX];
        records[i].arguments[3] = (uint64_t)g[REG_R10];
        records[i].arguments[4] = (uint64_t)g[REG_R8];
        records[i].arguments[5] = (uint64_t)g[REG_R9];
        __atomic_store_n(&records[i].valid, 1, __ATOMIC_RELEASE);
    }
    g[REG_RAX] = -EPERM;
}

int csystem_install_sigsys_recorder(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = sigsys_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO;
    return sigaction(SIGSYS, &sa, NULL) == 0 ? 0 : -errno;
}

int csystem_sigsys_records(struct csystem_sigsys_record *out, int capacity) {
    unsigned int total = __atomic_load_n(&record_count, __ATOMIC_RELAXED);
    int n = 0;
    for (unsigned int i = 0; i < total && i < CSYSTEM_SIGSYS_SLOTS && n < capacity; i++) {
        if (!__atomic_load_n(&records[i].valid, __ATOMIC_ACQUIRE)) continue;
        out[n++] = records[i];
    }
    return n;
}

unsigned int csystem_sigsys_count(void) { return __atomic_load_n(&record_count, __ATOMIC_RELAXED); }
