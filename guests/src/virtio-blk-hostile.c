/* virtio-blk-hostile: sends malformed requests and broken chains to the first virtio-blk
 * device and checks that it keeps serving (32-bit, polling). Never writes the disk with a
 * valid request, so the host can check the image is byte-identical afterwards.
 *  1. Well-formed chains carrying bad requests: sector at/past the capacity, ranges
 *     crossing the end, sector overflow, lengths not a multiple of 512, a short header,
 *     no status byte, data buffers of the wrong direction, GET_ID into 19 bytes, unknown
 *     types, bad WRITE_ZEROES/DISCARD flags, too many or out-of-range segments. Each gets
 *       bad <name> -> status <n>            (or: -> used <len> no status, -> needs-reset)
 *     The status must be the expected one (IOERR or UNSUPP; for data buffers of the wrong
 *     direction and a short GET_ID buffer an OK without a transfer is accepted too, as
 *     QEMU does); a device may instead ask for a reset, after which it is set up again. Canary bytes around every buffer must stay
 *     intact and a good read of sector 0 must then return what it returned at the start.
 *  2. Broken chains from lib/virtq_bad (loops, out-of-range indices, buffers past the end
 *     of RAM, on the LAPIC page or wrapping, huge lengths, readable after writable, broken
 *     indirect tables, an avail.idx jump). Each must set DEVICE_NEEDS_RESET without
 *     completing anything:
 *       chain <name> -> needs-reset
 *     then the device is reset, set up again and must serve a good read.
 * Output ends with
 *   hostile requests <n> chains <m>
 * and a pass. Needs >= 64 sectors and INDIRECT_DESC. */
#include "io.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"
#include "virtio.h"
#include "virtio_blk.h"
#include "virtq_bad.h"

const char test_name[] = "virtio-blk-hostile";

#define WANTED (VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_RO | VIRTIO_BLK_F_DISCARD | \
                VIRTIO_BLK_F_WRITE_ZEROES)
#define CANARY 0xc3
#define DATA_SIZE 8192
#define WAIT_MS 3000

static struct virtio_dev dev;
static struct virtq vq;
static uint64_t capacity;

/* Every buffer the device may be handed sits between two canary areas. */
static struct {
    uint8_t pre[64];
    uint8_t data[DATA_SIZE];
    uint8_t post[64];
    struct virtio_blk_req_hdr hdr;
    uint8_t post_hdr[64];
    uint8_t status;
    uint8_t post_status[64];
} area __attribute__((aligned(16)));
static uint8_t sector0[512];
static uint8_t readback[512];
static struct virtq_desc bad_table[8] __attribute__((aligned(16)));

static unsigned requests, chains;

static void fill_canaries(void)
{
    memset(area.pre, CANARY, sizeof(area.pre));
    memset(area.post, CANARY, sizeof(area.post));
    memset(area.post_hdr, CANARY, sizeof(area.post_hdr));
    memset(area.post_status, CANARY, sizeof(area.post_status));
}

static void check_canaries(const char *name)
{
    const uint8_t *areas[] = { area.pre, area.post, area.post_hdr, area.post_status };
    for (unsigned a = 0; a < 4; a++)
        for (unsigned i = 0; i < 64; i++)
            if (areas[a][i] != CANARY)
                test_fail("%s: canary %u byte %u changed to 0x%x", name, a, i, areas[a][i]);
}

