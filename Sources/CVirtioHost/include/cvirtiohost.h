/* Linux calls the virtio device backends need that the Swift Glibc module does not export:
 * TAP ioctls (struct ifreq, TUNSETIFF, TUNSETVNETHDRSZ, TUNSETOFFLOAD) and accept4. */
#ifndef CVIRTIOHOST_H
#define CVIRTIOHOST_H

#include <stdint.h>

/* TUN_F_* offload bits for cvh_tap_set_offload (linux/if_tun.h). */
enum {
    CVH_TUN_F_CSUM = 0x01,
    CVH_TUN_F_TSO4 = 0x02,
    CVH_TUN_F_TSO6 = 0x04,
    CVH_TUN_F_TSO_ECN = 0x08,
    CVH_TUN_F_UFO = 0x10,
};

/* Opens /dev/net/tun (non-blocking, close-on-exec) and attaches to, or creates, the TAP
 * interface `name` with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR. Writes the kernel's name for the
 * interface (NUL-terminated, at most 16 bytes) to `actual_name`. Returns the fd or -errno. */
int cvh_tap_open(const char *name, char actual_name[16]);

/* TUNSETVNETHDRSZ: the size of the virtio-net header in front of every frame. 0 or -errno. */
int cvh_tap_set_vnet_hdr_size(int fd, int size);

/* TUNSETOFFLOAD with CVH_TUN_F_* bits: what the kernel may hand us (partial checksums,
 * GSO frames). 0 or -errno. */
int cvh_tap_set_offload(int fd, unsigned int flags);

/* Whether the interface `name` exists (if_nametoindex). */
int cvh_interface_exists(const char *name);

/* accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC (retrying EINTR): the new fd or -errno. */
int cvh_accept(int listener);

#endif
