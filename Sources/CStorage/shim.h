#ifndef SKIFF_CSTORAGE_SHIM_H
#define SKIFF_CSTORAGE_SHIM_H
#include <zlib.h>

/// glibc's fallocate(2) (declared by <fcntl.h> only under _GNU_SOURCE, which clashes with Swift's Glibc module).
extern int fallocate64(int fd, int mode, long long offset, long long length);

static inline int cstorage_fallocate(int fd, int mode, long long offset, long long length) {
    return fallocate64(fd, mode, offset, length);
}
/// syncfs(2), also _GNU_SOURCE-only in glibc's headers.
extern int syncfs(int fd);

static inline int cstorage_syncfs(int fd) { return syncfs(fd); }
#endif
