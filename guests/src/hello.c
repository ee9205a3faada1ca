/* hello: the smallest multiboot guest. Prints one line and passes.
 * Used to benchmark VMM start -> first serial byte, so it does no UART
 * initialisation (the VMM's and QEMU's UART accept bytes without it). */
#include "io.h"
#include "multiboot.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "hello";

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    (void)mbi;
    serial_puts("Hello from Skiff guest\n");
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    test_pass();
}
