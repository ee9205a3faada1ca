/* virtio-vsock: drives the first virtio-vsock device (PCI 1af4:1053) with the kit's virtio
 * library (32-bit, polling) and speaks the stream protocol of virtio 1.x §5.10 itself.
 *   1. Guest-initiated: connects from port 2000 to the host (CID 2) at port=<n>, sends
 *      "hello from guest <cid>", waits for the host's bytes, then closes (SHUTDOWN, RST).
 *   2. Host-initiated: accepts a connection to listen=<n> (at any time; others are reset),
 *      echoes each data packet back as "echo:<bytes>", and ends when the host closes.
 * Credit: advertises a 64 KiB buffer and answers credit requests.
 * Command line: port=N listen=N [wait-key=1]
 * wait-key=1: after DRIVER_OK (queues set up, receive buffers posted) and the first line,
 * prints `virtio-vsock ready`, then polls COM1 (LSR data ready) until one byte arrives, discards it
 * and goes on: a host can snapshot a set-up driver before the device is used.
 * Output:
 *   virtio-vsock 00:<slot>.0 cid <cid> features 0x<negotiated>
 *   guest-initiated connected to port <n>
 *   guest-initiated got "<bytes>"
 *   guest-initiated closed
 *   host-initiated connection from port <n>
 *   host-initiated got "<bytes>"
 *   host-initiated closed
 * Fails if the host refuses, nothing happens for 60 s, or a packet is malformed. */
#include "io.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"
#include "virtio.h"

const char test_name[] = "virtio-vsock";

#define HOST_CID 2
#define GUEST_PORT 2000
#define RX_BUFS 8
#define PAYLOAD_MAX 4096
#define BUF_ALLOC 65536
#define TIMEOUT_MS 60000
#define TSC_PER_MS (TSC_PER_SECOND_GUESS / 1000)

enum { OP_REQUEST = 1, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST };

struct vsock_hdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port, len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

struct conn {
    uint32_t local, peer; /* our port, the host's port */
    uint32_t fwd_cnt;     /* bytes we consumed */
    int state;            /* 0 idle, 1 connecting, 2 open, 3 closing, 4 done */
};

static struct virtq rxq, txq, evq;
static uint8_t rx_bufs[RX_BUFS][sizeof(struct vsock_hdr) + PAYLOAD_MAX] __attribute__((aligned(16)));
static int rx_buf_of_head[VIRTQ_MAX_SIZE];
static uint8_t ev_buf[8] __attribute__((aligned(8)));
static struct vsock_hdr tx_hdr __attribute__((aligned(16)));
static uint8_t tx_payload[PAYLOAD_MAX + 8] __attribute__((aligned(16)));
static uint64_t my_cid;
static struct conn out, in; /* guest-initiated, host-initiated */
static uint32_t listen_port;

static void post_rx(int i)
{
    struct virtq_buf b = { (uint64_t)(uintptr_t)rx_bufs[i], sizeof(rx_bufs[i]), 1 };
    int head = virtq_add(&rxq, &b, 1);
    if (head < 0)
        test_fail("no free receive descriptor");
    rx_buf_of_head[head] = i;
}

static void send_packet(uint16_t op, uint32_t local, uint32_t peer, uint32_t flags, uint32_t fwd_cnt, const void *data, uint32_t len)
{
    tx_hdr = (struct vsock_hdr){ my_cid, HOST_CID, local, peer, len, 1, op, flags, BUF_ALLOC, fwd_cnt };
    struct virtq_buf b[2] = {
        { (uint64_t)(uintptr_t)&tx_hdr, sizeof(tx_hdr), 0 },
        { (uint64_t)(uintptr_t)tx_payload, len, 0 },
    };
    if (len)
        memcpy(tx_payload, data, len);
    if (virtq_add(&txq, b, len ? 2 : 1) < 0)
        test_fail("no free transmit descriptor");
    virtq_kick(&txq);
    uint32_t id, used;
    if (virtq_wait_used(&txq, &id, &used, 5000) != 0)
        test_fail("transmit not completed within 5 s");
}

static void send_to(struct conn *c, uint16_t op, uint32_t flags, const void *data, uint32_t len)
{
    send_packet(op, c->local, c->peer, flags, c->fwd_cnt, data, len);
}

static void print_payload(const char *who, const uint8_t *p, uint32_t n)
{
    kprintf("%s got ", who);
    print_bytes_as_text(p, n > 64 ? 64 : n);
    kprintf("\n");
}

