/* virtio-net: drives the first virtio-net device (PCI 1af4:1041) with the kit's virtio
 * library (32-bit, polling). Negotiates VERSION_1, MAC, STATUS and MRG_RXBUF (plus
 * GUEST_CSUM with csum=1), posts 16 receive buffers of 2 KiB, then talks to the host:
 *   1. an ARP request for host=<ip> from ip=<ip>; waits for the reply (ARP requests for
 *      our address are answered meanwhile; other frames are skipped);
 *   2. a UDP datagram "skiff-ping" from port 40000 to host:port=<n>; waits for a short
 *      reply datagram and then a big one of big=<n> bytes (default 4000) whose byte i is
 *      (i * 7 + 3) & 0xff, which spans several mergeable buffers when the host's MTU allows.
 * Command line: ip=A.B.C.D host=A.B.C.D port=N [big=N] [csum=1] [wait-key=1]
 * wait-key=1: after DRIVER_OK (queues set up, receive buffers posted) and the first line,
 * prints `virtio-net ready`, then polls COM1 (LSR data ready) until one byte arrives, discards it
 * and goes on: a host can snapshot a set-up driver before the device is used.
 * Output:
 *   virtio-net 00:<slot>.0 mac <mac> link <0|1> features 0x<negotiated>
 *   arp reply from <host mac>
 *   udp reply "<payload>" flags 0x<virtio-net header flags>
 *   udp big reply <n> bytes in <k> buffers ok
 *   tx frames <n> rx frames <n>
 * Fails on a timeout (10 s per step), a short or corrupt frame, or a wrong big payload. */
#include "io.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"
#include "virtio.h"

const char test_name[] = "virtio-net";

#define VIRTIO_NET_F_GUEST_CSUM (1ull << 1)
#define VIRTIO_NET_F_MAC (1ull << 5)
#define VIRTIO_NET_F_MRG_RXBUF (1ull << 15)
#define VIRTIO_NET_F_STATUS (1ull << 16)
#define VIRTIO_NET_S_LINK_UP 1
#define NET_HDR 12
#define RX_BUFS 16
#define RX_BUF_SIZE 2048
#define MAX_FRAME 9216
#define STEP_MS 10000
#define TSC_PER_MS (TSC_PER_SECOND_GUESS / 1000)
#define GUEST_UDP_PORT 40000

static struct virtq rxq, txq;
static uint8_t rx_bufs[RX_BUFS][RX_BUF_SIZE] __attribute__((aligned(16)));
static int rx_buf_of_head[VIRTQ_MAX_SIZE];
static uint8_t tx_hdr[NET_HDR] __attribute__((aligned(16)));
static uint8_t tx_frame[1536] __attribute__((aligned(16)));
static uint8_t frame[MAX_FRAME + NET_HDR];
static uint8_t my_mac[6], host_mac[6];
static uint8_t my_ip[4], host_ip[4];
static uint32_t tx_count, rx_count;

struct rx_frame {
    uint32_t length;   /* bytes in `frame`, header included */
    uint16_t buffers;  /* num_buffers */
};

static void post_rx(int i)
{
    struct virtq_buf b = { (uint64_t)(uintptr_t)rx_bufs[i], RX_BUF_SIZE, 1 };
    int head = virtq_add(&rxq, &b, 1);
    if (head < 0)
        test_fail("no free receive descriptor");
    rx_buf_of_head[head] = i;
}

static int take_rx(uint32_t *len)
{
    uint32_t id;
    if (!virtq_get_used(&rxq, &id, len))
        return -1;
    if (id >= VIRTQ_MAX_SIZE)
        test_fail("receive used id %u out of range", id);
    return rx_buf_of_head[id];
}

/* Waits until `deadline` for a frame; gathers mergeable buffers into `frame`. 0 or -1. */
static int receive(struct rx_frame *out, uint64_t deadline)
{
    uint32_t len;
    int b;
    while ((b = take_rx(&len)) < 0) {
        if (rdtsc() > deadline)
            return -1;
        cpu_pause();
    }
    if (len < NET_HDR || len > RX_BUF_SIZE)
        test_fail("receive buffer used length %u", len);
    memcpy(frame, rx_bufs[b], len);
    uint16_t n = (uint16_t)(frame[10] | frame[11] << 8);
    uint32_t total = len;
    post_rx(b);
    if (n == 0 || n > RX_BUFS)
        test_fail("num_buffers %u", n);
    for (uint16_t k = 1; k < n; k++) {
        while ((b = take_rx(&len)) < 0) {
            if (rdtsc() > deadline)
                test_fail("buffer %u of %u of a merged frame never came", k + 1, n);
            cpu_pause();
        }
        if (total + len > sizeof(frame))
            test_fail("merged frame longer than %u bytes", (unsigned)sizeof(frame));
        memcpy(frame + total, rx_bufs[b], len);
        total += len;
        post_rx(b);
    }
    virtq_kick(&rxq);
    rx_count++;
    out->length = total;
    out->buffers = n;
    return 0;
}