static void setup(void)
{
    int r = virtio_init(&dev, WANTED);
    if (r != 0)
        test_fail("feature negotiation failed (%d)", r);
    if (!(dev.features & VIRTIO_F_INDIRECT_DESC))
        test_fail("INDIRECT_DESC not offered");
    if ((r = virtq_setup(&dev, &vq, 0, 16, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("queue setup failed (%d)", r);
    virtio_driver_ok(&dev);
}

static void good_read(const char *after)
{
    memset(readback, 0, sizeof(readback));
    int s = vblk_request(&vq, VIRTIO_BLK_T_IN, 0, readback, 512, 1, 0);
    if (s != VIRTIO_BLK_S_OK)
        test_fail("after %s: good read got %d (device status 0x%x)", after, s, virtio_get_status(&dev));
    if (memcmp(readback, sector0, 512) != 0)
        test_fail("after %s: sector 0 reads differently", after);
}

/* Waits for the chain to be used or for NEEDS_RESET. Returns 1 if used, 0 on NEEDS_RESET. */
static int wait_used_or_reset(const char *name, uint32_t *used)
{
    uint64_t start = rdtsc();
    for (;;) {
        uint32_t id;
        if (virtq_get_used(&vq, &id, used))
            return 1;
        if (virtio_get_status(&dev) & VIRTIO_STATUS_NEEDS_RESET)
            return 0;
        if (rdtsc() - start > (uint64_t)WAIT_MS * (TSC_PER_SECOND_GUESS / 1000))
            test_fail("%s: neither completed nor NEEDS_RESET", name);
        cpu_pause();
    }
}

#define NO_ALTERNATIVE -2

/* Sends bufs as one chain and checks the outcome against `want` (a status, or -1 for
 * "no status byte: used length 0"); `alt` is another status the spec leaves room for
 * (a device that treats wrong-direction data as absent completes an empty transfer). */
static void bad_request_alt(const char *name, const struct virtq_buf *bufs, unsigned n, int want, int alt)
{
    fill_canaries();
    area.status = 0xff;
    requests++;
    if (virtq_add(&vq, bufs, n) < 0)
        test_fail("%s: no free descriptors", name);
    virtq_kick(&vq);
    uint32_t used = 0;
    if (!wait_used_or_reset(name, &used)) {
        kprintf("bad %s -> needs-reset\n", name);
        setup();
    } else if (want < 0) {
        kprintf("bad %s -> used %u no status\n", name, used);
        if (used != 0 || area.status != 0xff)
            test_fail("%s: used length %u status 0x%x for a chain without a status byte", name, used, area.status);
    } else {
        kprintf("bad %s -> status %u\n", name, area.status);
        if (area.status != want && area.status != alt)
            test_fail("%s: status %u, expected %d", name, area.status, want);
    }
    check_canaries(name);
    good_read(name);
}

static void bad_request(const char *name, const struct virtq_buf *bufs, unsigned n, int want)
{
    bad_request_alt(name, bufs, n, want, NO_ALTERNATIVE);
}

#define HDR(t, s) (area.hdr = (struct virtio_blk_req_hdr){ (t), 0, (s) })
#define B_HDR { (uint64_t)(uintptr_t)&area.hdr, sizeof(area.hdr), 0 }
#define B_HDR_LEN(l) { (uint64_t)(uintptr_t)&area.hdr, (l), 0 }
#define B_DATA(l, w) { (uint64_t)(uintptr_t)area.data, (l), (w) }
#define B_STATUS { (uint64_t)(uintptr_t)&area.status, 1, 1 }

static void set_range(unsigned i, uint64_t sector, uint32_t count, uint32_t flags)
{
    struct virtio_blk_range *r = (struct virtio_blk_range *)area.data + i;
    r->sector = sector;
    r->num_sectors = count;
    r->flags = flags;
}

static void request_level(void)
{
    const int IOERR = VIRTIO_BLK_S_IOERR, UNSUPP = VIRTIO_BLK_S_UNSUPP;
    {
        HDR(VIRTIO_BLK_T_IN, capacity);
        struct virtq_buf b[] = { B_HDR, B_DATA(512, 1), B_STATUS };
        bad_request("read-at-capacity", b, 3, IOERR);
    }
    {
        HDR(VIRTIO_BLK_T_OUT, capacity + 100);
        struct virtq_buf b[] = { B_HDR, B_DATA(512, 0), B_STATUS };
        bad_request("write-past-capacity", b, 3, IOERR);
    }
    {
        HDR(VIRTIO_BLK_T_OUT, capacity - 1);
        struct virtq_buf b[] = { B_HDR, B_DATA(1024, 0), B_STATUS };
        bad_request("write-crossing-end", b, 3, IOERR);
    }
    {
        HDR(VIRTIO_BLK_T_IN, 0xffffffffffffffffull / 256);
        struct virtq_buf b[] = { B_HDR, B_DATA(512, 1), B_STATUS };
        bad_request("read-sector-times-512-overflows", b, 3, IOERR);
    }
    {
        HDR(VIRTIO_BLK_T_OUT, 0xffffffffffffffffull);
        struct virtq_buf b[] = { B_HDR, B_DATA(512, 0), B_STATUS };
        bad_request("write-sector-max", b, 3, IOERR);
    }
    {
        HDR(VIRTIO_BLK_T_OUT, 2);
        struct virtq_buf b[] = { B_HDR, B_DATA(100, 0), B_STATUS };
        bad_request("write-100-bytes", b, 3, IOERR);
    }
    {
        HDR(VIRTIO_BLK_T_IN, 2);
        struct virtq_buf b[] = { B_HDR, B_DATA(513, 1), B_STATUS };
        bad_request("read-513-bytes", b, 3, IOERR);
    }
    {
        HDR(VIRTIO_BLK_T_OUT, 2);
        struct virtq_buf b[] = { B_HDR_LEN(8), B_STATUS };
        bad_request("short-header", b, 2, IOERR);
    }
    {
        HDR(VIRTIO_BLK_T_OUT, 2);
        struct virtq_buf b[] = { B_HDR, B_DATA(512, 0) };
        bad_request("no-status", b, 2, -1);
    }
    {
        HDR(VIRTIO_BLK_T_IN, 2);
        struct virtq_buf b[] = { B_HDR, B_DATA(512, 0), B_STATUS };
        bad_request_alt("read-into-readable-buffer", b, 3, IOERR, VIRTIO_BLK_S_OK);
    }
    {
        HDR(VIRTIO_BLK_T_OUT, 2);
        struct virtq_buf b[] = { B_HDR, B_DATA(512, 1), B_STATUS };
        bad_request_alt("write-from-writable-buffer", b, 3, IOERR, VIRTIO_BLK_S_OK);
    }
    {
        HDR(VIRTIO_BLK_T_GET_ID, 0);
        struct virtq_buf b[] = { B_HDR, B_DATA(19, 1), B_STATUS };
        memset(area.data, CANARY, 32);
        bad_request_alt("get-id-19-bytes", b, 3, IOERR, VIRTIO_BLK_S_OK);
        for (unsigned i = 19; i < 32; i++)
            if (area.data[i] != CANARY)
                test_fail("get-id-19-bytes: byte %u past the buffer written", i);
    }
    {
        HDR(0xffffffffu, 0);
        struct virtq_buf b[] = { B_HDR, B_DATA(512, 1), B_STATUS };
        bad_request("type-ffffffff", b, 3, UNSUPP);
    }
    {
        HDR(10, 0); /* GET_LIFETIME: not offered */
        struct virtq_buf b[] = { B_HDR, B_DATA(8, 1), B_STATUS };
        bad_request("type-get-lifetime", b, 3, UNSUPP);
    }
    if (dev.features & VIRTIO_BLK_F_WRITE_ZEROES) {
        HDR(VIRTIO_BLK_T_WRITE_ZEROES, 0);
        struct virtq_buf b[] = { B_HDR, B_DATA(16, 0), B_STATUS };
        set_range(0, 0, 8, 2);
        bad_request("write-zeroes-unknown-flag", b, 3, UNSUPP);
        set_range(0, capacity - 4, 8, 0);
        bad_request("write-zeroes-crossing-end", b, 3, IOERR);
        set_range(0, 0, 8, 0);
        set_range(1, 16, 8, 0x80000000u);
        struct virtq_buf b2[] = { B_HDR, B_DATA(32, 0), B_STATUS };
        bad_request("write-zeroes-second-segment-bad-flag", b2, 3, UNSUPP);
        uint32_t max_seg = virtio_cfg_read32(&dev, 52);
        if (max_seg > 0 && max_seg < DATA_SIZE / 16) {
            for (unsigned i = 0; i <= max_seg; i++)
                set_range(i, 0, 1, 0);
            struct virtq_buf b3[] = { B_HDR, B_DATA(16 * (max_seg + 1), 0), B_STATUS };
            bad_request("write-zeroes-too-many-segments", b3, 3, UNSUPP);
        }
        struct virtq_buf b4[] = { B_HDR, B_DATA(20, 0), B_STATUS };
        bad_request_alt("write-zeroes-20-bytes", b4, 3, IOERR, UNSUPP);
    }
    if (dev.features & VIRTIO_BLK_F_DISCARD) {
        HDR(VIRTIO_BLK_T_DISCARD, 0);
        struct virtq_buf b[] = { B_HDR, B_DATA(16, 0), B_STATUS };
        set_range(0, 0, 8, 1);
        bad_request("discard-with-unmap", b, 3, UNSUPP);
        set_range(0, capacity, 1, 0);
        bad_request("discard-at-capacity", b, 3, IOERR);
    }
}

static void chain_level(uint64_t ram_end)
{
    struct virtq_bad_ctx ctx = { ram_end, (uint64_t)(uintptr_t)area.data, bad_table };
    for (int kind = 0; kind < VQ_BAD_COUNT; kind++) {
        const char *name = virtq_bad_name((enum virtq_bad)kind);
        setup();
        fill_canaries();
        chains++;
        virtq_publish_bad(&vq, (enum virtq_bad)kind, &ctx);
        virtq_notify(&vq);
        if (virtio_wait_status(&dev, VIRTIO_STATUS_NEEDS_RESET, WAIT_MS) < 0)
            test_fail("chain %s: no NEEDS_RESET (status 0x%x, used.idx %u)", name, virtio_get_status(&dev), virtq_used_idx(&vq));
        if (virtq_used_idx(&vq) != 0)
            test_fail("chain %s: the device completed a broken chain", name);
        kprintf("chain %s -> needs-reset\n", name);
        check_canaries(name);
        setup();
        good_read(name);
    }
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    if (!(mbi->flags & MB_INFO_MEMORY))
        test_fail("no multiboot memory information");
    uint64_t ram_end = ((uint64_t)mbi->mem_upper + 1024) * 1024;

    int r = virtio_find(VIRTIO_ID_BLOCK, 0, &dev);
    if (r != 0)
        test_fail("virtio-blk: %s", virtio_find_error(r));
    setup();
    capacity = virtio_cfg_read64(&dev, VIRTIO_BLK_CFG_CAPACITY);
    if (capacity < 64)
        test_fail("capacity %llu is below 64 sectors", (unsigned long long)capacity);
    if (vblk_request(&vq, VIRTIO_BLK_T_IN, 0, sector0, 512, 1, 0) != VIRTIO_BLK_S_OK)
        test_fail("first read of sector 0 failed");
    kprintf("virtio-blk capacity %llu ram end 0x%llx\n", (unsigned long long)capacity, (unsigned long long)ram_end);

    request_level();
    chain_level(ram_end);
    kprintf("hostile requests %u chains %u\n", requests, chains);
    virtio_reset(&dev);
    test_pass();
}