/* One received packet. */
static void handle(const struct vsock_hdr *h, const uint8_t *payload)
{
    if (h->type != 1 || h->dst_cid != my_cid || h->src_cid != HOST_CID)
        test_fail("packet with type %u from cid %llu to cid %llu", h->type, (unsigned long long)h->src_cid,
                  (unsigned long long)h->dst_cid);
    struct conn *c = 0;
    if (out.state && h->dst_port == out.local && h->src_port == out.peer)
        c = &out;
    else if (in.state && in.state != 4 && h->dst_port == in.local && h->src_port == in.peer)
        c = &in;

    if (!c) {
        if (h->op == OP_REQUEST && h->dst_port == listen_port && in.state == 0) {
            in = (struct conn){ listen_port, h->src_port, 0, 2 };
            send_to(&in, OP_RESPONSE, 0, 0, 0);
            kprintf("host-initiated connection from port %u\n", h->src_port);
        } else if (h->op != OP_RST) {
            send_packet(OP_RST, h->dst_port, h->src_port, 0, 0, 0, 0);
        }
        return;
    }
    switch (h->op) {
    case OP_RESPONSE:
        if (c != &out || c->state != 1)
            test_fail("unexpected RESPONSE");
        c->state = 2;
        kprintf("guest-initiated connected to port %u\n", c->peer);
        char text[48];
        int n = ksnprintf(text, sizeof(text), "hello from guest %u", (unsigned)my_cid);
        send_to(c, OP_RW, 0, text, (uint32_t)n);
        break;
    case OP_RW:
        if (h->len > PAYLOAD_MAX)
            test_fail("RW of %u bytes", h->len);
        c->fwd_cnt += h->len;
        if (c == &out) {
            print_payload("guest-initiated", payload, h->len);
            c->state = 3;
            send_to(c, OP_SHUTDOWN, 3, 0, 0);
        } else {
            print_payload("host-initiated", payload, h->len);
            static uint8_t echo[PAYLOAD_MAX + 5];
            memcpy(echo, "echo:", 5);
            memcpy(echo + 5, payload, h->len);
            send_to(c, OP_RW, 0, echo, h->len + 5);
        }
        break;
    case OP_CREDIT_REQUEST:
        send_to(c, OP_CREDIT_UPDATE, 0, 0, 0);
        break;
    case OP_CREDIT_UPDATE:
        break;
    case OP_SHUTDOWN:
        send_to(c, OP_RST, 0, 0, 0);
        /* fall through */
    case OP_RST:
        if (c == &out && c->state < 3)
            test_fail("host reset the guest-initiated connection (op %u)", h->op);
        if (c->state != 4)
            kprintf("%s closed\n", c == &out ? "guest-initiated" : "host-initiated");
        c->state = 4;
        break;
    default:
        test_fail("unknown op %u", h->op);
    }
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    const char *cmdline = (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline ? (const char *)(uintptr_t)mbi->cmdline : "";
    uint32_t port = 0;
    if (!cmdline_find(cmdline, 512, "port") || parse_u32(cmdline_find(cmdline, 512, "port"), &port) ||
        !cmdline_find(cmdline, 512, "listen") || parse_u32(cmdline_find(cmdline, 512, "listen"), &listen_port))
        test_fail("command line needs port=N listen=N");
    uint32_t wait_key = 0;
    if (cmdline_find(cmdline, 512, "wait-key") && parse_u32(cmdline_find(cmdline, 512, "wait-key"), &wait_key) != 0)
        test_fail("bad wait-key=");

    struct virtio_dev dev;
    int r = virtio_find(VIRTIO_ID_VSOCK, 0, &dev);
    if (r != 0)
        test_fail("virtio-vsock: %s", virtio_find_error(r));
    if ((r = virtio_init(&dev, VIRTIO_F_VERSION_1)) != 0)
        test_fail("feature negotiation failed (%d), offered 0x%llx", r, (unsigned long long)dev.offered);
    if ((r = virtq_setup(&dev, &rxq, 0, RX_BUFS, VIRTIO_MSI_NO_VECTOR)) != 0 ||
        (r = virtq_setup(&dev, &txq, 1, 8, VIRTIO_MSI_NO_VECTOR)) != 0 ||
        (r = virtq_setup(&dev, &evq, 2, 4, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("queue setup failed (%d)", r);
    for (int i = 0; i < RX_BUFS; i++)
        post_rx(i);
    struct virtq_buf eb = { (uint64_t)(uintptr_t)ev_buf, sizeof(ev_buf), 1 };
    virtq_add(&evq, &eb, 1);
    virtio_driver_ok(&dev);
    virtq_kick(&rxq);
    virtq_kick(&evq);
    my_cid = virtio_cfg_read64(&dev, 0);
    kprintf("virtio-vsock 00:%02x.%u cid %llu features 0x%llx\n", dev.pci.slot, dev.pci.func, (unsigned long long)my_cid,
            (unsigned long long)dev.features);
    if (my_cid < 3 || my_cid >= 0xffffffffull)
        test_fail("guest cid %llu is invalid", (unsigned long long)my_cid);
    if (wait_key) {
        kprintf("virtio-vsock ready\n");
        serial_wait_byte();
    }

    out = (struct conn){ GUEST_PORT, port, 0, 1 };
    send_to(&out, OP_REQUEST, 0, 0, 0);

    uint64_t deadline = rdtsc() + (uint64_t)TIMEOUT_MS * TSC_PER_MS;
    while (out.state != 4 || in.state != 4) {
        uint32_t id, len;
        if (!virtq_get_used(&rxq, &id, &len)) {
            if (rdtsc() > deadline)
                test_fail("timed out (guest-initiated state %d, host-initiated state %d)", out.state, in.state);
            cpu_pause();
            continue;
        }
        if (id >= VIRTQ_MAX_SIZE)
            test_fail("receive used id %u", id);
        int b = rx_buf_of_head[id];
        if (len < sizeof(struct vsock_hdr))
            test_fail("receive used length %u", len);
        struct vsock_hdr h;
        memcpy(&h, rx_bufs[b], sizeof(h));
        if (h.len > len - sizeof(struct vsock_hdr))
            test_fail("packet length %u exceeds the %u bytes written", h.len, len);
        handle(&h, rx_bufs[b] + sizeof(struct vsock_hdr));
        post_rx(b);
        virtq_kick(&rxq);
    }
    virtio_reset(&dev);
    test_pass();
}
