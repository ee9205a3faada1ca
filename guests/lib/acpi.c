#include "acpi.h"
#include "io.h"
#include "string.h"

#define MAX_TABLE_LENGTH (4u << 20)

static const void *phys(uint64_t addr, uint64_t len)
{
    if (addr == 0 || addr >= 0x100000000ull || len > 0x100000000ull - addr)
        return NULL;
    return (const void *)(uintptr_t)addr;
}

static uint8_t sum(const void *p, uint32_t len)
{
    const uint8_t *b = p;
    uint8_t s = 0;
    for (uint32_t i = 0; i < len; i++)
        s = (uint8_t)(s + b[i]);
    return s;
}

const struct acpi_rsdp *acpi_check_rsdp(uint64_t address)
{
    const struct acpi_rsdp *r = phys(address, 20);
    if (!r || memcmp(r->signature, "RSD PTR ", 8) != 0 || sum(r, 20) != 0)
        return NULL;
    if (r->revision >= 2) {
        if (r->length < sizeof(*r) || r->length > 4096 || !phys(address, r->length) || sum(r, r->length) != 0)
            return NULL;
    }
    return r;
}

static const struct acpi_rsdp *scan(uint32_t start, uint32_t end)
{
    for (uint32_t a = start; a + 20 <= end; a += 16) {
        /* cheap pre-check of "RSD " before the full validation */
        if (*(const volatile uint32_t *)(uintptr_t)a != 0x20445352u)
            continue;
        const struct acpi_rsdp *r = acpi_check_rsdp(a);
        if (r)
            return r;
    }
    return NULL;
}

const struct acpi_rsdp *acpi_find_rsdp(void)
{
    uint32_t ebda = (uint32_t)(*(volatile uint16_t *)0x40e) << 4;
    if (ebda >= 0x80000 && ebda < 0xa0000) {
        const struct acpi_rsdp *r = scan(ebda, ebda + 1024);
        if (r)
            return r;
    }
    return scan(0xe0000, 0x100000);
}

const struct acpi_header *acpi_table_at(uint64_t address)
{
    const struct acpi_header *h = phys(address, sizeof(struct acpi_header));
    if (!h || h->length < sizeof(struct acpi_header) || h->length > MAX_TABLE_LENGTH)
        return NULL;
    if (!phys(address, h->length) || sum(h, h->length) != 0)
        return NULL;
    return h;
}

const struct acpi_header *acpi_find_table(const struct acpi_rsdp *rsdp, const char *signature, unsigned index)
{
    const struct acpi_header *root = NULL;
    uint32_t entry_size = 4;
    if (rsdp->revision >= 2 && rsdp->xsdt_address) {
        root = acpi_table_at(rsdp->xsdt_address);
        entry_size = 8;
    }
    if (!root) {
        root = acpi_table_at(rsdp->rsdt_address);
        entry_size = 4;
    }
    if (!root)
        return NULL;
    const uint8_t *entries = (const uint8_t *)root + sizeof(struct acpi_header);
    uint32_t count = (root->length - (uint32_t)sizeof(struct acpi_header)) / entry_size;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t addr = 0;
        for (uint32_t k = entry_size; k > 0; k--)
            addr = (addr << 8) | entries[i * entry_size + k - 1];
        const struct acpi_header *t = acpi_table_at(addr);
        if (t && memcmp(t->signature, signature, 4) == 0) {
            if (index == 0)
                return t;
            index--;
        }
    }
    return NULL;
}

static int field_inside(const struct acpi_header *t, uint32_t offset, uint32_t size)
{
    return t && offset <= t->length && size <= t->length - offset;
}

