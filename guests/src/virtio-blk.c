/* virtio-blk: drives the first virtio-blk device (PCI 1af4:1042) with the kit's virtio
 * library (32-bit, polling). Negotiates VERSION_1 with FLUSH, RO, BLK_SIZE, SEG_MAX,
 * SIZE_MAX, DISCARD, WRITE_ZEROES, EVENT_IDX and INDIRECT_DESC when offered, then:
 *   virtio-blk 00:<slot>.0 capacity <sectors> ro <0|1> features 0x<negotiated>
 *   serial "<GET_ID string>"
 *   sector 0 "<first 32 bytes of sector 0>"
 * mode=rw (default): writes sectors 1-8 with pattern(s, i) = s * 29 + i * 7 + 1 (one
 * request, two data descriptors), reads them back through an indirect table (when
 * negotiated) and compares, zeroes sectors 16-23 with WRITE_ZEROES (when negotiated) and
 * reads zeros back, then FLUSHes:
 *   wrote sectors 1-8
 *   readback ok
 *   write-zeroes ok                 (or: write-zeroes not offered)
 *   flushed
 * and then halts (end=halt, default: the host kills the VMM and checks the file) or passes
 * (end=pass).
 * mode=ro: expects a read-only disk. A write and a WRITE_ZEROES must fail with IOERR, a
 * DISCARD may fail with IOERR or do nothing, a FLUSH must succeed:
 *   readonly discard status <0|1>
 *   readonly writes refused
 * and passes.
 * mode=seq count=N: a continuous writer. Sector k (k = 1..N, N < capacity) gets one
 * 512-byte write request whose first 8 bytes are k (little-endian) and whose byte i
 * (8 <= i < 512) is (k * 251 + i * 17 + 0x5a) & 0xff; a FLUSH follows every 16th write
 * and the last one:
 *   blk seq=<k>                     (k = 16, 32, ...: after that FLUSH completed)
 *   blk done count=<N>              (after the final FLUSH)
 * and passes. With sectors=S (2..128) each of the N requests writes S consecutive sectors
 * (request j: sectors (j-1)*S+1 .. j*S) in one 512*S-byte descriptor, so a host can measure
 * throughput in bytes; then every sector s holds s (little-endian) in its first 8 bytes and
 * (i * 17 + 0x5a) & 0xff at byte i >= 8 (the buffer is filled once; only the numbers change). Requests are synchronous (one in flight), so a pause between any two
 * instructions is harmless as long as the device completes in-flight requests first.
 * wait-key=1 (any mode): after DRIVER_OK and the first line, prints
 *   virtio-blk ready
 * then polls COM1 (LSR data ready) until one byte arrives, discards it and goes on; so a
 * host can snapshot a set-up driver before the device is used. */
#include "io.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"
#include "virtio.h"
#include "virtio_blk.h"

const char test_name[] = "virtio-blk";

#define WANTED (VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_RO | \
                VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_DISCARD |             \
                VIRTIO_BLK_F_WRITE_ZEROES)

static struct virtq vq;
static uint8_t buf[4096] __attribute__((aligned(16)));
static uint8_t check[4096] __attribute__((aligned(16)));
#define SEQ_SECTORS_MAX 128
static uint8_t big[SEQ_SECTORS_MAX * 512] __attribute__((aligned(16)));
static char id[21];
static struct virtio_blk_req_hdr hdr __attribute__((aligned(16)));
static volatile uint8_t status;
static struct virtq_desc table[4] __attribute__((aligned(16)));
static struct virtio_blk_range range __attribute__((aligned(16)));

static uint8_t pattern(uint32_t sector, uint32_t i) { return (uint8_t)(sector * 29 + i * 7 + 1); }

static void expect_status(const char *what, int got, int want)
{
    if (got != want)
        test_fail("%s: status %d, expected %d", what, got, want);
}

