/* Host-side unit test of lib/acpi.c: builds ACPI tables like Skiff's (RSDP rev 2 -> XSDT
 * -> FADT rev 6 with HW_REDUCED_ACPI and SLEEP_CONTROL_REG, DSDT with _S5_, MADT) and
 * QEMU-like ones (RSDP rev 0 -> RSDT -> FADT rev 1 with PM1a_CNT_BLK) in memory mapped
 * at a fixed address below 4 GiB, and checks the parsers, including malformed input.
 * Built and run natively by `make test-host`. Nothing here touches I/O ports. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "acpi.h"

#define BASE 0x10000000ul
#define SIZE 0x100000ul

static int failures;
#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                \
        }                                                                              \
    } while (0)

static uint8_t *mem(uint32_t off) { return (uint8_t *)(BASE + off); }

static void fix_checksum(uint8_t *p, uint32_t len, uint32_t csum_off)
{
    uint8_t s = 0;
    p[csum_off] = 0;
    for (uint32_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    p[csum_off] = (uint8_t)(0 - s);
}

static void header(uint32_t off, const char *sig, uint32_t len, uint8_t rev)
{
    uint8_t *t = mem(off);
    memset(t, 0, len);
    memcpy(t, sig, 4);
    memcpy(t + 4, &len, 4);
    t[8] = rev;
    memcpy(t + 10, "SKIFF ", 6);
}

static void put32(uint32_t off, uint32_t v) { memcpy(mem(off), &v, 4); }
static void put64(uint32_t off, uint64_t v) { memcpy(mem(off), &v, 8); }

static void rsdp(uint32_t off, uint8_t rev, uint32_t rsdt, uint64_t xsdt)
{
    uint8_t *r = mem(off);
    memset(r, 0, 36);
    memcpy(r, "RSD PTR ", 8);
    r[15] = rev;
    memcpy(r + 16, &rsdt, 4);
    uint32_t len = 36;
    memcpy(r + 20, &len, 4);
    memcpy(r + 24, &xsdt, 8);
    fix_checksum(r, 20, 8);
    if (rev >= 2)
        fix_checksum(r, 36, 32);
}

/* A DSDT with some leading AML, then `aml` (the _S5_ object), then trailing bytes. */
static void dsdt(uint32_t off, const uint8_t *aml, uint32_t aml_len)
{
    uint32_t len = 36 + 8 + aml_len + 4;
    header(off, "DSDT", len, 2);
    static const uint8_t pre[8] = { 0x10, 0x06, 0x5c, 0x5f, 0x53, 0x42, 0x5f, 0x00 }; /* Scope(\_SB_) */
    memcpy(mem(off + 36), pre, 8);
    memcpy(mem(off + 44), aml, aml_len);
    memset(mem(off + 44 + aml_len), 0xa3, 4); /* NoopOps */
    fix_checksum(mem(off), len, 9);
}

