/* bootinfo: prints what the multiboot loader handed over and passes.
 *   multiboot flags 0x<flags>
 *   cmdline "<string>"                       (or: cmdline none)
 *   mem_lower <KiB> mem_upper <KiB>          (decimal, or: mem none)
 *   mmap 0x<addr> 0x<len> <type>             (one per entry; hex, type decimal)
 *   module <i> 0x<start> 0x<end> cmdline "<string>" data "<first 32 bytes>"
 *   modules <count>
 * Fails on a wrong magic, a memory map without a type-1 entry at 1 MiB, or
 * malformed module/mmap fields. */
#include "io.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "bootinfo";

#define MAX_STRING 4096

static void print_mmap(const struct multiboot_info *mbi)
{
    uint32_t p = mbi->mmap_addr, end = mbi->mmap_addr + mbi->mmap_length;
    int have_high_ram = 0;
    unsigned entries = 0;
    if (end < p)
        test_fail("mmap_addr + mmap_length overflows");
    while (p + 4 <= end) {
        const struct multiboot_mmap_entry *e = (const void *)(uintptr_t)p;
        if (e->size < 20 || e->size > end - p - 4)
            test_fail("mmap entry at 0x%x has size %u", p, e->size);
        kprintf("mmap 0x%llx 0x%llx %u\n", (unsigned long long)e->addr, (unsigned long long)e->len, e->type);
        if (e->type == 1 && e->addr <= 0x100000 && e->addr + e->len > 0x100000)
            have_high_ram = 1;
        entries++;
        p += e->size + 4;
    }
    if (!entries)
        test_fail("empty memory map");
    if (!have_high_ram)
        test_fail("no usable RAM at 1 MiB in the memory map");
}

static void print_modules(const struct multiboot_info *mbi)
{
    const struct multiboot_module *m = (const void *)(uintptr_t)mbi->mods_addr;
    for (uint32_t i = 0; i < mbi->mods_count && i < 64; i++) {
        if (m[i].mod_end < m[i].mod_start)
            test_fail("module %u ends before it starts", i);
        uint32_t size = m[i].mod_end - m[i].mod_start;
        kprintf("module %u 0x%x 0x%x cmdline ", i, m[i].mod_start, m[i].mod_end);
        if (m[i].string)
            print_string_quoted((const char *)(uintptr_t)m[i].string, MAX_STRING);
        else
            kprintf("none");
        kprintf(" data ");
        print_bytes_as_text((const void *)(uintptr_t)m[i].mod_start, size < 32 ? size : 32);
        kprintf("\n");
    }
    kprintf("modules %u\n", mbi->mods_count);
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    kprintf("multiboot flags 0x%x\n", mbi->flags);
    if (mbi->flags & MB_INFO_CMDLINE) {
        kprintf("cmdline ");
        print_string_quoted((const char *)(uintptr_t)mbi->cmdline, MAX_STRING);
        kprintf("\n");
    } else {
        kprintf("cmdline none\n");
    }
    if (mbi->flags & MB_INFO_MEMORY)
        kprintf("mem_lower %u mem_upper %u\n", mbi->mem_lower, mbi->mem_upper);
    else
        kprintf("mem none\n");
    if (mbi->flags & MB_INFO_MEM_MAP)
        print_mmap(mbi);
    else
        test_fail("no memory map (flags bit 6 clear)");
    if (mbi->flags & MB_INFO_MODS)
        print_modules(mbi);
    else
        kprintf("modules 0\n");
    test_pass();
}
