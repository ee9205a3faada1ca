/* idle: prints one line, then halts with interrupts off forever. Benchmarks use it to
 * measure start -> first serial byte and the monitor's memory while a guest idles (a
 * halted vCPU sleeps in the kernel, so the VMM's own footprint is what remains). */
#include "io.h"
#include "multiboot.h"
#include "serial.h"

const char test_name[] = "idle";

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    (void)magic;
    (void)mbi;
    serial_puts("Hello from Skiff guest\n");
    for (;;)
        __asm__ volatile("cli; hlt");
}
