/* flood: a hostile guest that tries to make the VMM use host memory or CPU without bound.
 * One attack per run, chosen with mode=; count= scales it (defaults below). Each attack
 * prints `flood <mode> start`, runs, prints `flood <mode> done <numbers>` and passes
 * (exit 33), except the attacks that must keep running while the host measures or
 * floods (net, quiet, echo), which print `flood <mode> ready` and never end by themselves.
 *
 *   mode=uart count=N      N bytes to COM1's THR with `rep outsb` (4 KiB per exit), no
 *                          LSR wait: the VMM's console buffer and its sinks take the flood.
 *   mode=pio count=N       N exits: `outl`/`inl` to unclaimed ports, cycling 0x1000-0xefff
 *                          (every one a different port), N/2 to the CMOS index and data
 *                          ports (claimed), plus one `rep outsb` of 4 KiB to an unclaimed
 *                          (0x2000) and one to a claimed (0x80, POST code) port.
 *   mode=mmio count=N      N dword writes and reads to unclaimed MMIO in the PCI hole, each
 *                          at a new address (0xd0000000 + 64 * i, wrapping after 256 MiB);
 *                          handled=1 (needs --rng): then N to virtio-rng's common config.
 *   mode=msix count=N      virtio-rng (--rng): N MSI-X table writes, each changing entry 0's
 *                          message (data, address, mask), plus MSI-X enable toggles through
 *                          PCI config space every 64 writes: each change is a new GSI route.
 *   mode=vcon count=N      virtio-console (--console virtio): N bytes on port 0's transmit
 *                          queue, 16 x 4 KiB chains per kick.
 *   mode=balloon count=N   virtio-balloon (--balloon): N statistics buffers (64 entries,
 *                          changing values) on the statistics queue, up to 64 per kick.
 *   mode=vsock count=N     virtio-vsock: REQUESTs from N guest ports to host port=P (a host
 *                          listener that never reads), then per= bytes (default 64 KiB) of
 *                          4 KiB RW packets on each, ignoring credit, then strays= (1024)
 *                          REQUESTs to ports nobody listens on. No receive buffer is ever posted.
 *                          hold=1: then prints `flood vsock holding` and halts (connections open).
 *   mode=net               virtio-net: 4 receive buffers posted once and never refilled;
 *                          prints `flood net ready`, then halts with interrupts off.
 *   mode=quiet             prints `flood quiet ready` and halts: never reads console input.
 *   mode=echo              echoes every COM1 byte (IRQ4), halting between them: the
 *                          latency probe a host runs beside a hostile VM.
 *
 * Everything runs with interrupts off except echo. Output lines end in `\n`. */
#include "idt.h"
#include "io.h"
#include "multiboot.h"
#include "pci.h"
#include "pic.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"
#include "virtio.h"

const char test_name[] = "flood";

static uint8_t page[4096] __attribute__((aligned(4096)));
static const char *cmdline = "";

static uint32_t arg(const char *key, uint32_t fallback)
{
    const char *v = cmdline_find(cmdline, 512, key);
    uint32_t x = fallback;
    if (v && parse_u32(v, &x) != 0)
        test_fail("bad %s=", key);
    return x;
}

static int mode_is(const char *m)
{
    const char *v = cmdline_find(cmdline, 512, "mode");
    if (!v)
        return 0;
    size_t n = strlen(m);
    return strncmp(v, m, n) == 0 && (v[n] == 0 || v[n] == ' ');
}

static void rep_outsb(uint16_t port, const void *p, uint32_t n)
{
    __asm__ volatile("cld; rep outsb" : "+S"(p), "+c"(n) : "d"(port) : "memory");
}

/* ---- uart ---------------------------------------------------------------------- */

