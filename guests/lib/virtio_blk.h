/* virtio-blk requests (virtio 1.x §5.2) on top of lib/virtio.h: header, data, status
 * as one chain, submitted and polled synchronously. */
#ifndef KIT_VIRTIO_BLK_H
#define KIT_VIRTIO_BLK_H

#include <stdint.h>
#include "virtio.h"

#define VIRTIO_BLK_F_SIZE_MAX (1ull << 1)
#define VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)
#define VIRTIO_BLK_F_TOPOLOGY (1ull << 10)
#define VIRTIO_BLK_F_DISCARD (1ull << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ull << 14)

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

/* Config offsets. */
#define VIRTIO_BLK_CFG_CAPACITY 0
#define VIRTIO_BLK_CFG_SIZE_MAX 8
#define VIRTIO_BLK_CFG_SEG_MAX 12
#define VIRTIO_BLK_CFG_BLK_SIZE 20

/* Results of vblk_request() other than a device status byte. */
#define VBLK_TIMEOUT -1
#define VBLK_NO_DESCRIPTORS -2

struct virtio_blk_req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

struct virtio_blk_range {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
};

/* One request: header, `data` (`len` bytes, written by the device when `device_writes`;
 * none when len is 0), status byte. Returns the status byte the device wrote (0xff if it
 * wrote none), or VBLK_TIMEOUT / VBLK_NO_DESCRIPTORS. `used_len` (may be NULL) receives
 * the used length. */
int vblk_request(struct virtq *q, uint32_t type, uint64_t sector, void *data, uint32_t len, int device_writes,
                 uint32_t *used_len);
/* Submits a caller-built chain bufs[0..n) (header and status buffers included) and waits
 * for it; returns `*status` as the device left it (set to 0xff first). */
int vblk_submit(struct virtq *q, const struct virtq_buf *bufs, unsigned n, volatile uint8_t *status, uint32_t *used_len);

#endif
