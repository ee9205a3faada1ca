#define _GNU_SOURCE
#include "CHostProcess.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* Only async-signal-safe calls between fork and exec: the parent has many threads. */
static void child_fail(int pipe_fd, int step) {
    int report[2] = {errno, step};
    ssize_t ignored = write(pipe_fd, report, sizeof report);
    (void)ignored;
    _exit(127);
}

pid_t chp_spawn(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd,
                const char *const cgroup_procs[], int n_cgroups, int *err, int *step) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        *err = errno;
        *step = 6;
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *err = errno;
        *step = 5;
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return -1;
    }
    if (pid == 0) {
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (int s = 1; s < 65; s++) {
            if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
        }
        if (setsid() < 0) child_fail(pipe_fds[1], 1);
        for (int i = 0; i < n_cgroups; i++) {
            int fd = open(cgroup_procs[i], O_WRONLY | O_CLOEXEC);
            if (fd < 0) child_fail(pipe_fds[1], 2);
            if (write(fd, "0", 1) != 1) child_fail(pipe_fds[1], 2);
            close(fd);
        }
        /* Move the descriptors above 2 first so dup2 never clobbers one still needed. */
        int fds[3] = {in_fd, out_fd, err_fd};
        for (int i = 0; i < 3; i++) {
            int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (moved < 0) child_fail(pipe_fds[1], 3);
            fds[i] = moved;
        }
        for (int i = 0; i < 3; i++) {
            if (dup2(fds[i], i) < 0) child_fail(pipe_fds[1], 3);
        }
        /* Everything else closes on exec (CLOEXEC) or here. */
        int first = 3;
        if (syscall(SYS_close_range, (unsigned)first, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) != 0) {
            for (int fd = first; fd < 4096; fd++) {
                if (fd != pipe_fds[1]) fcntl(fd, F_SETFD, FD_CLOEXEC);
            }
        }
        execve(path, argv, envp);
        child_fail(pipe_fds[1], 4);
    }
    close(pipe_fds[1]);
    int report[2];
    ssize_t n;
    do {
        n = read(pipe_fds[0], report, sizeof report);
    } while (n < 0 && errno == EINTR);
    close(pipe_fds[0]);
    if (n == (ssize_t)sizeof report) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *err = report[0];
        *step = report[1];
        return -1;
    }
    return pid;
}

int chp_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int chp_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int chp_reap_pidfd(int pidfd, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    do {
        r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return -1;
    if (info.si_pid == 0) return 0;
    *code = info.si_code;
    *status = info.si_status;
    return 1;
}

#include <linux/if_tun.h>
#include <sys/ioctl.h>

int chp_tap_set_persistent(int fd, int persistent) {
    return ioctl(fd, TUNSETPERSIST, persistent ? 1UL : 0UL) < 0 ? -errno : 0;
}

int chp_tap_hand_over(int fd, int make_persistent, unsigned int uid, unsigned int gid) {
    if (make_persistent && ioctl(fd, TUNSETPERSIST, 1UL) < 0) return -errno;
    if (ioctl(fd, TUNSETOWNER, (unsigned long)uid) < 0 || ioctl(fd, TUNSETGROUP, (unsigned long)gid) < 0) {
        int e = errno;
        if (make_persistent) (void)ioctl(fd, TUNSETPERSIST, 0UL);
        return -e;
    }
    return 0;
}