static void flood_uart(uint32_t count)
{
    for (uint32_t i = 0; i < sizeof(page); i++)
        page[i] = (i % 64 == 63) ? '\n' : (uint8_t)('a' + i % 26);
    kprintf("flood uart start\n");
    uint32_t sent = 0;
    while (sent < count) {
        uint32_t n = count - sent < sizeof(page) ? count - sent : sizeof(page);
        rep_outsb(COM1_PORT, page, n);
        sent += n;
    }
    kprintf("\nflood uart done %u bytes\n", sent);
    test_pass();
}

/* ---- port I/O ------------------------------------------------------------------ */

static void flood_pio(uint32_t count)
{
    kprintf("flood pio start\n");
    uint16_t port = 0x1000;
    uint32_t reads_ff = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (i & 1) {
            if (inl(port) == 0xffffffffu)
                reads_ff++;
        } else {
            outl(port, i * 2654435761u);
        }
        port = port >= 0xeffc ? 0x1000 : (uint16_t)(port + 4);
    }
    /* Claimed ports too: the CMOS index and data registers (data only read). */
    for (uint32_t i = 0; i < count / 4; i++) {
        outb(0x70, (uint8_t)(i % 10));
        (void)inb(0x71);
    }
    for (uint32_t i = 0; i < sizeof(page); i++)
        page[i] = (uint8_t)i;
    uint32_t strings = 2; /* string I/O: KVM may exit once per byte, so keep it short */
    for (uint32_t i = 0; i < strings / 2; i++) {
        rep_outsb(0x2000, page, sizeof(page));
        rep_outsb(0x80, page, sizeof(page));
    }
    kprintf("flood pio done %u exits %u cmos exits %u strings %u unclaimed reads of all ones\n", count, count / 4 * 2, strings,
            reads_ff);
    test_pass();
}

/* ---- MMIO ---------------------------------------------------------------------- */

static void flood_mmio(uint32_t count)
{
    kprintf("flood mmio start\n");
    uint32_t reads_ff = 0;
    for (uint32_t i = 0; i < count; i++) {
        uintptr_t a = 0xd0000000u + ((i * 64u) & 0x0fffffffu);
        if (i & 1) {
            if (mmio_read32(a) == 0xffffffffu)
                reads_ff++;
        } else {
            mmio_write32(a, i);
        }
    }
    kprintf("flood mmio done %u accesses %u unclaimed reads of all ones\n", count, reads_ff);
    if (arg("handled", 0)) {
        /* Claimed MMIO: virtio-rng's common configuration, feature select and feature words. */
        struct virtio_dev rng;
        int r = virtio_find(VIRTIO_ID_RNG, 0, &rng);
        if (r != 0)
            test_fail("virtio-rng: %s", virtio_find_error(r));
        uint32_t features_seen = 0;
        for (uint32_t i = 0; i < count; i++) {
            if (i & 1)
                features_seen |= mmio_read32(rng.common + VIRTIO_COMMON_DF);
            else
                mmio_write32(rng.common + VIRTIO_COMMON_DFSELECT, (i >> 1) & 1);
        }
        kprintf("flood mmio done %u claimed accesses features 0x%x\n", count, features_seen);
    }
    test_pass();
}

/* ---- virtio helpers -------------------------------------------------------------- */

static struct virtio_dev dev;
static struct virtq q0, q1, q2;

static void find_and_init(uint16_t type, uint64_t features, const char *what)
{
    int r = virtio_find(type, 0, &dev);
    if (r != 0)
        test_fail("%s: %s", what, virtio_find_error(r));
    if ((r = virtio_init(&dev, VIRTIO_F_VERSION_1 | features)) != 0)
        test_fail("%s: feature negotiation failed (%d)", what, r);
}

static void reap(struct virtq *q)
{
    uint32_t id, len;
    while (virtq_get_used(q, &id, &len))
        ;
}

/* Waits until every descriptor of `q` is back. */
static void drain(struct virtq *q, const char *what)
{
    uint32_t id, len;
    while (q->num_free < q->size) {
        if (virtq_wait_used(q, &id, &len, 5000) != 0)
            test_fail("%s: buffers not returned within 5 s", what);
    }
}

