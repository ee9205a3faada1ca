/* The ACPI power button behind a Generic Event Device (hardware-reduced ACPI), found in
 * AML without evaluating it:
 *
 *   Device (\_SB.PWRB) { Name (_HID, EisaId ("PNP0C0C")) ... }
 *   Device (\_SB.GED_) { Name (_HID, "ACPI0013")
 *       Name (_CRS, ResourceTemplate () { Interrupt (...) { 5, 6 } })
 *       Method (_EVT, 1) { If (LEqual (Arg0, 6)) { Notify (\_SB.PWRB, 0x80) } ... } }
 *
 * Everything here is a byte-level search bounded by the length it is given (nothing past
 * it is read) and touches no hardware, so tests/ged_host_test.c runs it natively. */
#ifndef KIT_ACPI_GED_H
#define KIT_ACPI_GED_H

#include <stdint.h>

#define ACPI_GED_MAX_GSIS 16
#define ACPI_EISA_PNP0C0C 0x0c0cd041u /* EisaId ("PNP0C0C") as the DWord the AML holds */

/* One Generic Event Device: a DeviceOp (0x5B 0x82) with Name(_HID, "ACPI0013") directly
 * in it (not in a nested device). */
struct acpi_ged {
    uint32_t gsis[ACPI_GED_MAX_GSIS]; /* GSIs of the Extended Interrupt descriptors (large
                                         type 0x89) of Name(_CRS, Buffer), in order */
    unsigned gsi_count;               /* 0: no _CRS buffer or no interrupt in it */
    const uint8_t *evt;               /* body of Method(_EVT) (after MethodFlags), or NULL */
    uint32_t evt_len;
};

/* The next GED in `aml` (`len` bytes, a table without its header) at or after *pos:
 * returns 0, fills *ged and moves *pos past the device's DeviceOp; -1 when there is none. */
int acpi_aml_next_ged(const uint8_t *aml, uint32_t len, uint32_t *pos, struct acpi_ged *ged);

/* The first device with Name(_HID, EisaId ("PNP0C0C")) (DWordPrefix 0x0C0CD041, any
 * integer encoding) or Name(_HID, "PNP0C0C") directly in it: 0 and the last NameSeg of
 * its name (e.g. "PWRB", NUL-terminated), or -1. */
int acpi_aml_find_power_button(const uint8_t *aml, uint32_t len, char name[5]);

/* In a GED's _EVT body: the first If (LEqual (Arg0, <gsi>)) (either operand order) whose
 * own body (not a nested If on Arg0) holds Notify (<NameString whose last NameSeg is
 * `target`>, <value>). Integers in any encoding (ZeroOp, OneOp, OnesOp, Byte/Word/DWord/
 * QWordPrefix); the GSI must be below 2^32. Returns 0 and *gsi, or -1. */
int acpi_ged_notify_gsi(const struct acpi_ged *ged, const char target[4], uint32_t value, uint32_t *gsi);

enum acpi_pwrb_status {
    ACPI_PWRB_OK = 0,
    ACPI_PWRB_NO_GED,         /* no ACPI0013 device */
    ACPI_PWRB_NO_GSIS,        /* the GED has no _CRS Extended Interrupt */
    ACPI_PWRB_NO_EVT,         /* the GED has no _EVT method */
    ACPI_PWRB_NO_BUTTON,      /* no PNP0C0C device */
    ACPI_PWRB_NO_NOTIFY,      /* _EVT notifies the button (0x80) under no If (LEqual (Arg0, n)) */
    ACPI_PWRB_GSI_NOT_IN_CRS, /* it does, but n is not one of the GED's _CRS interrupts */
};

struct acpi_pwrb {
    struct acpi_ged ged; /* the GED that notifies the button (on failure: the first GED) */
    char button[5];      /* the PNP0C0C device's last NameSeg ("" if none) */
    uint32_t gsi;        /* the GSI whose event notifies the button (ACPI_PWRB_OK, _GSI_NOT_IN_CRS) */
};

/* Searches `count` AML blobs (DSDT, SSDTs: aml[i], len[i] bytes each) for the power button
 * device and the GED whose _EVT sends it Notify(0x80) for a GSI of its _CRS. The first GED
 * that fits wins; when none does, the status says what the first GED lacks, in the order
 * of the enum. */
enum acpi_pwrb_status acpi_find_ged_power_button(const uint8_t *const aml[], const uint32_t len[], unsigned count,
                                                 struct acpi_pwrb *out);

#endif
