/* hello-pvh / hello-pvh64: PVH boot (Xen ELF note PHYS32_ENTRY; ebx = hvm_start_info).
 * Built twice from this file: hello-pvh.elf (ELF32, runs in 32-bit protected mode) and
 * hello-pvh64.elf (ELF64 like Linux's vmlinux, 8-byte note descriptor; the 32-bit entry
 * switches to long mode first). Output:
 *   pvh entry cr0 0x<cr0> cr4 0x<cr4> eflags 0x<eflags>      (as the VMM set them)
 *   pvh mode <32|64>
 *   pvh magic 0x336ec578 version <n> flags 0x<flags>
 *   cmdline "<string>"                              (or: cmdline none)
 *   memmap 0x<addr> 0x<size> <type>                 (one per entry; type decimal)
 *   memmap entries <n>                              (version >= 1)
 *   module <i> 0x<paddr> 0x<size> cmdline "<string>"|none data "<first 32 bytes>"
 *   modules <n>
 *   rsdp 0x<rsdp_paddr>
 * Fails on a wrong magic, a version >= 1 without memory map, or addresses above 4 GiB. */
#include "entry_state.h"
#include "io.h"
#include "pvh.h"
#include "print.h"
#include "serial.h"
#include "test.h"

#if defined(__x86_64__)
const char test_name[] = "hello-pvh64";
#else
const char test_name[] = "hello-pvh";
#endif

#define MAX_STRING 4096

static const void *low_ptr(uint64_t paddr, uint64_t len, const char *what)
{
    if (paddr >= 0x100000000ull || len > 0x100000000ull - paddr)
        test_fail("%s at 0x%llx is above 4 GiB", what, (unsigned long long)paddr);
    return (const void *)(uintptr_t)paddr;
}

static void report(uint32_t start_info)
{
    serial_init();
    kprintf("pvh entry cr0 0x%x cr4 0x%x eflags 0x%x\n", entry_cr0, entry_cr4, entry_eflags);
    kprintf("pvh mode %u\n", (unsigned)(sizeof(void *) * 8));
    const struct hvm_start_info *si = low_ptr(start_info, sizeof(*si), "start_info");
    if (si->magic != XEN_HVM_START_MAGIC_VALUE)
        test_fail("bad start_info magic 0x%x at 0x%x", si->magic, start_info);
    kprintf("pvh magic 0x%x version %u flags 0x%x\n", si->magic, si->version, si->flags);

    if (si->cmdline_paddr) {
        kprintf("cmdline ");
        print_string_quoted(low_ptr(si->cmdline_paddr, 1, "cmdline"), MAX_STRING);
        kprintf("\n");
    } else {
        kprintf("cmdline none\n");
    }

    if (si->version >= 1) {
        if (!si->memmap_paddr || !si->memmap_entries)
            test_fail("version %u start_info without a memory map", si->version);
        if (si->memmap_entries > 1024)
            test_fail("memmap_entries %u is implausible", si->memmap_entries);
        const struct hvm_memmap_table_entry *m =
            low_ptr(si->memmap_paddr, (uint64_t)si->memmap_entries * sizeof(*m), "memmap");
        for (uint32_t i = 0; i < si->memmap_entries; i++)
            kprintf("memmap 0x%llx 0x%llx %u\n", (unsigned long long)m[i].addr, (unsigned long long)m[i].size,
                    m[i].type);
        kprintf("memmap entries %u\n", si->memmap_entries);
    }

    if (si->nr_modules > 64)
        test_fail("nr_modules %u is implausible", si->nr_modules);
    if (si->nr_modules) {
        const struct hvm_modlist_entry *mod =
            low_ptr(si->modlist_paddr, (uint64_t)si->nr_modules * sizeof(*mod), "modlist");
        for (uint32_t i = 0; i < si->nr_modules; i++) {
            kprintf("module %u 0x%llx 0x%llx cmdline ", i, (unsigned long long)mod[i].paddr,
                    (unsigned long long)mod[i].size);
            if (mod[i].cmdline_paddr)
                print_string_quoted(low_ptr(mod[i].cmdline_paddr, 1, "module cmdline"), MAX_STRING);
            else
                kprintf("none");
            uint32_t n = mod[i].size < 32 ? (uint32_t)mod[i].size : 32;
            kprintf(" data ");
            print_bytes_as_text(low_ptr(mod[i].paddr, n, "module"), n);
            kprintf("\n");
        }
    }
    kprintf("modules %u\n", si->nr_modules);
    kprintf("rsdp 0x%llx\n", (unsigned long long)si->rsdp_paddr);
    test_pass();
}

#if defined(__x86_64__)
void kmain64(uint64_t start_info, uint64_t unused)
{
    (void)unused;
    report((uint32_t)start_info);
}
#else
void kmain(uint32_t start_info)
{
    report(start_info);
}
#endif
