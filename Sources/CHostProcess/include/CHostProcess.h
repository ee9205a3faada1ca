#ifndef SKIFF_CHOSTPROCESS_H
#define SKIFF_CHOSTPROCESS_H

#include <sys/types.h>

/// Starts `path` with `argv`/`envp` as the leader of a new session (setsid), its stdin,
/// stdout and stderr on the given descriptors, every other descriptor closed, default signal
/// dispositions and an empty signal mask, after writing "0" into each file of `cgroup_procs`
/// (moving the child into those cgroups before it allocates anything). Returns the pid, or -1
/// with `*err` set to the errno of the step that failed and `*step` to its number (1 setsid,
/// 2 cgroup, 3 dup2, 4 exec, 5 fork, 6 pipe).
pid_t chp_spawn(const char *path, char *const argv[], char *const envp[], int in_fd, int out_fd, int err_fd,
                const char *const cgroup_procs[], int n_cgroups, int *err, int *step);

/// pidfd_open(2); -1 and errno on failure.
int chp_pidfd_open(pid_t pid);

/// pidfd_send_signal(2); -1 and errno on failure.
int chp_pidfd_send_signal(int pidfd, int sig);

/// Reaps the child behind `pidfd` (waitid P_PIDFD, WEXITED|WNOHANG). Returns 1 with `*code`
/// (CLD_EXITED, CLD_KILLED, CLD_DUMPED) and `*status` (exit status or signal), 0 when it has
/// not exited, -1 and errno on failure (ECHILD: not a child of this process).
int chp_reap_pidfd(int pidfd, int *code, int *status);

/// Hands the TAP open on `fd` (TUNSETIFF done) to `uid`:`gid` (TUNSETOWNER, TUNSETGROUP), so a
/// process with those ids and no capability can attach to it; with `make_persistent` it is made
/// persistent first (and not left so if the hand-over fails). Returns 0 or -errno.
int chp_tap_hand_over(int fd, int make_persistent, unsigned int uid, unsigned int gid);
/// Makes the TAP open on `fd` persistent or not (not: it goes away when `fd` is closed, unless
/// another process has it open). Returns 0 or -errno.
int chp_tap_set_persistent(int fd, int persistent);

#endif
