#include "virtq_bad.h"

#define F_NEXT VIRTQ_DESC_F_NEXT
#define F_WRITE VIRTQ_DESC_F_WRITE
#define F_INDIRECT VIRTQ_DESC_F_INDIRECT

static const char *const names[VQ_BAD_COUNT] = {
    [VQ_BAD_LOOP] = "loop",
    [VQ_BAD_SELF_LOOP] = "self-loop",
    [VQ_BAD_HEAD_OUT_OF_RANGE] = "head-out-of-range",
    [VQ_BAD_HEAD_FFFF] = "head-ffff",
    [VQ_BAD_NEXT_OUT_OF_RANGE] = "next-out-of-range",
    [VQ_BAD_PAST_RAM] = "past-ram",
    [VQ_BAD_ADDRESS_WRAP] = "address-wrap",
    [VQ_BAD_MMIO] = "mmio-buffer",
    [VQ_BAD_HUGE_LENGTH] = "huge-length",
    [VQ_BAD_READABLE_AFTER_WRITABLE] = "readable-after-writable",
    [VQ_BAD_INDIRECT_EMPTY] = "indirect-empty",
    [VQ_BAD_INDIRECT_NOT_MULTIPLE_OF_16] = "indirect-not-multiple-of-16",
    [VQ_BAD_INDIRECT_NESTED] = "indirect-nested",
    [VQ_BAD_INDIRECT_WITH_NEXT] = "indirect-with-next",
    [VQ_BAD_INDIRECT_NEXT_OUT_OF_RANGE] = "indirect-next-out-of-range",
    [VQ_BAD_INDIRECT_LOOP] = "indirect-loop",
    [VQ_BAD_INDIRECT_PAST_RAM] = "indirect-past-ram",
    [VQ_BAD_INDIRECT_TOO_LARGE] = "indirect-too-large",
    [VQ_BAD_AVAIL_JUMP] = "avail-jump",
};

const char *virtq_bad_name(enum virtq_bad kind)
{
    return (unsigned)kind < VQ_BAD_COUNT && names[kind] ? names[kind] : "unknown";
}

void virtq_set_desc(struct virtq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    if (i >= q->size)
        return;
    q->desc[i].addr = addr;
    q->desc[i].len = len;
    q->desc[i].flags = flags;
    q->desc[i].next = next;
}

static void set_entry(struct virtq_desc *t, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    t[i].addr = addr;
    t[i].len = len;
    t[i].flags = flags;
    t[i].next = next;
}

void virtq_publish_bad(struct virtq *q, enum virtq_bad kind, const struct virtq_bad_ctx *ctx)
{
    uint64_t buf = ctx->buffer;
    uint64_t table = (uint64_t)(uintptr_t)ctx->table;
    struct virtq_desc *t = ctx->table;
    uint16_t head = 0;
    switch (kind) {
    case VQ_BAD_LOOP:
        virtq_set_desc(q, 0, buf, 16, F_NEXT, 1);
        virtq_set_desc(q, 1, buf + 16, 16, F_NEXT, 0);
        break;
    case VQ_BAD_SELF_LOOP:
        virtq_set_desc(q, 0, buf, 16, F_NEXT, 0);
        break;
    case VQ_BAD_HEAD_OUT_OF_RANGE:
        head = q->size;
        break;
    case VQ_BAD_HEAD_FFFF:
        head = 0xffff;
        break;
    case VQ_BAD_NEXT_OUT_OF_RANGE:
        virtq_set_desc(q, 0, buf, 16, F_NEXT, 0xffff);
        break;
    case VQ_BAD_PAST_RAM:
        virtq_set_desc(q, 0, ctx->ram_end - 15, 16, F_WRITE, 0);
        break;
    case VQ_BAD_ADDRESS_WRAP:
        virtq_set_desc(q, 0, 0xfffffffffffff000ull, 0x2000, F_WRITE, 0);
        break;
    case VQ_BAD_MMIO:
        virtq_set_desc(q, 0, 0xfee00000ull, 64, F_WRITE, 0);
        break;
    case VQ_BAD_HUGE_LENGTH:
        virtq_set_desc(q, 0, buf, 0xffffffffu, F_WRITE, 0);
        break;
    case VQ_BAD_READABLE_AFTER_WRITABLE:
        virtq_set_desc(q, 0, buf, 16, F_WRITE | F_NEXT, 1);
        virtq_set_desc(q, 1, buf + 16, 16, 0, 0);
        break;
    case VQ_BAD_INDIRECT_EMPTY:
        virtq_set_desc(q, 0, table, 0, F_INDIRECT, 0);
        break;
    case VQ_BAD_INDIRECT_NOT_MULTIPLE_OF_16:
        set_entry(t, 0, buf, 16, F_WRITE, 0);
        virtq_set_desc(q, 0, table, 20, F_INDIRECT, 0);
        break;
    case VQ_BAD_INDIRECT_NESTED:
        set_entry(t, 0, table + 32, 32, F_INDIRECT, 0);
        set_entry(t, 2, buf, 16, F_WRITE, 0);
        virtq_set_desc(q, 0, table, 16, F_INDIRECT, 0);
        break;
    case VQ_BAD_INDIRECT_WITH_NEXT:
        set_entry(t, 0, buf, 16, F_WRITE, 0);
        virtq_set_desc(q, 0, table, 16, F_INDIRECT | F_NEXT, 1);
        virtq_set_desc(q, 1, buf + 16, 16, F_WRITE, 0);
        break;
    case VQ_BAD_INDIRECT_NEXT_OUT_OF_RANGE:
        set_entry(t, 0, buf, 16, F_NEXT, 7);
        set_entry(t, 1, buf + 16, 16, F_WRITE, 0);
        virtq_set_desc(q, 0, table, 32, F_INDIRECT, 0);
        break;
    case VQ_BAD_INDIRECT_LOOP:
        set_entry(t, 0, buf, 16, F_NEXT, 1);
        set_entry(t, 1, buf + 16, 16, F_NEXT, 0);
        virtq_set_desc(q, 0, table, 32, F_INDIRECT, 0);
        break;
    case VQ_BAD_INDIRECT_PAST_RAM:
        virtq_set_desc(q, 0, ctx->ram_end - 16, 32, F_INDIRECT, 0);
        break;
    case VQ_BAD_INDIRECT_TOO_LARGE:
        virtq_set_desc(q, 0, table, 16u * 65536u, F_INDIRECT, 0);
        break;
    case VQ_BAD_AVAIL_JUMP:
        virtq_set_desc(q, 0, buf, 16, F_WRITE, 0);
        q->avail[2 + (q->avail_idx % q->size)] = 0;
        q->avail_idx = (uint16_t)(q->avail_idx + 0x8000);
        q->avail[1] = q->avail_idx;
        return;
    default:
        return;
    }
    virtq_publish(q, head);
}
