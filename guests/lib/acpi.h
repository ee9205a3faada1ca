/* Minimal ACPI table walking: RSDP scan, RSDT/XSDT lookup, FADT fields, a DSDT `_S5_`
 * reader and a MADT CPU count. Tables above 4 GiB are ignored (the kit's guests only
 * reach the low 4 GiB). Every table is checked for length and checksum before use. */
#ifndef KIT_ACPI_H
#define KIT_ACPI_H

#include <stdint.h>

struct acpi_rsdp {
    char signature[8];
    uint8_t checksum;
    char oem_id[6];
    uint8_t revision;
    uint32_t rsdt_address;
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t extended_checksum;
    uint8_t reserved[3];
} __attribute__((packed));

struct acpi_header {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    uint32_t creator_id;
    uint32_t creator_revision;
} __attribute__((packed));

/* Generic Address Structure. */
struct acpi_gas {
    uint8_t space_id; /* 0 system memory, 1 system I/O */
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t address;
} __attribute__((packed));

/* FADT field offsets (ACPI 6.x). */
#define FADT_DSDT 40
#define FADT_SMI_CMD 48
#define FADT_ACPI_ENABLE 52
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM1B_CNT_BLK 68
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_X_DSDT 140
#define FADT_X_PM1A_CNT_BLK 172
#define FADT_X_PM1B_CNT_BLK 184
#define FADT_SLEEP_CONTROL_REG 244
#define FADT_SLEEP_STATUS_REG 256
#define FADT_FLAG_HW_REDUCED_ACPI (1u << 20)

/* Scans the EBDA's first KiB and 0xE0000-0xFFFFF on 16-byte boundaries for a valid RSDP. */
const struct acpi_rsdp *acpi_find_rsdp(void);
/* Validates an RSDP found some other way (e.g. given by the boot protocol); NULL if invalid. */
const struct acpi_rsdp *acpi_check_rsdp(uint64_t address);
/* The index-th table with this signature listed in the XSDT (revision >= 2) or RSDT. */
const struct acpi_header *acpi_find_table(const struct acpi_rsdp *rsdp, const char *signature, unsigned index);
/* The DSDT named by the FADT (X_DSDT if present and usable, else DSDT). */
const struct acpi_header *acpi_fadt_dsdt(const struct acpi_header *fadt);
/* A validated table at a physical address, or NULL. */
const struct acpi_header *acpi_table_at(uint64_t address);
/* Reads a little-endian field of a table if it lies inside the table; else returns 0. */
uint32_t acpi_field32(const struct acpi_header *t, uint32_t offset);
uint8_t acpi_field8(const struct acpi_header *t, uint32_t offset);
/* Copies a GAS field if it lies inside the table; returns 0 on success, -1 otherwise. */
int acpi_field_gas(const struct acpi_header *t, uint32_t offset, struct acpi_gas *out);
/* Finds `Name(_S5_, Package(){a, b, ...})` in AML and returns SLP_TYPa/b in *a / *b.
 * Returns 0 on success, -1 if not found or not understood. */
int acpi_find_s5(const struct acpi_header *dsdt, uint8_t *a, uint8_t *b);
/* Writes `value` to the register a GAS describes (I/O or memory space), using its
 * access size (or its bit width if the access size is 0). Returns 0, or -1 if unsupported. */
int acpi_gas_write(const struct acpi_gas *gas, uint32_t value);
/* Counts enabled processors (Local APIC and x2APIC entries) in a MADT. */
unsigned acpi_madt_cpus(const struct acpi_header *madt);

/* VM Generation ID (Microsoft's vmgenid spec, as Firecracker-style VMMs expose it): in
 * `aml` (`len` bytes, a table without its header), finds a device (DeviceOp 0x5B 0x82)
 * whose scope holds Name(_CID or _HID, "VM_GEN_COUNTER") (any letter case: Microsoft's
 * spec and QEMU spell it "VM_Gen_Counter") and, directly in that device
 * (not in a nested one), Name(ADDR, Package(2){low32, high32}) with each element a
 * ZeroOp, OneOp, OnesOp (0xffffffff) or Byte/Word/DWord/QWordPrefix integer below 2^32.
 * The innermost device around the Name is tried first. Returns 0 with the GUID's
 * guest-physical address, -1 without such a device, -2 if no device has a usable ADDR.
 * Never reads past `len`. */
int acpi_aml_find_vmgenid(const uint8_t *aml, uint32_t len, uint64_t *addr);
/* First Name(<name>, DWordConst) in `aml`: 0 and its value, or -1 (QEMU's VGIA). */
int acpi_aml_find_name_dword(const uint8_t *aml, uint32_t len, const char *name, uint32_t *value);

#endif