/* ---- MSI-X ----------------------------------------------------------------------- */

static void flood_msix(uint32_t count)
{
    find_and_init(VIRTIO_ID_RNG, 0, "virtio-rng");
    if (virtio_msix_setup(&dev, 0, 0x60, 1) != 0)
        test_fail("MSI-X setup failed");
    if (virtq_setup(&dev, &q0, 0, 8, 0) != 0)
        test_fail("queue setup failed");
    virtio_driver_ok(&dev);
    kprintf("flood msix start table entries %u\n", dev.msix.table_size);
    volatile uint32_t *e = dev.msix.table;
    for (uint32_t i = 0; i < count; i++) {
        switch (i & 3) {
        case 0: e[2] = 0x40 + (i >> 2) % 0xa0; break;               /* data: a new vector */
        case 1: e[0] = 0xfee00000u | (((i >> 2) & 0xff) << 12); break; /* destination APIC */
        case 2: e[3] = 1; break;                                     /* mask */
        default: e[3] = 0; break;                                    /* unmask */
        }
        if (i % 64 == 63) {
            pci_msix_enable(&dev.pci, &dev.msix, 0);
            pci_msix_enable(&dev.pci, &dev.msix, 1);
        }
    }
    kprintf("flood msix done %u table writes\n", count);
    test_pass();
}

/* ---- virtio-console ---------------------------------------------------------------- */

static uint8_t vcon_bufs[16][4096] __attribute__((aligned(4096)));

static void flood_vcon(uint32_t count)
{
    find_and_init(VIRTIO_ID_CONSOLE, 0, "virtio-console");
    if (virtq_setup(&dev, &q0, 0, 4, VIRTIO_MSI_NO_VECTOR) != 0 || virtq_setup(&dev, &q1, 1, 16, VIRTIO_MSI_NO_VECTOR) != 0)
        test_fail("queue setup failed");
    virtio_driver_ok(&dev);
    for (int b = 0; b < 16; b++)
        for (uint32_t i = 0; i < 4096; i++)
            vcon_bufs[b][i] = (i % 64 == 63) ? '\n' : (uint8_t)('A' + (i + b) % 26);
    kprintf("flood vcon start\n");
    uint32_t sent = 0, kicks = 0;
    while (sent < count) {
        reap(&q1);
        int added = 0;
        for (int b = 0; b < 16 && sent < count && q1.num_free > 0; b++) {
            uint32_t n = count - sent < 4096 ? count - sent : 4096;
            struct virtq_buf vb = { (uint64_t)(uintptr_t)vcon_bufs[b], n, 0 };
            if (virtq_add(&q1, &vb, 1) < 0)
                break;
            sent += n;
            added++;
        }
        if (added) {
            virtq_notify(&q1);
            kicks++;
        } else {
            uint32_t id, len;
            if (virtq_wait_used(&q1, &id, &len, 5000) != 0)
                test_fail("virtio-console: transmit buffers not returned within 5 s");
        }
    }
    drain(&q1, "virtio-console");
    kprintf("\nflood vcon done %u bytes %u kicks\n", sent, kicks);
    test_pass();
}

/* ---- virtio-balloon statistics --------------------------------------------------------- */

static uint8_t stats[64][640] __attribute__((aligned(16)));

