/* bzimage-mini: a fake Linux bzImage for testing a VMM's bzImage loader without a kernel.
 * Entries: 64-bit boot protocol (startup_64 at load + 0x200, rsi = zero page), 32-bit
 * boot protocol (code32_start = load + 0, esi = zero page) and, for BIOS loaders such
 * as QEMU, the real-mode setup entry (which calls the BIOS E820 service and then takes
 * the 32-bit entry). Reads the zero page (struct boot_params) and prints:
 *   bzimage entry <64|32>
 *   bzimage entry state cr0 0x<cr0> cr4 0x<cr4> <efer 0x<efer>|eflags 0x<eflags>>
 *   boot_params version 0x<hdr.version> loader 0x<type_of_loader> loadflags 0x<loadflags>
 *   cmdline "<string>"                                         (or: cmdline none)
 *   BIOS-e820: [mem 0x<start:016>-0x<end:016>] <usable|reserved|ACPI data|ACPI NVS|unusable|persistent|type N>
 *   e820 entries <n>
 *   initrd 0x<addr> 0x<size> data "<first 32 bytes>"         (or: initrd none)
 *   acpi_rsdp_addr 0x<addr>
 * The e820 lines use Linux's own format (end address inclusive), so one host-side parser
 * serves this guest and a real kernel. Fails without the setup header copy (boot_flag
 * 0xAA55, "HdrS"), with no e820 entries or no usable RAM at 1 MiB, with an implausible
 * command line or initrd, or if acpi_rsdp_addr is set but does not point at an RSDP. */
#include "acpi.h"
#include "entry_state.h"
#include "io.h"
#include "longmode.h"
#include "print.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "bzimage-mini";

extern uint32_t entry_efer;

/* struct boot_params offsets */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_BOOT_FLAG 0x1fe
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_CMDLINE_SIZE 0x238
#define BP_E820_TABLE 0x2d0
#define E820_MAX 128

static const uint8_t *bp;

static uint8_t u8(unsigned off) { return bp[off]; }
static uint16_t u16(unsigned off) { return (uint16_t)(bp[off] | (bp[off + 1] << 8)); }
static uint32_t u32(unsigned off) { return (uint32_t)u16(off) | ((uint32_t)u16(off + 2) << 16); }
static uint64_t u64(unsigned off) { return (uint64_t)u32(off) | ((uint64_t)u32(off + 4) << 32); }

static const void *low_ptr(uint64_t paddr, uint64_t len, const char *what)
{
    if (paddr >= 0x100000000ull || len > 0x100000000ull - paddr)
        test_fail("%s at 0x%llx (size 0x%llx) is not below 4 GiB", what, (unsigned long long)paddr,
                  (unsigned long long)len);
    return (const void *)(uintptr_t)paddr;
}

static const char *e820_name(uint32_t type)
{
    switch (type) {
    case 1: return "usable";
    case 2: return "reserved";
    case 3: return "ACPI data";
    case 4: return "ACPI NVS";
    case 5: return "unusable";
    case 7: return "persistent";
    default: return NULL;
    }
}

void kmain64(uint64_t zero_page, uint64_t entry)
{
    serial_init();
    kprintf("bzimage entry %u\n", (unsigned)entry);
    if (entry == 64)
        kprintf("bzimage entry state cr0 0x%x cr4 0x%x efer 0x%x\n", entry_cr0, entry_cr4, entry_efer);
    else
        kprintf("bzimage entry state cr0 0x%x cr4 0x%x eflags 0x%x\n", entry_cr0, entry_cr4, entry_eflags);
    bp = low_ptr(zero_page, 4096, "zero page");
    if (u16(BP_BOOT_FLAG) != 0xaa55 || u32(BP_HEADER) != 0x53726448)
        test_fail("zero page at 0x%llx has no setup header (boot_flag 0x%x header 0x%x)",
                  (unsigned long long)zero_page, u16(BP_BOOT_FLAG), u32(BP_HEADER));
    kprintf("boot_params version 0x%x loader 0x%x loadflags 0x%x\n", u16(BP_VERSION), u8(BP_TYPE_OF_LOADER),
            u8(BP_LOADFLAGS));

    uint64_t cmdline = u32(BP_CMD_LINE_PTR) | ((uint64_t)u32(BP_EXT_CMD_LINE_PTR) << 32);
    if (cmdline) {
        uint32_t max = u32(BP_CMDLINE_SIZE);
        if (max == 0 || max > 65536)
            max = 65536;
        kprintf("cmdline ");
        print_string_quoted(low_ptr(cmdline, 1, "cmdline"), max);
        kprintf("\n");
    } else {
        kprintf("cmdline none\n");
    }

    unsigned n = u8(BP_E820_ENTRIES);
    if (n == 0 || n > E820_MAX)
        test_fail("e820_entries is %u", n);
    int ram_at_1m = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned off = BP_E820_TABLE + i * 20;
        uint64_t addr = u64(off), size = u64(off + 8);
        uint32_t type = u32(off + 16);
        const char *name = e820_name(type);
        kprintf("BIOS-e820: [mem 0x%016llx-0x%016llx] ", (unsigned long long)addr,
                (unsigned long long)(addr + size - 1));
        if (name)
            kprintf("%s\n", name);
        else
            kprintf("type %u\n", type);
        if (type == 1 && addr <= 0x100000 && addr + size > 0x100000)
            ram_at_1m = 1;
    }
    kprintf("e820 entries %u\n", n);
    if (!ram_at_1m)
        test_fail("no usable e820 RAM at 1 MiB");

    uint64_t initrd = u32(BP_RAMDISK_IMAGE) | ((uint64_t)u32(BP_EXT_RAMDISK_IMAGE) << 32);
    uint64_t initrd_size = u32(BP_RAMDISK_SIZE) | ((uint64_t)u32(BP_EXT_RAMDISK_SIZE) << 32);
    if (initrd_size) {
        uint32_t shown = initrd_size < 32 ? (uint32_t)initrd_size : 32;
        const void *p = low_ptr(initrd, initrd_size, "initrd");
        kprintf("initrd 0x%llx 0x%llx data ", (unsigned long long)initrd, (unsigned long long)initrd_size);
        print_bytes_as_text(p, shown);
        kprintf("\n");
    } else {
        kprintf("initrd none\n");
    }

    uint64_t rsdp = u64(BP_ACPI_RSDP_ADDR);
    kprintf("acpi_rsdp_addr 0x%llx\n", (unsigned long long)rsdp);
    if (rsdp && !acpi_check_rsdp(rsdp))
        test_fail("acpi_rsdp_addr 0x%llx does not point at a valid RSDP", (unsigned long long)rsdp);
    test_pass();
}