static void run_rw(struct virtio_dev *dev)
{
    for (uint32_t s = 0; s < 8; s++)
        for (uint32_t i = 0; i < 512; i++)
            buf[s * 512 + i] = pattern(s + 1, i);
    hdr = (struct virtio_blk_req_hdr){ VIRTIO_BLK_T_OUT, 0, 1 };
    struct virtq_buf w[4] = {
        { (uint64_t)(uintptr_t)&hdr, sizeof(hdr), 0 },
        { (uint64_t)(uintptr_t)buf, 2048, 0 },
        { (uint64_t)(uintptr_t)(buf + 2048), 2048, 0 },
        { (uint64_t)(uintptr_t)&status, 1, 1 },
    };
    expect_status("write sectors 1-8", vblk_submit(&vq, w, 4, &status, 0), VIRTIO_BLK_S_OK);
    kprintf("wrote sectors 1-8\n");

    memset(check, 0, sizeof(check));
    hdr = (struct virtio_blk_req_hdr){ VIRTIO_BLK_T_IN, 0, 1 };
    struct virtq_buf r[3] = {
        { (uint64_t)(uintptr_t)&hdr, sizeof(hdr), 0 },
        { (uint64_t)(uintptr_t)check, 4096, 1 },
        { (uint64_t)(uintptr_t)&status, 1, 1 },
    };
    uint32_t used = 0;
    if (dev->features & VIRTIO_F_INDIRECT_DESC) {
        status = 0xff;
        if (virtq_add_indirect(&vq, table, r, 3) < 0)
            test_fail("no descriptor for the indirect read");
        virtq_kick(&vq);
        uint32_t head;
        if (virtq_wait_used(&vq, &head, &used, 5000) != 0)
            test_fail("indirect read timed out");
        expect_status("indirect read sectors 1-8", status, VIRTIO_BLK_S_OK);
    } else {
        expect_status("read sectors 1-8", vblk_submit(&vq, r, 3, &status, &used), VIRTIO_BLK_S_OK);
    }
    if (used != 4097)
        test_fail("read used length %u, expected 4097", used);
    if (memcmp(check, buf, sizeof(buf)) != 0)
        test_fail("sectors 1-8 read back differently");
    kprintf("readback ok\n");

    if (dev->features & VIRTIO_BLK_F_WRITE_ZEROES) {
        range = (struct virtio_blk_range){ 16, 8, 0 };
        expect_status("write-zeroes 16-23", vblk_request(&vq, VIRTIO_BLK_T_WRITE_ZEROES, 0, &range, sizeof(range), 0, 0),
                      VIRTIO_BLK_S_OK);
        memset(check, 0xee, sizeof(check));
        expect_status("read sectors 16-23", vblk_request(&vq, VIRTIO_BLK_T_IN, 16, check, 4096, 1, 0), VIRTIO_BLK_S_OK);
        for (unsigned i = 0; i < sizeof(check); i++)
            if (check[i])
                test_fail("byte %u of sectors 16-23 is 0x%x after WRITE_ZEROES", i, check[i]);
        kprintf("write-zeroes ok\n");
    } else {
        kprintf("write-zeroes not offered\n");
    }

    if (!(dev->features & VIRTIO_BLK_F_FLUSH))
        test_fail("FLUSH not offered");
    expect_status("flush", vblk_request(&vq, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0, 0), VIRTIO_BLK_S_OK);
    kprintf("flushed\n");
}

static void seq_sector(uint32_t k)
{
    uint64_t k64 = k;
    memcpy(buf, &k64, 8);
    uint8_t v = (uint8_t)(k * 251 + 8 * 17 + 0x5a);
    for (uint32_t i = 8; i < 512; i++, v = (uint8_t)(v + 17))
        buf[i] = v;
}

static void run_seq_multi(uint64_t capacity, uint32_t count, uint32_t sectors)
{
    if (count == 0 || (uint64_t)count * sectors >= capacity)
        test_fail("count=%u x sectors=%u must stay below the capacity %llu", count, sectors, (unsigned long long)capacity);
    for (uint32_t s = 0; s < sectors; s++)
        for (uint32_t i = 8; i < 512; i++)
            big[s * 512 + i] = (uint8_t)(i * 17 + 0x5a);
    for (uint32_t j = 1; j <= count; j++) {
        uint64_t first = (uint64_t)(j - 1) * sectors + 1;
        for (uint32_t s = 0; s < sectors; s++) {
            uint64_t n = first + s;
            memcpy(&big[s * 512], &n, 8);
        }
        int st = vblk_request(&vq, VIRTIO_BLK_T_OUT, first, big, sectors * 512, 0, 0);
        if (st != VIRTIO_BLK_S_OK)
            test_fail("write request %u: status %d", j, st);
        if (j % 16 == 0 || j == count) {
            st = vblk_request(&vq, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0, 0);
            if (st != VIRTIO_BLK_S_OK)
                test_fail("flush after request %u: status %d", j, st);
            if (j % 16 == 0)
                kprintf("blk seq=%u\n", j);
        }
    }
    kprintf("blk done count=%u\n", count);
    test_pass();
}

static void run_seq(struct virtio_dev *dev, uint64_t capacity, uint32_t count, uint32_t sectors)
{
    if (dev->features & VIRTIO_BLK_F_RO)
        test_fail("mode=seq on a read-only disk");
    if (!(dev->features & VIRTIO_BLK_F_FLUSH))
        test_fail("FLUSH not offered");
    if (sectors > 1)
        run_seq_multi(capacity, count, sectors);
    if (count == 0 || count >= capacity)
        test_fail("count=%u must be 1..%llu (the capacity less sector 0)", count, (unsigned long long)capacity - 1);
    for (uint32_t k = 1; k <= count; k++) {
        seq_sector(k);
        int st = vblk_request(&vq, VIRTIO_BLK_T_OUT, k, buf, 512, 0, 0);
        if (st != VIRTIO_BLK_S_OK)
            test_fail("write sector %u: status %d", k, st);
        if (k % 16 == 0 || k == count) {
            st = vblk_request(&vq, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0, 0);
            if (st != VIRTIO_BLK_S_OK)
                test_fail("flush after sector %u: status %d", k, st);
            if (k % 16 == 0)
                kprintf("blk seq=%u\n", k);
        }
    }
    kprintf("blk done count=%u\n", count);
    test_pass();
}

