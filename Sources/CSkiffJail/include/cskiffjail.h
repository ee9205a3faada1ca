/* The Linux calls the jailer needs and the Swift Glibc module does not export, or exports
 * only as variadic or macro forms: namespaces, pivot_root, mounts, device numbers,
 * capabilities, prctl, close_range, fork. Every function returns 0 (or a result) on
 * success and -errno on failure unless it says otherwise. */
#ifndef CSKIFFJAIL_H
#define CSKIFFJAIL_H

#include <stdint.h>
#include <sys/types.h>

/* Namespace flags for skj_unshare and skj_setns. */
extern const int SKJ_CLONE_NEWNS;
extern const int SKJ_CLONE_NEWPID;
extern const int SKJ_CLONE_NEWIPC;
extern const int SKJ_CLONE_NEWUTS;
extern const int SKJ_CLONE_NEWNET;

/* Mount flags for skj_mount. */
extern const unsigned long SKJ_MS_BIND;
extern const unsigned long SKJ_MS_REC;
extern const unsigned long SKJ_MS_PRIVATE;
extern const unsigned long SKJ_MS_REMOUNT;
extern const unsigned long SKJ_MS_RDONLY;
extern const unsigned long SKJ_MS_NOSUID;
extern const unsigned long SKJ_MS_NODEV;
extern const unsigned long SKJ_MS_NOEXEC;

/* fork(2): the child's pid in the parent, 0 in the child, -errno on failure. */
int skj_fork(void);
int skj_unshare(int flags);
int skj_setns(int fd, int nstype);
int skj_pivot_root(const char *new_root, const char *put_old);
int skj_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data);
/* umount2 with MNT_DETACH. */
int skj_umount_detach(const char *target);
/* A character device node with the given mode bits (permissions only) and numbers. */
int skj_mknod_char(const char *path, unsigned int permissions, unsigned int major, unsigned int minor);
/* Major and minor numbers of a device (st_rdev). */
unsigned int skj_major(uint64_t rdev);
unsigned int skj_minor(uint64_t rdev);
int skj_sethostname(const char *name);
/* setgroups(0, NULL). */
int skj_clear_groups(void);
int skj_setresuid(uid_t uid);
int skj_setresgid(gid_t gid);

/* Drops every capability from the bounding set (0 up to the last one the kernel knows);
 * returns how many were dropped or -errno. */
int skj_drop_bounding_set(void);
/* 1 if any capability is still in the bounding set, 0 if none, -errno on failure. */
int skj_bounding_set_nonempty(void);
/* Clears the ambient set, then the effective, permitted and inheritable sets (capset). */
int skj_clear_capabilities(void);
/* 1 if any of the effective, permitted or inheritable sets is non-empty, 0 if all are, -errno. */
int skj_capabilities_nonempty(void);
int skj_set_no_new_privs(void);
int skj_set_parent_death_signal(int signo);
/* Closes every descriptor from `first` up, except `keep` (-1: none). */
int skj_close_from(int first, int keep);
/* Sets or clears FD_CLOEXEC. */
int skj_set_cloexec(int fd, int on);
/* Resets every catchable signal to its default action and unblocks all signals. */
int skj_reset_signals(void);
/* Installs `handler` (no SA_RESTART, so waitpid returns EINTR) for signo. */
int skj_install_handler(int signo, void (*handler)(int));
/* A pipe with both ends close-on-exec. */
int skj_pipe(int fds[2]);

#endif
