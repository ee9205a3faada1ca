/* Deliberately malformed virtqueue input for bad-input guests: descriptor loops,
 * out-of-range indices, buffers past the end of RAM or wrapping the address space, huge
 * lengths, readable-after-writable chains, broken indirect tables and avail.idx jumps
 * (the structural items of the reliability list). Each one is published on the avail
 * ring; a correct device refuses it (DEVICE_NEEDS_RESET) and must not touch memory
 * outside RAM. These helpers write descriptors directly and break the queue's free list:
 * reset the device and set the queue up again afterwards. */
#ifndef KIT_VIRTQ_BAD_H
#define KIT_VIRTQ_BAD_H

#include <stdint.h>
#include "virtio.h"

enum virtq_bad {
    VQ_BAD_LOOP,                /* 0 -> 1 -> 0 */
    VQ_BAD_SELF_LOOP,           /* 0 -> 0 */
    VQ_BAD_HEAD_OUT_OF_RANGE,   /* head index = queue size */
    VQ_BAD_HEAD_FFFF,           /* head index 0xffff */
    VQ_BAD_NEXT_OUT_OF_RANGE,   /* next = 0xffff */
    VQ_BAD_PAST_RAM,            /* buffer ending one byte past the end of RAM */
    VQ_BAD_ADDRESS_WRAP,        /* addr + len wraps 2^64 */
    VQ_BAD_MMIO,                /* buffer on the LAPIC page */
    VQ_BAD_HUGE_LENGTH,         /* len 0xffffffff on a RAM address */
    VQ_BAD_READABLE_AFTER_WRITABLE,
    VQ_BAD_INDIRECT_EMPTY,      /* indirect table of length 0 */
    VQ_BAD_INDIRECT_NOT_MULTIPLE_OF_16,
    VQ_BAD_INDIRECT_NESTED,     /* an indirect entry that is itself INDIRECT */
    VQ_BAD_INDIRECT_WITH_NEXT,  /* INDIRECT | NEXT on the ring descriptor */
    VQ_BAD_INDIRECT_NEXT_OUT_OF_RANGE,
    VQ_BAD_INDIRECT_LOOP,
    VQ_BAD_INDIRECT_PAST_RAM,   /* table itself past the end of RAM */
    VQ_BAD_INDIRECT_TOO_LARGE,  /* more than 65535 entries */
    VQ_BAD_AVAIL_JUMP,          /* avail.idx moved by 0x8000 */
    VQ_BAD_COUNT
};

/* Memory a malformed chain may point at. */
struct virtq_bad_ctx {
    uint64_t ram_end;            /* first byte past guest RAM (below 4 GiB) */
    uint64_t buffer;             /* a valid scratch buffer of >= 64 bytes */
    struct virtq_desc *table;    /* valid scratch for an indirect table, >= 4 entries, 16-aligned */
};

const char *virtq_bad_name(enum virtq_bad kind);
/* Writes and publishes the malformed chain `kind` on `q` (does not notify). */
void virtq_publish_bad(struct virtq *q, enum virtq_bad kind, const struct virtq_bad_ctx *ctx);
/* Writes descriptor `i` verbatim. */
void virtq_set_desc(struct virtq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);

#endif