static void run_ro(struct virtio_dev *dev)
{
    if (!(dev->features & VIRTIO_BLK_F_RO))
        test_fail("mode=ro but the device does not offer VIRTIO_BLK_F_RO");
    memset(buf, 0x5a, sizeof(buf));
    expect_status("write to a read-only disk", vblk_request(&vq, VIRTIO_BLK_T_OUT, 1, buf, 4096, 0, 0), VIRTIO_BLK_S_IOERR);
    range = (struct virtio_blk_range){ 0, 8, 0 };
    if (dev->features & VIRTIO_BLK_F_DISCARD) {
        /* A discard leaves the contents undefined anyway: QEMU completes it with OK. */
        int s = vblk_request(&vq, VIRTIO_BLK_T_DISCARD, 0, &range, sizeof(range), 0, 0);
        kprintf("readonly discard status %d\n", s);
        if (s != VIRTIO_BLK_S_IOERR && s != VIRTIO_BLK_S_OK)
            test_fail("discard on a read-only disk: status %d", s);
    }
    if (dev->features & VIRTIO_BLK_F_WRITE_ZEROES)
        expect_status("write-zeroes on a read-only disk",
                      vblk_request(&vq, VIRTIO_BLK_T_WRITE_ZEROES, 0, &range, sizeof(range), 0, 0), VIRTIO_BLK_S_IOERR);
    expect_status("flush", vblk_request(&vq, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0, 0), VIRTIO_BLK_S_OK);
    kprintf("readonly writes refused\n");
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    const char *cmdline = (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline ? (const char *)(uintptr_t)mbi->cmdline : "";
    const char *mode = cmdline_find(cmdline, 256, "mode");
    const char *end = cmdline_find(cmdline, 256, "end");
    int read_only = mode && strncmp(mode, "ro", 2) == 0;
    int seq = mode && strncmp(mode, "seq", 3) == 0;
    uint32_t count = 0, wait_key = 0, sectors = 1;
    const char *v;
    if (seq && (!(v = cmdline_find(cmdline, 256, "count")) || parse_u32(v, &count) != 0))
        test_fail("mode=seq needs count=N");
    if ((v = cmdline_find(cmdline, 256, "sectors")) && (parse_u32(v, &sectors) != 0 || sectors == 0 || sectors > SEQ_SECTORS_MAX))
        test_fail("sectors must be 1..%u", SEQ_SECTORS_MAX);
    if ((v = cmdline_find(cmdline, 256, "wait-key")) && parse_u32(v, &wait_key) != 0)
        test_fail("bad wait-key=%s", v);

    struct virtio_dev dev;
    int r = virtio_find(VIRTIO_ID_BLOCK, 0, &dev);
    if (r != 0)
        test_fail("virtio-blk: %s", virtio_find_error(r));
    if ((r = virtio_init(&dev, WANTED)) != 0)
        test_fail("feature negotiation failed (%d), offered 0x%llx", r, (unsigned long long)dev.offered);
    if ((r = virtq_setup(&dev, &vq, 0, 16, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("queue 0 setup failed (%d)", r);
    virtio_driver_ok(&dev);
    uint64_t capacity = virtio_cfg_read64(&dev, VIRTIO_BLK_CFG_CAPACITY);
    kprintf("virtio-blk 00:%02x.%u capacity %llu ro %d features 0x%llx\n", dev.pci.slot, dev.pci.func,
            (unsigned long long)capacity, (dev.features & VIRTIO_BLK_F_RO) ? 1 : 0, (unsigned long long)dev.features);
    if (wait_key) {
        kprintf("virtio-blk ready\n");
        serial_wait_byte();
    }
    if (seq)
        run_seq(&dev, capacity, count, sectors);
    if (capacity < 24)
        test_fail("capacity %llu is below the 24 sectors this test uses", (unsigned long long)capacity);

    memset(id, 0, sizeof(id));
    uint32_t used = 0;
    expect_status("get-id", vblk_request(&vq, VIRTIO_BLK_T_GET_ID, 0, id, 20, 1, &used), VIRTIO_BLK_S_OK);
    kprintf("serial ");
    print_string_quoted(id, 20);
    kprintf("\n");

    expect_status("read sector 0", vblk_request(&vq, VIRTIO_BLK_T_IN, 0, buf, 512, 1, &used), VIRTIO_BLK_S_OK);
    if (used != 513)
        test_fail("read used length %u, expected 513", used);
    kprintf("sector 0 ");
    print_bytes_as_text(buf, 32);
    kprintf("\n");

    if (read_only) {
        run_ro(&dev);
        test_pass();
    }
    run_rw(&dev);
    if (end && strncmp(end, "pass", 4) == 0)
        test_pass();
    halt_forever();
}
