#define _GNU_SOURCE
#include "cskiffjail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <grp.h>
#include <unistd.h>

const int SKJ_CLONE_NEWNS = CLONE_NEWNS;
const int SKJ_CLONE_NEWPID = CLONE_NEWPID;
const int SKJ_CLONE_NEWIPC = CLONE_NEWIPC;
const int SKJ_CLONE_NEWUTS = CLONE_NEWUTS;
const int SKJ_CLONE_NEWNET = CLONE_NEWNET;

const unsigned long SKJ_MS_BIND = MS_BIND;
const unsigned long SKJ_MS_REC = MS_REC;
const unsigned long SKJ_MS_PRIVATE = MS_PRIVATE;
const unsigned long SKJ_MS_REMOUNT = MS_REMOUNT;
const unsigned long SKJ_MS_RDONLY = MS_RDONLY;
const unsigned long SKJ_MS_NOSUID = MS_NOSUID;
const unsigned long SKJ_MS_NODEV = MS_NODEV;
const unsigned long SKJ_MS_NOEXEC = MS_NOEXEC;

static int result(long r) { return r < 0 ? -errno : (int)r; }

int skj_fork(void) { return result(fork()); }
int skj_unshare(int flags) { return result(unshare(flags)); }
int skj_setns(int fd, int nstype) { return result(setns(fd, nstype)); }
int skj_pivot_root(const char *new_root, const char *put_old) { return result(syscall(SYS_pivot_root, new_root, put_old)); }

int skj_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data) {
    return result(mount(source, target, fstype, flags, data));
}

int skj_umount_detach(const char *target) { return result(umount2(target, MNT_DETACH)); }

int skj_mknod_char(const char *path, unsigned int permissions, unsigned int major, unsigned int minor) {
    return result(mknod(path, S_IFCHR | (permissions & 07777), makedev(major, minor)));
}

unsigned int skj_major(uint64_t rdev) { return major((dev_t)rdev); }
unsigned int skj_minor(uint64_t rdev) { return minor((dev_t)rdev); }

int skj_sethostname(const char *name) { return result(sethostname(name, strlen(name))); }
int skj_clear_groups(void) { return result(setgroups(0, NULL)); }
int skj_setresuid(uid_t uid) { return result(setresuid(uid, uid, uid)); }
int skj_setresgid(gid_t gid) { return result(setresgid(gid, gid, gid)); }

/* The kernel rejects numbers past its last capability with EINVAL; 64 is beyond any. */
int skj_drop_bounding_set(void) {
    int dropped = 0;
    for (int cap = 0; cap < 64; cap++) {
        int present = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (present < 0) {
            if (errno == EINVAL) break;
            return -errno;
        }
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) return -errno;
        dropped++;
    }
    return dropped;
}

int skj_bounding_set_nonempty(void) {
    for (int cap = 0; cap < 64; cap++) {
        int present = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (present < 0) {
            if (errno == EINVAL) return 0;
            return -errno;
        }
        if (present) return 1;
    }
    return 0;
}

int skj_clear_capabilities(void) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -errno;
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    return result(syscall(SYS_capset, &header, data));
}

int skj_capabilities_nonempty(void) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &header, data) < 0) return -errno;
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
        if (data[i].effective || data[i].permitted || data[i].inheritable) return 1;
    }
    return 0;
}

int skj_set_no_new_privs(void) { return result(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)); }
int skj_set_parent_death_signal(int signo) { return result(prctl(PR_SET_PDEATHSIG, signo, 0, 0, 0)); }

static int close_range_of(unsigned int first, unsigned int last) {
    if (first > last) return 0;
    if (syscall(SYS_close_range, first, last, 0) == 0) return 0;
    if (errno != ENOSYS) return -errno;
    /* Kernels before 5.9: close what /proc/self/fd lists, or every number up to the limit. */
    DIR *dir = opendir("/proc/self/fd");
    if (dir != NULL) {
        int own = dirfd(dir);
        struct dirent *entry;
        while ((entry = readdir(dir)) != NULL) {
            char *end;
            long fd = strtol(entry->d_name, &end, 10);
            if (*end != 0 || entry->d_name[0] == 0 || fd == own) continue;
            if ((unsigned long)fd >= first && (unsigned long)fd <= last) close((int)fd);
        }
        closedir(dir);
        return 0;
    }
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0) max = 1024;
    for (long fd = first; fd < max && (unsigned long)fd <= last; fd++) close((int)fd);
    return 0;
}

int skj_close_from(int first, int keep) {
    if (keep < first) return close_range_of((unsigned int)first, ~0U);
    int r = close_range_of((unsigned int)first, (unsigned int)keep - 1);
    if (r < 0) return r;
    return close_range_of((unsigned int)keep + 1, ~0U);
}

int skj_set_cloexec(int fd, int on) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -errno;
    flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
    return result(fcntl(fd, F_SETFD, flags));
}

int skj_reset_signals(void) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    for (int signo = 1; signo < NSIG; signo++) {
        if (signo == SIGKILL || signo == SIGSTOP) continue;
        /* glibc reserves a few real-time signals for itself: EINVAL there is expected. */
        if (sigaction(signo, &action, NULL) < 0 && errno != EINVAL) return -errno;
    }
    sigset_t none;
    sigemptyset(&none);
    return result(sigprocmask(SIG_SETMASK, &none, NULL));
}

int skj_install_handler(int signo, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    if (sigaction(signo, &action, NULL) < 0) return -errno;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    return result(sigprocmask(SIG_UNBLOCK, &set, NULL));
}

int skj_pipe(int fds[2]) { return result(pipe2(fds, O_CLOEXEC)); }
