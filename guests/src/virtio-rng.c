/* virtio-rng: drives the first virtio-rng device (PCI 1af4:1044) with the kit's virtio
 * library in long mode. Enumerates bus 0, maps the virtio structures from the vendor
 * capabilities, negotiates VERSION_1 (+ EVENT_IDX when offered), binds queue 0 to MSI-X
 * entry 0 → vector 0x60 on this CPU's LAPIC, then reads 64 bytes twice. Each completion
 * is found by polling the used ring; the MSI-X interrupts must arrive as well.
 * Output:
 *   virtio-rng 00:<slot>.0 features 0x<negotiated>
 *   rng bytes <first 16 bytes of the first read, hex>
 *   rng msix interrupts <n>
 * Fails if a read is short, all zero, or both reads are equal, or no interrupt arrives.
 * wait-key=1: after DRIVER_OK (queue and MSI-X set up) prints `virtio-rng ready`, then
 * polls COM1 (LSR data ready, interrupts off) until one byte arrives, discards it and goes
 * on: a host can snapshot a set-up driver before the device is used. */
#include "idt.h"
#include "io.h"
#include "lapic.h"
#include "longmode.h"
#include "multiboot.h"
#include "pic.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"
#include "virtio.h"

const char test_name[] = "virtio-rng";

#define VEC_RNG 0x60
#define READ_BYTES 64

static struct virtq rq;
static uint8_t first[READ_BYTES], second[READ_BYTES];
static volatile uint32_t interrupts;

static void on_rng(struct isr_frame *f)
{
    (void)f;
    interrupts++;
    lapic_eoi();
}

static void read_random(uint8_t *buf)
{
    memset(buf, 0, READ_BYTES);
    struct virtq_buf b = { (uint64_t)(uintptr_t)buf, READ_BYTES, 1 };
    int head = virtq_add(&rq, &b, 1);
    if (head < 0)
        test_fail("no free descriptor");
    virtq_kick(&rq);
    uint32_t id, len;
    if (virtq_wait_used(&rq, &id, &len, 2000) != 0)
        test_fail("no completion within 2 s (used.idx %u)", virtq_used_idx(&rq));
    if (id != (uint32_t)head || len != READ_BYTES)
        test_fail("used element id %u len %u, expected id %d len %u", id, len, head, READ_BYTES);
}

static int all_zero(const uint8_t *b)
{
    for (unsigned i = 0; i < READ_BYTES; i++)
        if (b[i])
            return 0;
    return 1;
}

void kmain64(uint64_t magic, uint64_t mbi_addr)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%llx", (unsigned long long)magic);
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uintptr_t)mbi_addr;
    const char *cmdline = (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline ? (const char *)(uintptr_t)mbi->cmdline : "";
    uint32_t wait_key = 0;
    const char *v = cmdline_find(cmdline, 512, "wait-key");
    if (v && parse_u32(v, &wait_key) != 0)
        test_fail("bad wait-key=%s", v);

    struct virtio_dev dev;
    int r = virtio_find(VIRTIO_ID_RNG, 0, &dev);
    if (r != 0)
        test_fail("virtio-rng: %s", virtio_find_error(r));
    r = virtio_init(&dev, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX);
    if (r != 0)
        test_fail("feature negotiation failed (%d), offered 0x%llx", r, (unsigned long long)dev.offered);
    kprintf("virtio-rng 00:%02x.%u features 0x%llx\n", dev.pci.slot, dev.pci.func, (unsigned long long)dev.features);

    idt_init();
    idt_set_handler(VEC_RNG, on_rng);
    pic_remap(VEC_PIC_BASE, VEC_PIC2_BASE); /* legacy IRQs stay masked */
    lapic_enable(VEC_LAPIC_SPURIOUS);
    if ((r = virtio_msix_setup(&dev, (uint8_t)lapic_id(), VEC_RNG, 1)) != 0)
        test_fail("MSI-X setup failed (%d)", r);
    if ((r = virtq_setup(&dev, &rq, 0, 16, 0)) != 0)
        test_fail("queue 0 setup failed (%d)", r);
    virtio_driver_ok(&dev);
    if (!(virtio_get_status(&dev) & VIRTIO_STATUS_DRIVER_OK))
        test_fail("DRIVER_OK did not stick (status 0x%x)", virtio_get_status(&dev));
    if (wait_key) {
        kprintf("virtio-rng ready\n");
        serial_wait_byte();
    }
    cpu_sti();

    read_random(first);
    read_random(second);
    uint64_t start = rdtsc();
    /* Each status read is an MMIO exit, which gives the hypervisor a point to inject at
     * (a nested KVM may otherwise let a pause loop run a long time before injecting). */
    while (interrupts < 2 && rdtsc() - start < TSC_PER_SECOND_GUESS)
        (void)virtio_get_status(&dev);
    cpu_cli();

    kprintf("rng bytes ");
    for (unsigned i = 0; i < 16; i++)
        kprintf("%02x", first[i]);
    kprintf("\n");
    kprintf("rng msix interrupts %u\n", interrupts);
    if (all_zero(first) || all_zero(second))
        test_fail("a read returned only zeros");
    if (memcmp(first, second, READ_BYTES) == 0)
        test_fail("both reads returned the same bytes");
    if (interrupts == 0)
        test_fail("no MSI-X interrupt arrived");
    virtio_reset(&dev);
    test_pass();
}