int main(void)
{
    void *m = mmap((void *)BASE, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m != (void *)BASE) {
        perror("mmap below 4 GiB");
        return 2;
    }
    uint8_t a, b;
    struct acpi_gas gas;

    /* ---- Skiff-like: RSDP rev 2, XSDT, FADT rev 6 hardware-reduced ---- */
    const uint32_t RSDP = 0x0, XSDT = 0x100, FADT = 0x200, DSDT = 0x400, MADT = 0x800;
    static const uint8_t s5_byte[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00 };
    dsdt(DSDT, s5_byte, sizeof(s5_byte));
    header(FADT, "FACP", 276, 6);
    put32(FADT + FADT_DSDT, (uint32_t)(BASE + DSDT));
    put64(FADT + FADT_X_DSDT, BASE + DSDT);
    put32(FADT + FADT_FLAGS, FADT_FLAG_HW_REDUCED_ACPI);
    uint8_t sleep_ctl[12] = { 1, 8, 0, 1 };
    uint64_t port = 0x600;
    memcpy(sleep_ctl + 4, &port, 8);
    memcpy(mem(FADT + FADT_SLEEP_CONTROL_REG), sleep_ctl, 12);
    fix_checksum(mem(FADT), 276, 9);
    header(MADT, "APIC", 44 + 8 + 4 * 8 + 16, 5);
    for (int i = 0; i < 4; i++) { /* 3 enabled local APICs, 1 disabled */
        uint8_t e[8] = { 0, 8, (uint8_t)i, (uint8_t)i, i == 3 ? 0 : 1, 0, 0, 0 };
        memcpy(mem(MADT + 44 + i * 8), e, 8);
    }
    uint8_t x2[16] = { 9, 16, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0 }; /* enabled x2APIC */
    memcpy(mem(MADT + 44 + 32), x2, 16);
    fix_checksum(mem(MADT), 44 + 32 + 16, 9);
    header(XSDT, "XSDT", 36 + 16, 1);
    put64(XSDT + 36, BASE + FADT);
    put64(XSDT + 44, BASE + MADT);
    fix_checksum(mem(XSDT), 52, 9);
    rsdp(RSDP, 2, 0, BASE + XSDT);

    const struct acpi_rsdp *r = acpi_check_rsdp(BASE + RSDP);
    EXPECT(r != NULL);
    const struct acpi_header *fadt = r ? acpi_find_table(r, "FACP", 0) : NULL;
    EXPECT(fadt != NULL && fadt->revision == 6);
    EXPECT(acpi_field32(fadt, FADT_FLAGS) & FADT_FLAG_HW_REDUCED_ACPI);
    EXPECT(acpi_field_gas(fadt, FADT_SLEEP_CONTROL_REG, &gas) == 0 && gas.space_id == 1 && gas.address == 0x600);
    EXPECT(acpi_field_gas(fadt, 270, &gas) == -1); /* runs past the table */
    const struct acpi_header *d = acpi_fadt_dsdt(fadt);
    EXPECT(d == (const void *)(BASE + DSDT));
    EXPECT(d && acpi_find_s5(d, &a, &b) == 0 && a == 5 && b == 0);
    const struct acpi_header *madt = acpi_find_table(r, "APIC", 0);
    EXPECT(madt && acpi_madt_cpus(madt) == 4);
    EXPECT(acpi_find_table(r, "APIC", 1) == NULL);
    EXPECT(acpi_find_table(r, "HPET", 0) == NULL);

    /* _S5_ variants */
    static const uint8_t s5_root_zero[] = { 0x08, '\\', '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x00, 0x00 };
    dsdt(DSDT, s5_root_zero, sizeof(s5_root_zero));
    EXPECT(acpi_find_s5(d, &a, &b) == 0 && a == 0 && b == 0);
    static const uint8_t s5_pkglen2[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x48, 0x00, 0x04, 0x01, 0x0a, 0x07, 0x00, 0x00 };
    dsdt(DSDT, s5_pkglen2, sizeof(s5_pkglen2));
    EXPECT(acpi_find_s5(d, &a, &b) == 0 && a == 1 && b == 7);
    static const uint8_t s5_method[] = { 0x14, 0x08, '_', 'S', '5', '_', 0x00, 0xa4, 0x00 }; /* Method, not a Name */
    dsdt(DSDT, s5_method, sizeof(s5_method));
    EXPECT(acpi_find_s5(d, &a, &b) == -1);
    static const uint8_t s5_truncated[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x02, 0x0c };
    dsdt(DSDT, s5_truncated, sizeof(s5_truncated));
    EXPECT(acpi_find_s5(d, &a, &b) == -1);

    /* corrupt checksums and lengths are rejected */
    mem(FADT)[100] ^= 1;
    EXPECT(acpi_find_table(r, "FACP", 0) == NULL);
    mem(FADT)[100] ^= 1;
    EXPECT(acpi_find_table(r, "FACP", 0) != NULL);
    put32(MADT + 4, 20); /* length shorter than a header */
    EXPECT(acpi_table_at(BASE + MADT) == NULL);
    EXPECT(acpi_table_at(0x100000000ull) == NULL);   /* above 4 GiB: unreachable */
    EXPECT(acpi_table_at(0xffffffe0ull) == NULL);    /* would wrap past 4 GiB */
    mem(RSDP + 20)[0] ^= 0xff;                           /* rev-2 length field: extended checksum breaks */
    EXPECT(acpi_check_rsdp(BASE + RSDP) == NULL);
    mem(RSDP + 20)[0] ^= 0xff;
    EXPECT(acpi_check_rsdp(BASE + RSDP + 16) == NULL);

    /* ---- QEMU-like: RSDP rev 0, RSDT, FADT rev 1 with PM1a_CNT_BLK ---- */
    const uint32_t RSDP0 = 0x2000, RSDT = 0x2100, FADT1 = 0x2200, DSDT1 = 0x2400;
    static const uint8_t s5_qemu[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00 };
    dsdt(DSDT1, s5_qemu, sizeof(s5_qemu));
    header(FADT1, "FACP", 116, 1);
    put32(FADT1 + FADT_DSDT, (uint32_t)(BASE + DSDT1));
    put32(FADT1 + FADT_PM1A_CNT_BLK, 0x604);
    fix_checksum(mem(FADT1), 116, 9);
    header(RSDT, "RSDT", 36 + 4, 1);
    put32(RSDT + 36, (uint32_t)(BASE + FADT1));
    fix_checksum(mem(RSDT), 40, 9);
    rsdp(RSDP0, 0, (uint32_t)(BASE + RSDT), 0);
    r = acpi_check_rsdp(BASE + RSDP0);
    EXPECT(r != NULL);
    fadt = r ? acpi_find_table(r, "FACP", 0) : NULL;
    EXPECT(fadt && fadt->revision == 1);
    EXPECT(acpi_field32(fadt, FADT_PM1A_CNT_BLK) == 0x604);
    EXPECT(acpi_field_gas(fadt, FADT_SLEEP_CONTROL_REG, &gas) == -1); /* FADT too short */
    EXPECT(acpi_field_gas(fadt, FADT_X_PM1A_CNT_BLK, &gas) == -1);
    EXPECT(acpi_field32(fadt, FADT_X_DSDT) == 0);
    d = acpi_fadt_dsdt(fadt);
    EXPECT(d == (const void *)(BASE + DSDT1));
    EXPECT(d && acpi_find_s5(d, &a, &b) == 0 && a == 0);

    if (failures) {
        fprintf(stderr, "acpi host test: %d failure(s)\n", failures);
        return 1;
    }
    printf("acpi host test: all checks passed\n");
    return 0;
}
