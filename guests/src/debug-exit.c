/* debug-exit: writes the value of `code=<n>` from the multiboot command line
 * (decimal or 0x hex, default 42) to the isa-debug-exit port 0xf4, so the VMM
 * exits with status (n << 1) | 1 (85 for 42). Values up to 255 use outb,
 * larger ones outl. Prints "exiting with <n>" first. Never prints a PASS line:
 * the exit status is the result. If the guest is still running afterwards it
 * prints "SKIFF-TEST FAIL debug-exit: still running" and halts. */
#include "io.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"

const char test_name[] = "debug-exit";

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    uint32_t code = 42;
    serial_init();
    if (magic == MULTIBOOT_BOOTLOADER_MAGIC && (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline) {
        /* The first word is this kernel's file name (GRUB, QEMU, Skiff): skip it. */
        const char *args = multiboot_args((const char *)(uintptr_t)mbi->cmdline, 4096);
        const char *v = cmdline_find(args, 4096, "code");
        if (v && parse_u32(v, &code) != 0)
            test_fail("bad code= value");
    }
    kprintf("exiting with %u\n", code);
    debug_exit(code);
    for (volatile uint32_t i = 0; i < 100000; i++)
        cpu_pause();
    kprintf("SKIFF-TEST FAIL %s: still running\n", test_name);
    halt_forever();
}
