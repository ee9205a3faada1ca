/* bzboot64: not a Skiff test but a validation shim. A multiboot guest that boots the
 * bzImage given as multiboot module 0 through the Linux 64-bit boot protocol, the way a
 * direct-boot VMM does, so that bzimage-mini's 64-bit entry can be exercised under QEMU
 * (whose own bzImage path goes through the real-mode setup instead).
 *   module 0: the bzImage; its module string minus the first word is the kernel command line
 *   module 1: optional initrd
 * It copies the protected-mode part to 1 MiB, builds a zero page at 0x7000 (setup header
 * copy, type_of_loader 0xff, cmd_line_ptr 0x20000, ramdisk, e820 from the multiboot
 * memory map, acpi_rsdp_addr from an RSDP scan) and jumps to load + 0x200 in long mode
 * with rsi = zero page, on its own 4 GiB identity map. Linked at 8 MiB to stay clear. */
#include "acpi.h"
#include "io.h"
#include "longmode.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"

const char test_name[] = "bzboot64";

#define ZERO_PAGE 0x7000u
#define CMDLINE 0x20000u
#define LOAD_ADDR 0x100000u

extern char _image_start[];

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void wr32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }

void kmain64(uint64_t magic, uint64_t info)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic");
    const struct multiboot_info *mbi = (const void *)(uintptr_t)info;
    if (!(mbi->flags & MB_INFO_MODS) || mbi->mods_count < 1)
        test_fail("no bzImage module");
    const struct multiboot_module *mods = (const void *)(uintptr_t)mbi->mods_addr;
    const uint8_t *img = (const uint8_t *)(uintptr_t)mods[0].mod_start;
    uint32_t size = mods[0].mod_end - mods[0].mod_start;
    if (size < 0x400 || img[0x1fe] != 0x55 || img[0x1ff] != 0xaa || memcmp(img + 0x202, "HdrS", 4) != 0)
        test_fail("module 0 is not a bzImage");
    uint16_t version = (uint16_t)(img[0x206] | img[0x207] << 8);
    if (version < 0x020c || !(img[0x236] & 1))
        test_fail("bzImage protocol 0x%x without XLF_KERNEL_64", version);
    uint32_t setup_size = ((img[0x1f1] ? img[0x1f1] : 4u) + 1u) * 512u;
    uint32_t init_size = rd32(img + 0x260);
    if (setup_size >= size)
        test_fail("setup larger than the image");
    uint32_t pm_size = size - setup_size;
    if (init_size < pm_size)
        init_size = pm_size;
    if (LOAD_ADDR + init_size > (uintptr_t)_image_start || mods[0].mod_start < LOAD_ADDR + init_size)
        test_fail("kernel at 0x%x (init_size 0x%x) would overlap the shim or its modules", LOAD_ADDR, init_size);
    memcpy((void *)(uintptr_t)LOAD_ADDR, img + setup_size, pm_size);

    uint8_t *zp = (uint8_t *)(uintptr_t)ZERO_PAGE;
    memset(zp, 0, 4096);
    uint32_t hdr_end = 0x202u + img[0x201];
    memcpy(zp + 0x1f1, img + 0x1f1, hdr_end - 0x1f1);
    zp[0x210] = 0xff; /* type_of_loader: undefined */

    const char *mstr = mods[0].string ? (const char *)(uintptr_t)mods[0].string : "";
    while (*mstr && *mstr != ' ')
        mstr++;
    while (*mstr == ' ')
        mstr++;
    size_t clen = strnlen(mstr, 2047);
    memmove((void *)(uintptr_t)CMDLINE, mstr, clen);
    ((char *)(uintptr_t)CMDLINE)[clen] = 0;
    wr32(zp + 0x228, CMDLINE);

    if (mbi->mods_count >= 2) {
        wr32(zp + 0x218, mods[1].mod_start);
        wr32(zp + 0x21c, mods[1].mod_end - mods[1].mod_start);
    }

    unsigned n = 0;
    if (mbi->flags & MB_INFO_MEM_MAP) {
        uint32_t p = mbi->mmap_addr, end = mbi->mmap_addr + mbi->mmap_length;
        while (p + 24 <= end && n < 128) {
            const struct multiboot_mmap_entry *e = (const void *)(uintptr_t)p;
            uint8_t *d = zp + 0x2d0 + n * 20;
            memcpy(d, &e->addr, 8);
            memcpy(d + 8, &e->len, 8);
            memcpy(d + 16, &e->type, 4);
            n++;
            p += e->size + 4;
        }
    }
    zp[0x1e8] = (uint8_t)n;
    const struct acpi_rsdp *rsdp = acpi_find_rsdp();
    uint64_t rsdp_addr = (uintptr_t)rsdp;
    memcpy(zp + 0x070, &rsdp_addr, 8);

    kprintf("bzboot64: kernel 0x%x bytes at 0x%x, zero page 0x%x, %u e820 entries, jumping to 0x%x\n", pm_size,
            LOAD_ADDR, ZERO_PAGE, n, LOAD_ADDR + 0x200);
    __asm__ volatile("cli; jmp *%0" : : "r"((uintptr_t)LOAD_ADDR + 0x200), "S"((uintptr_t)ZERO_PAGE) : "memory");
    __builtin_unreachable();
}
