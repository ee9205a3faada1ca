/* hello-aout: multiboot kernel using the a.out kludge (header flag bit 16), shipped as
 * a flat binary (hello-aout.bin) and as the ELF it is made from (hello-aout.elf).
 * Linked at 0x200000. The .bin carries 4 KiB of 0xAA bytes after load_end_addr, which
 * a correct loader must not copy: bss_probe (the first 4 KiB of .bss, where those bytes
 * would land) must read as zero. Prints
 *   Hello from Skiff a.out guest
 *   aout load 0x<load_addr> load_end 0x<load_end_addr> bss_end 0x<bss_end_addr> entry 0x<entry>
 *   aout running at 0x<address of kmain> bss clean
 * and passes; fails on a wrong magic, a wrong run address or non-zero bss. */
#include "io.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "hello-aout";

extern const uint32_t multiboot_header[8];
extern char _bss_end[];

static uint8_t bss_probe[4096] __attribute__((section(".bss.probe"), used));

static uintptr_t current_eip(void)
{
    uintptr_t eip;
    __asm__ volatile("call 1f\n1: pop %0" : "=r"(eip));
    return eip;
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    (void)mbi;
    serial_init();
    kprintf("Hello from Skiff a.out guest\n");
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    kprintf("aout load 0x%x load_end 0x%x bss_end 0x%x entry 0x%x\n", multiboot_header[4], multiboot_header[5],
            multiboot_header[6], multiboot_header[7]);
    uintptr_t eip = current_eip();
    if (eip < multiboot_header[4] || eip >= multiboot_header[5])
        test_fail("running at 0x%lx, outside the load range", (unsigned long)eip);
    for (uint32_t i = 0; i < sizeof(bss_probe); i++) {
        if (((volatile uint8_t *)bss_probe)[i] != 0)
            test_fail("bss byte %u at 0x%lx is 0x%02x, not zero", i, (unsigned long)(uintptr_t)&bss_probe[i], bss_probe[i]);
    }
    kprintf("aout running at 0x%lx bss clean\n", (unsigned long)(uintptr_t)&kmain);
    test_pass();
}
