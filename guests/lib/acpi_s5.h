/* ACPI S5 soft-off, shared by poweroff.elf and power-button.elf. */
#ifndef KIT_ACPI_S5_H
#define KIT_ACPI_S5_H

#include "acpi.h"

/* SLP_TYPa is the first element of the `_S5_` package in the DSDT AML. Then:
 *   - FADT revision >= 5 with a non-zero X_SLEEP_CONTROL_REG (hardware-reduced ACPI,
 *     e.g. Skiff): writes the byte (SLP_TYP << 2) | SLP_EN(1 << 5) to it;
 *   - else: writes (SLP_TYP << 10) | SLP_EN(1 << 13) as 16 bits to PM1a_CNT_BLK (keeping
 *     its other bits), then to X_PM1a_CNT_BLK if set, and SLP_TYPb to PM1b_CNT_BLK if
 *     present. If SCI_EN is clear and the FADT has an SMI_CMD port, ACPI mode is enabled
 *     first (QEMU pc/q35 use this path).
 * Prints
 *   acpi poweroff slp_typ <n>
 *   acpi poweroff via <sleep_control_reg|pm1a_cnt|x_pm1a_cnt> <io|mem> 0x<addr>
 * (and "acpi enable via smi_cmd ..." when it enables ACPI mode), writes, and spins a little.
 * Returns only if the VM is still running afterwards; fails the test (test_fail) if the
 * tables give no way to power off. */
void acpi_s5_poweroff(const struct acpi_header *fadt, const struct acpi_header *dsdt);

#endif
