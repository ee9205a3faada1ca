#define _GNU_SOURCE
#include "cvirtiohost.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int cvh_tap_open(const char *name, char actual_name[16]) {
    if (strlen(name) >= IFNAMSIZ) return -ENAMETOOLONG;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    memcpy(actual_name, ifr.ifr_name, IFNAMSIZ);
    actual_name[IFNAMSIZ - 1] = 0;
    return fd;
}

int cvh_tap_set_vnet_hdr_size(int fd, int size) {
    return ioctl(fd, TUNSETVNETHDRSZ, &size) < 0 ? -errno : 0;
}

int cvh_tap_set_offload(int fd, unsigned int flags) {
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0 ? -errno : 0;
}

int cvh_interface_exists(const char *name) { return if_nametoindex(name) != 0; }

int cvh_accept(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) return fd;
        if (errno != EINTR) return -errno;
    }
}