/* Sends `len` bytes of tx_frame (header in its own descriptor) and waits for completion. */
static void transmit(uint32_t len)
{
    if (len < 60) {
        memset(tx_frame + len, 0, 60 - len);
        len = 60;
    }
    memset(tx_hdr, 0, sizeof(tx_hdr));
    struct virtq_buf b[2] = {
        { (uint64_t)(uintptr_t)tx_hdr, NET_HDR, 0 },
        { (uint64_t)(uintptr_t)tx_frame, len, 0 },
    };
    if (virtq_add(&txq, b, 2) < 0)
        test_fail("no free transmit descriptor");
    virtq_kick(&txq);
    uint32_t id, used;
    if (virtq_wait_used(&txq, &id, &used, STEP_MS) != 0)
        test_fail("transmit not completed within %u ms", STEP_MS);
    tx_count++;
}

static int parse_ip(const char *s, uint8_t out[4])
{
    for (int i = 0; i < 4; i++) {
        uint32_t v = 0;
        int digits = 0;
        while (s && *s >= '0' && *s <= '9' && digits < 4) {
            v = v * 10 + (uint32_t)(*s++ - '0');
            digits++;
        }
        if (!digits || v > 255)
            return -1;
        out[i] = (uint8_t)v;
        if (i < 3 && *s++ != '.')
            return -1;
    }
    return 0;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static uint16_t ip_checksum(const uint8_t *p, unsigned n)
{
    uint32_t sum = 0;
    for (unsigned i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void ethernet(const uint8_t *dst, uint16_t type)
{
    memcpy(tx_frame, dst, 6);
    memcpy(tx_frame + 6, my_mac, 6);
    put16(tx_frame + 12, type);
}

static void send_arp(uint16_t op, const uint8_t *dst_mac, const uint8_t *target_mac, const uint8_t *target_ip)
{
    ethernet(dst_mac, 0x0806);
    uint8_t *a = tx_frame + 14;
    put16(a, 1);
    put16(a + 2, 0x0800);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, my_mac, 6);
    memcpy(a + 14, my_ip, 4);
    memcpy(a + 18, target_mac, 6);
    memcpy(a + 24, target_ip, 4);
    transmit(14 + 28);
}

/* Handles an ARP request for our address; returns 1 if the frame was one. */
static int answer_arp(const uint8_t *f, uint32_t n)
{
    if (n < 14 + 28 || get16(f + 12) != 0x0806 || get16(f + 14 + 6) != 1 || memcmp(f + 14 + 24, my_ip, 4) != 0)
        return 0;
    send_arp(2, f + 6, f + 14 + 8, f + 14 + 14);
    return 1;
}

static void send_udp(uint16_t port, const char *text)
{
    uint32_t len = (uint32_t)strlen(text);
    ethernet(host_mac, 0x0800);
    uint8_t *ip = tx_frame + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + 8 + len));
    put16(ip + 4, 1);
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, my_ip, 4);
    memcpy(ip + 16, host_ip, 4);
    put16(ip + 10, ip_checksum(ip, 20));
    uint8_t *udp = ip + 20;
    put16(udp, GUEST_UDP_PORT);
    put16(udp + 2, port);
    put16(udp + 4, (uint16_t)(8 + len));
    put16(udp + 6, 0); /* no checksum (allowed for IPv4) */
    memcpy(udp + 8, text, len);
    transmit(14 + 20 + 8 + len);
}

/* Waits for a UDP datagram from host:port to our port; returns its payload length (payload at
 * frame + NET_HDR + 14 + ihl + 8). Answers ARP requests for us on the way. */
