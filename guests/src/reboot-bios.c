/* reboot-bios: reboots the way a stock Linux kernel does on a hardware-reduced ACPI platform
 * without EFI. Linux's reboot_init() then picks BOOT_EFI (efi_reboot_required() is true on
 * hardware-reduced ACPI), efi_reboot() returns at once, and native_machine_emergency_restart()
 * moves on to BOOT_BIOS: machine_real_restart(MRR_BIOS) writes 0 to the warm-boot flag at 0x472
 * and to CMOS register 0x0f (with NMIs off), drops to real mode and jumps to F000:FFF0. The
 * ACPI reset register, the keyboard controller, 0xCF9 and a triple fault are never tried.
 *
 * Prints "rebooting through the BIOS reset vector", then does that. It cannot report PASS:
 * success is the VMM observing a reset (QEMU with -no-reboot exits 0, after SeaBIOS reboots;
 * Skiff with --on-reboot exit exits 0). A VMM with nothing at the reset vector runs whatever
 * lies there. */
#include "io.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"

const char test_name[] = "reboot-bios";

#define REBOOT_RM_BASE 0x70000

extern char reboot_rm_start[], reboot_rm_end[];
__attribute__((noreturn)) void reboot_through_bios(void);

void kmain(uint32_t magic, const void *info)
{
    (void)magic;
    (void)info;
    serial_init();
    kprintf("rebooting through the BIOS reset vector\n");
    /* reboot_mode cold: the BIOS warm-boot flag is 0. */
    *(volatile uint16_t *)0x472 = 0;
    /* CMOS_WRITE(0x00, 0x8f): shutdown status 0 ("proper reboot"), NMIs off. */
    outb(0x70, 0x8f);
    outb(0x71, 0x00);
    memcpy((void *)REBOOT_RM_BASE, reboot_rm_start, (size_t)(reboot_rm_end - reboot_rm_start));
    reboot_through_bios();
}
