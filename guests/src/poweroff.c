/* poweroff: generic ACPI S5 soft-off.
 * RSDP (scan) -> RSDT/XSDT -> FADT -> DSDT; SLP_TYPa is the first element of the
 * `_S5_` package in the DSDT AML. Then:
 *   - FADT revision >= 5 with a non-zero X_SLEEP_CONTROL_REG (hardware-reduced ACPI,
 *     e.g. Skiff): write the byte (SLP_TYP << 2) | SLP_EN(1 << 5) to it;
 *   - else: write (SLP_TYP << 10) | SLP_EN(1 << 13) as 16 bits to PM1a_CNT_BLK
 *     (keeping its other bits), then to X_PM1a_CNT_BLK if set, and SLP_TYPb to
 *     PM1b_CNT_BLK if present. If SCI_EN is clear and the FADT has an SMI_CMD port,
 *     ACPI mode is enabled first (QEMU pc/q35 use this path).
 * Output:
 *   acpi rsdp 0x<addr> revision <n>
 *   acpi fadt revision <n> length <n> flags 0x<flags>
 *   acpi poweroff slp_typ <n>
 *   acpi poweroff via <sleep_control_reg|pm1a_cnt> <io|mem> 0x<addr>
 * The sequence is lib/acpi_s5.c (shared with power-button.elf).
 * Success is the VMM powering off (QEMU exits with status 0). If the guest still
 * runs afterwards it prints "SKIFF-TEST FAIL poweroff: still running" and writes 0x11. */
#include "acpi.h"
#include "acpi_s5.h"
#include "print.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "poweroff";

void kmain(uint32_t magic, const void *info)
{
    (void)magic;
    (void)info;
    serial_init();

    const struct acpi_rsdp *rsdp = acpi_find_rsdp();
    if (!rsdp)
        test_fail("no RSDP in 0xE0000-0xFFFFF or the EBDA");
    kprintf("acpi rsdp 0x%x revision %u\n", (uint32_t)(uintptr_t)rsdp, rsdp->revision);
    const struct acpi_header *fadt = acpi_find_table(rsdp, "FACP", 0);
    if (!fadt)
        test_fail("no FADT");
    uint32_t flags = acpi_field32(fadt, FADT_FLAGS);
    kprintf("acpi fadt revision %u length %u flags 0x%x\n", fadt->revision, fadt->length, flags);
    const struct acpi_header *dsdt = acpi_fadt_dsdt(fadt);
    if (!dsdt)
        test_fail("no valid DSDT");
    acpi_s5_poweroff(fadt, dsdt);
    test_fail("still running");
}