static void flood_balloon(uint32_t count)
{
    find_and_init(VIRTIO_ID_BALLOON, 1ull << 1, "virtio-balloon");
    if (!(dev.features & (1ull << 1)))
        test_fail("virtio-balloon: no statistics queue");
    if (virtq_setup(&dev, &q0, 0, 4, VIRTIO_MSI_NO_VECTOR) != 0 || virtq_setup(&dev, &q1, 1, 4, VIRTIO_MSI_NO_VECTOR) != 0 ||
        virtq_setup(&dev, &q2, 2, 64, VIRTIO_MSI_NO_VECTOR) != 0)
        test_fail("queue setup failed");
    virtio_driver_ok(&dev);
    kprintf("flood balloon start\n");
    uint32_t sent = 0;
    while (sent < count) {
        reap(&q2);
        int added = 0;
        for (int b = 0; b < 64 && sent < count && q2.num_free > 0; b++) {
            for (int k = 0; k < 64; k++) { /* 64 entries: known tags 0-15, then unknown ones */
                uint8_t *e = &stats[b][k * 10];
                uint16_t tag = (uint16_t)(k < 16 ? (uint32_t)k : 0x100u + (uint32_t)k + sent);
                e[0] = (uint8_t)tag;
                e[1] = (uint8_t)(tag >> 8);
                uint32_t v = sent * 64 + (uint32_t)k;
                for (int j = 0; j < 8; j++)
                    e[2 + j] = j < 4 ? (uint8_t)(v >> (8 * j)) : 0;
            }
            struct virtq_buf vb = { (uint64_t)(uintptr_t)stats[b], sizeof(stats[b]), 0 };
            if (virtq_add(&q2, &vb, 1) < 0)
                break;
            sent++;
            added++;
        }
        if (added) {
            virtq_notify(&q2);
        } else {
            uint32_t id, len;
            if (virtq_wait_used(&q2, &id, &len, 5000) != 0)
                test_fail("virtio-balloon: statistics buffers not returned within 5 s");
        }
    }
    kprintf("flood balloon done %u statistics buffers\n", sent);
    test_pass();
}

/* ---- virtio-vsock -------------------------------------------------------------------- */

enum { OP_REQUEST = 1, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST };

struct vsock_hdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port, len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

static struct vsock_hdr vhdr[64] __attribute__((aligned(16)));
static uint64_t my_cid;

/* Queues one packet (header + up to 4 KiB of `page`); kicks every 16. */
static uint32_t vsock_pending;

static void vsock_send(uint16_t op, uint32_t src, uint32_t dst, uint32_t len)
{
    if (q1.num_free < 2) {
        virtq_notify(&q1);
        drain(&q1, "virtio-vsock");
        vsock_pending = 0;
    }
    reap(&q1);
    struct vsock_hdr *h = &vhdr[q1.free_head % 64];
    *h = (struct vsock_hdr){ my_cid, 2, src, dst, len, 1, op, 0, 65536, 0 };
    struct virtq_buf b[2] = {
        { (uint64_t)(uintptr_t)h, sizeof(*h), 0 },
        { (uint64_t)(uintptr_t)page, len, 0 },
    };
    if (virtq_add(&q1, b, len ? 2 : 1) < 0)
        test_fail("virtio-vsock: no free transmit descriptor");
    if (++vsock_pending >= 16) {
        virtq_notify(&q1);
        vsock_pending = 0;
    }
}

