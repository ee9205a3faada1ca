/* hostile: pokes at every I/O port and at the 32-bit MMIO hole to show that the VMM
 * survives guest nonsense. Interrupts stay disabled throughout.
 *   1. Reads every port 0x0000-0xffff with inb and prints the ranges that do NOT read
 *      0xff (ports a VMM leaves unclaimed must read 0xff):
 *        io claimed 0x<first>-0x<last>
 *        io ports reading 0xff <n>
 *   2. Writes a pseudo-random byte (xorshift32, `seed=` on the multiboot command line,
 *      default 0x5eed) to every port except the ones that end or reset the VM or would
 *      break the test itself: 0xf4-0xf7 (debug exit; QEMU's device spans 4 ports),
 *      0x64 (i8042 reset), 0x92 (port-92 reset), 0xb2 (APM command: raises an SMI on
 *      QEMU, which some hosts' KVM cannot inject), 0x3f8-0x3ff (the console), 0x510-0x51b (fw_cfg, whose DMA registers
 *      would write guest memory), 0x600 and 0x604 (ACPI sleep/reset), 0xcf8-0xcff (PCI
 *      config: BARs could be moved over RAM), 0xcf9 (reset control). `widths=124` adds
 *      16- and 32-bit writes at aligned ports (skipping any that overlap an excluded one).
 *        io writes <n> skipped <k>
 *   3. Reads and writes a pseudo-random dword every `mmio_step=` bytes (default 1 MiB)
 *      from 0xC0000000 up to 0xFFFFFFFF, except the IOAPIC (0xFEC00000-0xFECFFFFF) and
 *      LAPIC (0xFEE00000-0xFEEFFFFF) pages, whose random programming could deliver
 *      INIT/NMI/SMI to the CPU:
 *        mmio writes <n> from 0x<start> step 0x<step>
 * `mode=ports` or `mode=mmio` runs only that part. Then passes (the guest is still alive
 * and its console still works). */
#include "idt.h"
#include "io.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"

const char test_name[] = "hostile";

static uint32_t rng;

static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* One bit per port: set for the ports the write pass leaves alone. */
static uint32_t excluded_map[65536 / 32];

static void exclude(uint32_t first, uint32_t last)
{
    for (uint32_t p = first; p <= last; p++)
        excluded_map[p >> 5] |= 1u << (p & 31);
}

static void build_exclusions(void)
{
    exclude(0x64, 0x64);
    exclude(0x92, 0x92);
    exclude(0xb2, 0xb2);
    exclude(0xf4, 0xf7);
    exclude(0x3f8, 0x3ff);
    exclude(0x510, 0x51b);
    exclude(0x600, 0x600);
    exclude(0x604, 0x604);
    exclude(0xcf8, 0xcff);
}

/* Ports port..port+width-1 (width 1, 2 or 4, port aligned to width) include an excluded one. */
static int range_excluded(uint32_t port, uint32_t width)
{
    uint32_t mask = (width == 4 ? 0xfu : width == 2 ? 0x3u : 0x1u) << (port & 31);
    return (excluded_map[port >> 5] & mask) != 0;
}

static void survey_ports(void)
{
    uint32_t ff = 0, run_start = 0;
    int in_run = 0;
    for (uint32_t port = 0; port <= 0x10000; port++) {
        int claimed = 0;
        if (port <= 0xffff) {
            uint8_t v = inb((uint16_t)port);
            if (v == 0xff)
                ff++;
            else
                claimed = 1;
        }
        if (claimed && !in_run) {
            run_start = port;
            in_run = 1;
        } else if (!claimed && in_run) {
            kprintf("io claimed 0x%04x-0x%04x\n", run_start, port - 1);
            in_run = 0;
        }
    }
    kprintf("io ports reading 0xff %u\n", ff);
}

static void write_ports(const char *widths)
{
    uint32_t writes = 0, skipped = 0;
    for (const char *w = widths; *w; w++) {
        uint32_t width = (uint32_t)(*w - '0');
        if (width != 1 && width != 2 && width != 4)
            continue;
        for (uint32_t port = 0; port <= 0xffff; port += width) {
            if (range_excluded(port, width)) {
                skipped++;
                continue;
            }
            uint32_t v = next_random();
            if (width == 1)
                outb((uint16_t)port, (uint8_t)v);
            else if (width == 2)
                outw((uint16_t)port, (uint16_t)v);
            else
                outl((uint16_t)port, v);
            writes++;
        }
    }
    kprintf("io writes %u skipped %u\n", writes, skipped);
}

static void poke_mmio(uint32_t step)
{
    uint32_t writes = 0;
    const uint64_t start = 0xc0000000u;
    for (uint64_t a = start; a <= 0xfffffffcu; a += step) {
        if ((a >= 0xfec00000u && a < 0xfed00000u) || (a >= 0xfee00000u && a < 0xfef00000u))
            continue;
        (void)mmio_read32((uintptr_t)a);
        mmio_write32((uintptr_t)a, next_random());
        writes++;
    }
    kprintf("mmio writes %u from 0x%x step 0x%x\n", writes, (uint32_t)start, step);
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    const char *cmdline = "";
    serial_init();
    idt_init();
    if (magic == MULTIBOOT_BOOTLOADER_MAGIC && (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline)
        cmdline = multiboot_args((const char *)(uintptr_t)mbi->cmdline, 4096);  /* after the kernel's file name */
    uint32_t seed = 0x5eed, step = 0x100000;
    const char *v = cmdline_find(cmdline, 4096, "seed");
    if (v && (parse_u32(v, &seed) != 0 || seed == 0))
        test_fail("bad seed= value");
    v = cmdline_find(cmdline, 4096, "mmio_step");
    if (v && (parse_u32(v, &step) != 0 || step < 4 || (step & 3)))
        test_fail("bad mmio_step= value");
    const char *widths = cmdline_find(cmdline, 4096, "widths");
    char wbuf[4] = "1";
    if (widths) {
        size_t i = 0;
        while (i < 3 && widths[i] >= '1' && widths[i] <= '4') {
            wbuf[i] = widths[i];
            i++;
        }
        wbuf[i] = 0;
    }
    const char *mode = cmdline_find(cmdline, 4096, "mode");
    int ports = !mode || strncmp(mode, "mmio", 4) != 0;
    int mmio = !mode || strncmp(mode, "ports", 5) != 0;
    rng = seed;
    build_exclusions();
    kprintf("hostile seed 0x%x\n", seed);
    if (ports) {
        survey_ports();
        write_ports(wbuf);
        serial_init(); /* the UART was not touched, but make sure the console still works */
    }
    if (mmio)
        poke_mmio(step);
    test_pass();
}