static uint32_t wait_udp(uint16_t port, struct rx_frame *rf, uint32_t *payload_offset)
{
    uint64_t deadline = rdtsc() + (uint64_t)STEP_MS * TSC_PER_MS;
    for (;;) {
        if (receive(rf, deadline) != 0)
            test_fail("no UDP reply from port %u within %u ms", port, STEP_MS);
        const uint8_t *f = frame + NET_HDR;
        uint32_t n = rf->length - NET_HDR;
        if (answer_arp(f, n))
            continue;
        if (n < 14 + 20 + 8 || get16(f + 12) != 0x0800)
            continue;
        const uint8_t *ip = f + 14;
        uint32_t ihl = (uint32_t)(ip[0] & 0xf) * 4;
        if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != 17 || memcmp(ip + 12, host_ip, 4) != 0 || n < 14 + ihl + 8)
            continue;
        const uint8_t *udp = ip + ihl;
        if (get16(udp) != port || get16(udp + 2) != GUEST_UDP_PORT)
            continue;
        uint32_t ulen = get16(udp + 4);
        if (ulen < 8 || 14 + ihl + ulen > n)
            test_fail("UDP length %u does not fit the %u-byte frame", ulen, n);
        *payload_offset = NET_HDR + 14 + ihl + 8;
        return ulen - 8;
    }
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    const char *cmdline = (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline ? (const char *)(uintptr_t)mbi->cmdline : "";
    uint32_t port = 0, big = 4000, csum = 0;
    if (parse_ip(cmdline_find(cmdline, 512, "ip"), my_ip) || parse_ip(cmdline_find(cmdline, 512, "host"), host_ip) ||
        !cmdline_find(cmdline, 512, "port") || parse_u32(cmdline_find(cmdline, 512, "port"), &port) || port == 0 || port > 65535)
        test_fail("command line needs ip=A.B.C.D host=A.B.C.D port=N");
    if (cmdline_find(cmdline, 512, "big") && (parse_u32(cmdline_find(cmdline, 512, "big"), &big) || big > MAX_FRAME - 14 - 28))
        test_fail("big=%u is too large", big);
    if (cmdline_find(cmdline, 512, "csum"))
        parse_u32(cmdline_find(cmdline, 512, "csum"), &csum);
    uint32_t wait_key = 0;
    if (cmdline_find(cmdline, 512, "wait-key") && parse_u32(cmdline_find(cmdline, 512, "wait-key"), &wait_key) != 0)
        test_fail("bad wait-key=");

    struct virtio_dev dev;
    int r = virtio_find(VIRTIO_ID_NET, 0, &dev);
    if (r != 0)
        test_fail("virtio-net: %s", virtio_find_error(r));
    uint64_t wanted = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MRG_RXBUF;
    if (csum)
        wanted |= VIRTIO_NET_F_GUEST_CSUM;
    if ((r = virtio_init(&dev, wanted)) != 0)
        test_fail("feature negotiation failed (%d), offered 0x%llx", r, (unsigned long long)dev.offered);
    if (!(dev.features & VIRTIO_NET_F_MAC) || !(dev.features & VIRTIO_NET_F_MRG_RXBUF))
        test_fail("MAC or MRG_RXBUF not offered (0x%llx)", (unsigned long long)dev.offered);
    if (csum && !(dev.features & VIRTIO_NET_F_GUEST_CSUM))
        test_fail("csum=1 but GUEST_CSUM is not offered (0x%llx)", (unsigned long long)dev.offered);
    if ((r = virtq_setup(&dev, &rxq, 0, RX_BUFS, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("receive queue setup failed (%d)", r);
    if ((r = virtq_setup(&dev, &txq, 1, 16, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("transmit queue setup failed (%d)", r);
    for (int i = 0; i < RX_BUFS; i++)
        post_rx(i);
    virtio_driver_ok(&dev);
    virtq_kick(&rxq);
    for (int i = 0; i < 6; i++)
        my_mac[i] = virtio_cfg_read8(&dev, (uint32_t)i);
    uint16_t link = virtio_cfg_read16(&dev, 6);
    kprintf("virtio-net 00:%02x.%u mac %02x:%02x:%02x:%02x:%02x:%02x link %u features 0x%llx\n", dev.pci.slot, dev.pci.func,
            my_mac[0], my_mac[1], my_mac[2], my_mac[3], my_mac[4], my_mac[5], link & VIRTIO_NET_S_LINK_UP,
            (unsigned long long)dev.features);
    if (!(link & VIRTIO_NET_S_LINK_UP))
        test_fail("link is down");
    if (wait_key) {
        kprintf("virtio-net ready\n");
        serial_wait_byte();
    }

    /* 1. ARP for the host. */
    static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t zero_mac[6] = { 0 };
    send_arp(1, broadcast, zero_mac, host_ip);
    uint64_t deadline = rdtsc() + (uint64_t)STEP_MS * TSC_PER_MS;
    struct rx_frame rf;
    for (;;) {
        if (receive(&rf, deadline) != 0)
            test_fail("no ARP reply within %u ms", STEP_MS);
        const uint8_t *f = frame + NET_HDR;
        uint32_t n = rf.length - NET_HDR;
        if (answer_arp(f, n))
            continue;
        if (n >= 14 + 28 && get16(f + 12) == 0x0806 && get16(f + 14 + 6) == 2 && memcmp(f + 14 + 14, host_ip, 4) == 0) {
            memcpy(host_mac, f + 14 + 8, 6);
            break;
        }
    }
    kprintf("arp reply from %02x:%02x:%02x:%02x:%02x:%02x\n", host_mac[0], host_mac[1], host_mac[2], host_mac[3], host_mac[4],
            host_mac[5]);

    /* 2. UDP round trip, then a big datagram that needs merged buffers. */
    send_udp((uint16_t)port, "skiff-ping");
    uint32_t at;
    uint32_t n = wait_udp((uint16_t)port, &rf, &at);
    kprintf("udp reply ");
    print_bytes_as_text(frame + at, n > 64 ? 64 : n);
    kprintf(" flags 0x%x\n", frame[0]);
    n = wait_udp((uint16_t)port, &rf, &at);
    if (n != big)
        test_fail("big reply has %u bytes, expected %u", n, big);
    for (uint32_t i = 0; i < n; i++)
        if (frame[at + i] != (uint8_t)(i * 7 + 3))
            test_fail("big reply byte %u is 0x%x, expected 0x%x", i, frame[at + i], (uint8_t)(i * 7 + 3));
    kprintf("udp big reply %u bytes in %u buffers ok\n", n, rf.buffers);
    kprintf("tx frames %u rx frames %u\n", tx_count, rx_count);
    virtio_reset(&dev);
    test_pass();
}
