#include "acpi_s5.h"
#include "io.h"
#include "print.h"
#include "test.h"

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

void acpi_s5_poweroff(const struct acpi_header *fadt, const struct acpi_header *dsdt)
{
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
}