static void flood_vsock(uint32_t count)
{
    find_and_init(VIRTIO_ID_VSOCK, 0, "virtio-vsock");
    if (virtq_setup(&dev, &q0, 0, 8, VIRTIO_MSI_NO_VECTOR) != 0 || virtq_setup(&dev, &q1, 1, 64, VIRTIO_MSI_NO_VECTOR) != 0 ||
        virtq_setup(&dev, &q2, 2, 4, VIRTIO_MSI_NO_VECTOR) != 0)
        test_fail("queue setup failed");
    my_cid = virtio_cfg_read64(&dev, 0);
    virtio_driver_ok(&dev);
    uint32_t port = arg("port", 5000);
    uint32_t per = arg("per", 65536);
    for (uint32_t i = 0; i < sizeof(page); i++)
        page[i] = (uint8_t)('0' + i % 10);
    kprintf("flood vsock start cid %u connections %u bytes each %u\n", (unsigned)my_cid, count, per);
    /* Connect from `count` ports. The device answers into receive buffers we never post. */
    for (uint32_t i = 0; i < count; i++)
        vsock_send(OP_REQUEST, 10000 + i, port, 0);
    /* Data on every one, as if each had all the credit in the world. */
    uint32_t packets = 0;
    for (uint32_t sent = 0; sent < per; sent += 4096) {
        uint32_t n = per - sent < 4096 ? per - sent : 4096;
        for (uint32_t i = 0; i < count; i++) {
            vsock_send(OP_RW, 10000 + i, port, n);
            packets++;
        }
    }
    /* And requests to ports nobody listens on: each costs the host a failed connect. */
    uint32_t strays = arg("strays", 1024);
    for (uint32_t i = 0; i < strays; i++)
        vsock_send(OP_REQUEST, 50000 + i, 60000 + i, 0);
    virtq_notify(&q1);
    drain(&q1, "virtio-vsock");
    kprintf("flood vsock done %u requests %u data packets\n", count + strays, packets);
    if (arg("hold", 0)) {
        kprintf("flood vsock holding\n");
        halt_forever();
    }
    test_pass();
}

/* ---- virtio-net ----------------------------------------------------------------------- */

static uint8_t net_rx[4][2048] __attribute__((aligned(16)));

static void flood_net(void)
{
    find_and_init(VIRTIO_ID_NET, 1ull << 5, "virtio-net");
    if (virtq_setup(&dev, &q0, 0, 8, VIRTIO_MSI_NO_VECTOR) != 0 || virtq_setup(&dev, &q1, 1, 8, VIRTIO_MSI_NO_VECTOR) != 0)
        test_fail("queue setup failed");
    for (int i = 0; i < 4; i++) {
        struct virtq_buf b = { (uint64_t)(uintptr_t)net_rx[i], sizeof(net_rx[i]), 1 };
        virtq_add(&q0, &b, 1);
    }
    virtio_driver_ok(&dev);
    virtq_notify(&q0);
    kprintf("flood net ready\n");
    halt_forever();
}

/* ---- echo ----------------------------------------------------------------------------- */

static volatile uint32_t echoed;

static void on_uart(struct isr_frame *f)
{
    (void)f;
    for (int n = 0; n < 64 && (inb(COM1_PORT + UART_LSR) & UART_LSR_DR); n++) {
        uint8_t c = inb(COM1_PORT + UART_RBR);
        outb(COM1_PORT + UART_THR, c);
        echoed++;
    }
    (void)inb(COM1_PORT + UART_IIR);
    pic_eoi(4);
}

static void echo(void)
{
    idt_init();
    idt_set_handler(VEC_PIC_BASE + 4, on_uart);
    pic_remap(VEC_PIC_BASE, VEC_PIC2_BASE);
    outb(COM1_PORT + UART_IER, 0x01);
    pic_unmask(4);
    kprintf("flood echo ready\n");
    for (;;)
        cpu_sti_hlt();
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    if ((mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline)
        cmdline = multiboot_args((const char *)(uintptr_t)mbi->cmdline, 512);
    if (mode_is("uart"))
        flood_uart(arg("count", 4u << 20));
    if (mode_is("pio"))
        flood_pio(arg("count", 200000));
    if (mode_is("mmio"))
        flood_mmio(arg("count", 200000));
    if (mode_is("msix"))
        flood_msix(arg("count", 20000));
    if (mode_is("vcon"))
        flood_vcon(arg("count", 4u << 20));
    if (mode_is("balloon"))
        flood_balloon(arg("count", 20000));
    if (mode_is("vsock"))
        flood_vsock(arg("count", 1023));
    if (mode_is("net"))
        flood_net();
    if (mode_is("echo"))
        echo();
    if (mode_is("quiet")) {
        kprintf("flood quiet ready\n");
        halt_forever();
    }
    test_fail("mode= must be uart, pio, mmio, msix, vcon, balloon, vsock, net, echo or quiet");
}
