/* i8042-reset: prints "resetting" and asks the i8042 controller for a CPU reset
 * (command 0xFE to port 0x64, after waiting for its input buffer to drain).
 * It cannot report PASS itself: success is the VMM observing the reset (QEMU with
 * -no-reboot exits with status 0; a VMM with on-reboot=exit exits). If the guest is
 * still running after a short loop it prints "SKIFF-TEST FAIL i8042-reset: no reset"
 * and writes 0x11 to port 0xf4. */
#include "io.h"
#include "print.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "i8042-reset";

void kmain(uint32_t magic, const void *info)
{
    (void)magic;
    (void)info;
    serial_init();
    kprintf("resetting\n");
    for (uint32_t i = 0; i < 100000 && (inb(0x64) & 0x02); i++)
        cpu_pause();
    outb(0x64, 0xfe);
    for (volatile uint32_t i = 0; i < 200000; i++)
        cpu_pause();
    test_fail("no reset");
}
