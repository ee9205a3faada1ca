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
 * Success is the VMM powering off (QEMU exits with status 0). If the guest still
 * runs afterwards it prints "SKIFF-TEST FAIL poweroff: still running" and writes 0x11. */
#include "acpi.h"
#include "io.h"
#include "print.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "poweroff";

#define SLP_EN_LEGACY (1u << 13)
#define SCI_EN 1u

static void enable_acpi_mode(const struct acpi_header *fadt, uint16_t pm1a)
{
    uint32_t smi_cmd = acpi_field32(fadt, FADT_SMI_CMD);
    uint8_t enable = acpi_field8(fadt, FADT_ACPI_ENABLE);
    if ((inw(pm1a) & SCI_EN) || !smi_cmd || smi_cmd > 0xffff || !enable)
        return;
    kprintf("acpi enable via smi_cmd 0x%x value 0x%x\n", smi_cmd, enable);
    outb((uint16_t)smi_cmd, enable);
    for (uint32_t i = 0; i < 1000000 && !(inw(pm1a) & SCI_EN); i++)
        cpu_pause();
}

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
    uint8_t typ_a, typ_b;
    if (acpi_find_s5(dsdt, &typ_a, &typ_b) != 0)
        test_fail("no _S5_ package in the DSDT");
    kprintf("acpi poweroff slp_typ %u\n", typ_a);

    struct acpi_gas gas;
    if (fadt->revision >= 5 && acpi_field_gas(fadt, FADT_SLEEP_CONTROL_REG, &gas) == 0 && gas.address) {
        kprintf("acpi poweroff via sleep_control_reg %s 0x%llx\n", gas.space_id == 1 ? "io" : "mem",
                (unsigned long long)gas.address);
        gas.access_size = 1; /* the sleep control register is a byte */
        if (acpi_gas_write(&gas, ((typ_a & 7u) << 2) | (1u << 5)) != 0)
            test_fail("unsupported SLEEP_CONTROL_REG address space %u", gas.space_id);
    } else {
        uint32_t pm1a = acpi_field32(fadt, FADT_PM1A_CNT_BLK);
        uint32_t pm1b = acpi_field32(fadt, FADT_PM1B_CNT_BLK);
        int have_x = acpi_field_gas(fadt, FADT_X_PM1A_CNT_BLK, &gas) == 0 && gas.address;
        if (!pm1a && !have_x)
            test_fail("FADT has neither SLEEP_CONTROL_REG nor PM1a_CNT_BLK");
        uint32_t value = ((typ_a & 7u) << 10) | SLP_EN_LEGACY;
        if (pm1a && pm1a <= 0xffff) {
            kprintf("acpi poweroff via pm1a_cnt io 0x%x\n", pm1a);
            enable_acpi_mode(fadt, (uint16_t)pm1a);
            uint16_t keep = inw((uint16_t)pm1a) & (uint16_t)~(0x1c00u | SLP_EN_LEGACY);
            if (pm1b && pm1b <= 0xffff)
                outw((uint16_t)pm1b, (uint16_t)(((typ_b & 7u) << 10) | SLP_EN_LEGACY));
            outw((uint16_t)pm1a, (uint16_t)(keep | value));
        }
        if (have_x) {
            kprintf("acpi poweroff via x_pm1a_cnt %s 0x%llx\n", gas.space_id == 1 ? "io" : "mem",
                    (unsigned long long)gas.address);
            gas.access_size = 2;
            acpi_gas_write(&gas, value);
        }
    }
    for (volatile uint32_t i = 0; i < 200000; i++)
        cpu_pause();
    test_fail("still running");
}