uint32_t acpi_field32(const struct acpi_header *t, uint32_t offset)
{
    if (!field_inside(t, offset, 4))
        return 0;
    const uint8_t *b = (const uint8_t *)t + offset;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

uint8_t acpi_field8(const struct acpi_header *t, uint32_t offset)
{
    if (!field_inside(t, offset, 1))
        return 0;
    return ((const uint8_t *)t)[offset];
}

int acpi_field_gas(const struct acpi_header *t, uint32_t offset, struct acpi_gas *out)
{
    if (!field_inside(t, offset, sizeof(*out)))
        return -1;
    memcpy(out, (const uint8_t *)t + offset, sizeof(*out));
    return 0;
}

const struct acpi_header *acpi_fadt_dsdt(const struct acpi_header *fadt)
{
    const struct acpi_header *d = NULL;
    if (field_inside(fadt, FADT_X_DSDT, 8)) {
        uint64_t x = (uint64_t)acpi_field32(fadt, FADT_X_DSDT) | ((uint64_t)acpi_field32(fadt, FADT_X_DSDT + 4) << 32);
        if (x)
            d = acpi_table_at(x);
    }
    if (!d)
        d = acpi_table_at(acpi_field32(fadt, FADT_DSDT));
    if (d && memcmp(d->signature, "DSDT", 4) != 0)
        return NULL;
    return d;
}

/* Reads one AML integer data object (ZeroOp, OneOp, OnesOp, Byte/Word/DWordPrefix)
 * at aml[*pos] (pos < len); returns 0 and advances *pos, or -1. */
static int aml_integer(const uint8_t *aml, uint32_t len, uint32_t *pos, uint32_t *value)
{
    uint32_t p = *pos;
    if (p >= len)
        return -1;
    uint8_t op = aml[p++];
    uint32_t size;
    switch (op) {
    case 0x00: *value = 0; *pos = p; return 0;
    case 0x01: *value = 1; *pos = p; return 0;
    case 0xff: *value = 0xffffffffu; *pos = p; return 0;
    case 0x0a: size = 1; break;
    case 0x0b: size = 2; break;
    case 0x0c: size = 4; break;
    default: return -1;
    }
    if (size > len - p)
        return -1;
    uint32_t v = 0;
    for (uint32_t i = size; i > 0; i--)
        v = (v << 8) | aml[p + i - 1];
    *value = v;
    *pos = p + size;
    return 0;
}

int acpi_find_s5(const struct acpi_header *dsdt, uint8_t *a, uint8_t *b)
{
    const uint8_t *aml = (const uint8_t *)dsdt + sizeof(struct acpi_header);
    uint32_t len = dsdt->length - (uint32_t)sizeof(struct acpi_header);
    for (uint32_t i = 1; i + 4 < len; i++) {
        if (aml[i] != '_' || aml[i + 1] != 'S' || aml[i + 2] != '5' || aml[i + 3] != '_')
            continue;
        /* NameOp (0x08), optionally followed by a root prefix '\', then the name. */
        int named = aml[i - 1] == 0x08 || (aml[i - 1] == '\\' && i >= 2 && aml[i - 2] == 0x08);
        uint32_t p = i + 4;
        if (!named || aml[p] != 0x12) /* PackageOp */
            continue;
        p++;
        /* PkgLength: lead byte bits 7-6 = number of following bytes; the length counts
         * from the PkgLength itself to the end of the package. */
        if (p >= len)
            return -1;
        uint32_t follow = aml[p] >> 6, pkg_len;
        if (follow == 0) {
            pkg_len = aml[p] & 0x3fu;
        } else {
            if (follow > len - p - 1)
                return -1;
            pkg_len = aml[p] & 0x0fu;
            for (uint32_t k = 0; k < follow; k++)
                pkg_len |= (uint32_t)aml[p + 1 + k] << (4 + 8 * k);
        }
        if (pkg_len > len - p)
            return -1;
        len = p + pkg_len; /* parse no further than the package */
        p += 1 + follow;
        if (p >= len)
            return -1;
        uint8_t count = aml[p++]; /* NumElements */
        uint32_t va = 0, vb = 0;
        if (count < 1 || aml_integer(aml, len, &p, &va) != 0)
            return -1;
        if (count >= 2 && aml_integer(aml, len, &p, &vb) != 0)
            vb = 0;
        *a = (uint8_t)va;
        *b = (uint8_t)vb;
        return 0;
    }
    return -1;
}

int acpi_gas_write(const struct acpi_gas *gas, uint32_t value)
{
    unsigned bytes;
    switch (gas->access_size) {
    case 1: bytes = 1; break;
    case 2: bytes = 2; break;
    case 3: bytes = 4; break;
    case 0: bytes = gas->bit_width <= 8 ? 1 : gas->bit_width <= 16 ? 2 : 4; break;
    default: return -1;
    }
    if (gas->space_id == 1) {
        if (gas->address > 0xffff)
            return -1;
        uint16_t port = (uint16_t)gas->address;
        if (bytes == 1)
            outb(port, (uint8_t)value);
        else if (bytes == 2)
            outw(port, (uint16_t)value);
        else
            outl(port, value);
        return 0;
    }
    if (gas->space_id == 0) {
        const void *p = phys(gas->address, bytes);
        if (!p)
            return -1;
        uintptr_t addr = (uintptr_t)p;
        if (bytes == 1)
            mmio_write8(addr, (uint8_t)value);
        else if (bytes == 2)
            mmio_write16(addr, (uint16_t)value);
        else
            mmio_write32(addr, value);
        return 0;
    }
    return -1;
}

unsigned acpi_madt_cpus(const struct acpi_header *madt)
{
    const uint8_t *b = (const uint8_t *)madt;
    unsigned cpus = 0;
    uint32_t p = sizeof(struct acpi_header) + 8; /* local APIC address + flags */
    while (p + 2 <= madt->length) {
        uint8_t type = b[p], len = b[p + 1];
        if (len < 2 || len > madt->length - p)
            break;
        if (type == 0 && len >= 8 && (b[p + 4] & 1))
            cpus++; /* Processor Local APIC, enabled */
        else if (type == 9 && len >= 16 && (b[p + 8] & 1))
            cpus++; /* Processor Local x2APIC, enabled */
        p += len;
    }
    return cpus;
}

/* ---- VM Generation ID ----------------------------------------------------------------- */

/* PkgLength at aml[pos] (pos < len): its value (counted from aml[pos]) and its own size. */
static int aml_pkg_length(const uint8_t *aml, uint32_t len, uint32_t pos, uint32_t *value, uint32_t *size)
{
    if (pos >= len)
        return -1;
    uint32_t follow = aml[pos] >> 6;
    if (follow > len - pos - 1)
        return -1;
    uint32_t v;
    if (follow == 0) {
        v = aml[pos] & 0x3fu;
    } else {
        v = aml[pos] & 0x0fu;
        for (uint32_t k = 0; k < follow; k++)
            v |= (uint32_t)aml[pos + 1 + k] << (4 + 8 * k);
    }
    *value = v;
    *size = 1 + follow;
    return 0;
}

/* One ComputationalData integer (ZeroOp, OneOp, OnesOp, Byte/Word/DWord/QWordPrefix) at
 * aml[*pos] that fits 32 bits (OnesOp counts as 0xffffffff); advances *pos. */
static int aml_integer32(const uint8_t *aml, uint32_t len, uint32_t *pos, uint32_t *value)
{
    uint32_t p = *pos;
    if (p >= len)
        return -1;
    uint8_t op = aml[p++];
    uint32_t size;
    switch (op) {
    case 0x00: *value = 0; *pos = p; return 0;
    case 0x01: *value = 1; *pos = p; return 0;
    case 0xff: *value = 0xffffffffu; *pos = p; return 0;
    case 0x0a: size = 1; break;
    case 0x0b: size = 2; break;
    case 0x0c: size = 4; break;
    case 0x0e: size = 8; break;
    default: return -1;
    }
    if (size > len - p)
        return -1;
    uint32_t v = 0;
    for (uint32_t i = 0; i < size; i++) {
        if (i >= 4 && aml[p + i])
            return -1; /* a QWord above 32 bits is not a half of an address */
        if (i < 4)
            v |= (uint32_t)aml[p + i] << (8 * i);
    }
    *value = v;
    *pos = p + size;
    return 0;
}

/* DeviceOp (0x5B 0x82) at aml[pos] whose PkgLength fits in `end`: returns 0 with the first
 * byte after the PkgLength and the end of the device. */
static int aml_device_at(const uint8_t *aml, uint32_t end, uint32_t pos, uint32_t *body, uint32_t *dev_end)
{
    if (pos + 2 >= end || aml[pos] != 0x5b || aml[pos + 1] != 0x82)
        return -1;
    uint32_t plen, psize;
    if (aml_pkg_length(aml, end, pos + 2, &plen, &psize) != 0 || plen < psize || plen > end - (pos + 2))
        return -1;
    *body = pos + 2 + psize;
    *dev_end = pos + 2 + plen;
    return 0;
}

/* Name(_CID or _HID, "VM_GEN_COUNTER") at aml[pos]; the string in any letter case
 * (Microsoft's spec and QEMU write "VM_Gen_Counter"). */
#define VMGENID_ID_LENGTH 21
static int aml_vmgenid_id_at(const uint8_t *aml, uint32_t end, uint32_t pos)
{
    static const char id[] = "\x0dVM_GEN_COUNTER"; /* StringPrefix, string, then NUL */
    if (end < VMGENID_ID_LENGTH || pos > end - VMGENID_ID_LENGTH || aml[pos] != 0x08)
        return 0;
    if (memcmp(aml + pos + 1, "_CID", 4) != 0 && memcmp(aml + pos + 1, "_HID", 4) != 0)
        return 0;
    for (uint32_t i = 0; i < 16; i++) {
        uint8_t c = aml[pos + 5 + i];
        if (c >= 'a' && c <= 'z')
            c = (uint8_t)(c - 'a' + 'A');
        if (c != (uint8_t)id[i])
            return 0;
    }
    return 1;
}

/* Name(ADDR, Package(2){low, high}) at aml[pos], inside `end`. */
static int aml_addr_package_at(const uint8_t *aml, uint32_t end, uint32_t pos, uint64_t *addr)
{
    if (pos + 6 >= end || aml[pos] != 0x08 || memcmp(aml + pos + 1, "ADDR", 4) != 0 || aml[pos + 5] != 0x12)
        return -1;
    uint32_t p = pos + 6, plen, psize;
    if (aml_pkg_length(aml, end, p, &plen, &psize) != 0 || plen > end - p)
        return -1;
    uint32_t pkg_end = p + plen;
    p += psize;
    if (p >= pkg_end || aml[p] != 0x02) /* NumElements */
        return -1;
    p++;
    uint32_t lo, hi;
    if (aml_integer32(aml, pkg_end, &p, &lo) != 0 || aml_integer32(aml, pkg_end, &p, &hi) != 0)
        return -1;
    *addr = ((uint64_t)hi << 32) | lo;
    return 0;
}

/* Name(ADDR, ...) directly in the device [body, dev_end): nested devices are skipped. */
static int aml_device_addr(const uint8_t *aml, uint32_t body, uint32_t dev_end, uint64_t *addr)
{
    for (uint32_t j = body; j < dev_end; j++) {
        uint32_t nb, ne;
        if (aml_device_at(aml, dev_end, j, &nb, &ne) == 0) {
            j = ne - 1;
            continue;
        }
        if (aml_addr_package_at(aml, dev_end, j, addr) == 0)
            return 0;
    }
    return -1;
}

int acpi_aml_find_vmgenid(const uint8_t *aml, uint32_t len, uint64_t *addr)
{
    int found_device = 0;
    for (uint32_t c = 0; c < len; c++) {
        if (!aml_vmgenid_id_at(aml, len, c))
            continue;
        /* The devices around the Name, innermost (latest start) first. */
        for (uint32_t d = c; d-- > 0;) {
            uint32_t body, dev_end;
            if (aml_device_at(aml, len, d, &body, &dev_end) != 0 || body > c || dev_end < c + VMGENID_ID_LENGTH)
                continue;
            found_device = 1;
            if (aml_device_addr(aml, body, dev_end, addr) == 0)
                return 0;
        }
    }
    return found_device ? -2 : -1;
}

int acpi_aml_find_name_dword(const uint8_t *aml, uint32_t len, const char *name, uint32_t *value)
{
    for (uint32_t i = 0; len >= 10 && i <= len - 10; i++) {
        if (aml[i] == 0x08 && memcmp(aml + i + 1, name, 4) == 0 && aml[i + 5] == 0x0c) {
            *value = (uint32_t)aml[i + 6] | ((uint32_t)aml[i + 7] << 8) | ((uint32_t)aml[i + 8] << 16) |
                     ((uint32_t)aml[i + 9] << 24);
            return 0;
        }
    }
    return -1;
}
