/* virtio-console: drives the first virtio-console device (PCI 1af4:1043), port 0 (hvc0), in
 * long mode, polling. Negotiates VERSION_1 and EMERG_WRITE when offered, posts receive
 * buffers on receiveq (0), writes a greeting on transmitq (1), writes "emerg\n" byte by byte
 * through the emerg_wr config field when negotiated, then reads host input up to a newline
 * and echoes it back on transmitq as "echo: <line>".
 * Output on the virtio console (hvc0):
 *   hello from hvc0
 *   emerg                                   (EMERG_WRITE)
 *   echo: <line>
 * Output on COM1:
 *   virtio-console 00:<slot>.0 features 0x<negotiated>
 *   virtio-console waiting for input
 *   virtio-console got <n> bytes
 * Fails on a missing device, a transmit the device does not complete within 5 s, or no
 * complete input line within 60 s. */
#include "io.h"
#include "longmode.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"
#include "virtio.h"

const char test_name[] = "virtio-console";

#define CONSOLE_F_EMERG_WRITE (1ull << 2)
#define CFG_EMERG_WR 8
#define RX_BUFFERS 8
#define RX_BUFFER_SIZE 64
#define LINE_MAX 128
#define TIMEOUT_MS 5000u
#define INPUT_TIMEOUT_MS 60000ull

static struct virtq rxq, txq;
static uint8_t rx_buffers[RX_BUFFERS][RX_BUFFER_SIZE];
static char tx_buffer[LINE_MAX + 16];
static char line[LINE_MAX];

static void post_receive(unsigned i)
{
    struct virtq_buf b = { (uint64_t)(uintptr_t)rx_buffers[i], RX_BUFFER_SIZE, 1 };
    if (virtq_add(&rxq, &b, 1) != (int)i)
        test_fail("receive buffer %u did not get descriptor %u", i, i);
}

static void transmit(const char *text, size_t length)
{
    memcpy(tx_buffer, text, length);
    struct virtq_buf b = { (uint64_t)(uintptr_t)tx_buffer, (uint32_t)length, 0 };
    if (virtq_add(&txq, &b, 1) < 0)
        test_fail("no free transmit descriptor");
    virtq_notify(&txq);
    if (virtq_wait_used(&txq, NULL, NULL, TIMEOUT_MS) != 0)
        test_fail("transmit not completed (used.idx %u)", virtq_used_idx(&txq));
}

void kmain64(uint64_t magic, uint64_t mbi)
{
    (void)mbi;
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%llx", (unsigned long long)magic);

    struct virtio_dev dev;
    int r = virtio_find(VIRTIO_ID_CONSOLE, 0, &dev);
    if (r != 0)
        test_fail("virtio-console: %s", virtio_find_error(r));
    if ((r = virtio_init(&dev, VIRTIO_F_VERSION_1 | CONSOLE_F_EMERG_WRITE)) != 0)
        test_fail("feature negotiation failed (%d), offered 0x%llx", r, (unsigned long long)dev.offered);
    kprintf("virtio-console 00:%02x.%u features 0x%llx\n", dev.pci.slot, dev.pci.func, (unsigned long long)dev.features);
    if ((r = virtq_setup(&dev, &rxq, 0, RX_BUFFERS, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("receiveq setup failed (%d)", r);
    if ((r = virtq_setup(&dev, &txq, 1, 8, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("transmitq setup failed (%d)", r);
    if (rxq.size < RX_BUFFERS)
        test_fail("receiveq has only %u entries", rxq.size);
    for (unsigned i = 0; i < RX_BUFFERS; i++)
        post_receive(i);
    virtio_driver_ok(&dev);
    if (!(virtio_get_status(&dev) & VIRTIO_STATUS_DRIVER_OK))
        test_fail("DRIVER_OK did not stick (status 0x%x)", virtio_get_status(&dev));
    virtq_notify(&rxq);

    static const char greeting[] = "hello from hvc0\n";
    transmit(greeting, sizeof(greeting) - 1);
    if (dev.features & CONSOLE_F_EMERG_WRITE) {
        static const char emerg[] = "emerg\n";
        for (unsigned i = 0; emerg[i]; i++)
            virtio_cfg_write32(&dev, CFG_EMERG_WR, (uint8_t)emerg[i]);
    }
    kprintf("virtio-console waiting for input\n");

    size_t length = 0, received = 0;
    uint64_t start = rdtsc();
    for (;;) {
        uint32_t id, len;
        if (!virtq_get_used(&rxq, &id, &len)) {
            if (rdtsc() - start > INPUT_TIMEOUT_MS * (TSC_PER_SECOND_GUESS / 1000))
                test_fail("no input line within 60 s (%u bytes so far)", (unsigned)received);
            (void)virtio_get_status(&dev); /* an exit now and then lets the host inject work */
            continue;
        }
        if (id >= RX_BUFFERS || len > RX_BUFFER_SIZE)
            test_fail("receive used element id %u len %u", id, len);
        received += len;
        int newline = 0;
        for (uint32_t i = 0; i < len; i++) {
            char c = (char)rx_buffers[id][i];
            if (c == '\n' || c == '\r') {
                newline = 1;
                break;
            }
            if (length < LINE_MAX)
                line[length++] = c;
        }
        post_receive(id);
        virtq_notify(&rxq);
        if (newline)
            break;
    }
    kprintf("virtio-console got %u bytes\n", (unsigned)received);

    char reply[LINE_MAX + 16];
    memcpy(reply, "echo: ", 6);
    memcpy(reply + 6, line, length);
    reply[6 + length] = '\n';
    transmit(reply, 6 + length + 1);
    virtio_reset(&dev);
    test_pass();
}
