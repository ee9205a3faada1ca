#include "virtio_blk.h"

static struct virtio_blk_req_hdr hdr __attribute__((aligned(16)));
static volatile uint8_t status_byte;

int vblk_submit(struct virtq *q, const struct virtq_buf *bufs, unsigned n, volatile uint8_t *status, uint32_t *used_len)
{
    *status = 0xff;
    int head = virtq_add(q, bufs, n);
    if (head < 0)
        return VBLK_NO_DESCRIPTORS;
    virtq_kick(q);
    uint32_t id, len;
    if (virtq_wait_used(q, &id, &len, 5000) != 0)
        return VBLK_TIMEOUT;
    if (used_len)
        *used_len = len;
    return *status;
}

int vblk_request(struct virtq *q, uint32_t type, uint64_t sector, void *data, uint32_t len, int device_writes,
                 uint32_t *used_len)
{
    hdr.type = type;
    hdr.reserved = 0;
    hdr.sector = sector;
    struct virtq_buf bufs[3];
    unsigned n = 0;
    bufs[n++] = (struct virtq_buf){ (uint64_t)(uintptr_t)&hdr, sizeof(hdr), 0 };
    if (len)
        bufs[n++] = (struct virtq_buf){ (uint64_t)(uintptr_t)data, len, device_writes };
    bufs[n++] = (struct virtq_buf){ (uint64_t)(uintptr_t)&status_byte, 1, 1 };
    return vblk_submit(q, bufs, n, &status_byte, used_len);
}
