#include "acpi_ged.h"
#include "string.h"

#define OP_ZERO 0x00
#define OP_ONE 0x01
#define OP_NAME 0x08
#define OP_BYTE 0x0a
#define OP_WORD 0x0b
#define OP_DWORD 0x0c
#define OP_STRING 0x0d
#define OP_QWORD 0x0e
#define OP_BUFFER 0x11
#define OP_METHOD 0x14
#define OP_DUAL_NAME 0x2e
#define OP_MULTI_NAME 0x2f
#define OP_EXT 0x5b
#define OP_DEVICE 0x82 /* after OP_EXT */
#define OP_ARG0 0x68
#define OP_NOTIFY 0x86
#define OP_LEQUAL 0x93
#define OP_IF 0xa0
#define OP_ONES 0xff

#define RES_EXTENDED_IRQ 0x89
#define RES_SMALL_END 0x0f /* small resource type of the End Tag */

/* PkgLength at aml[pos] (pos < end): its value (counted from aml[pos]) and its own size. */
static int pkg_length(const uint8_t *aml, uint32_t end, uint32_t pos, uint32_t *value, uint32_t *size)
{
    if (pos >= end)
        return -1;
    uint32_t follow = aml[pos] >> 6;
    if (follow > end - pos - 1)
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

/* An opcode at aml[op] (op_size bytes) followed by a PkgLength that fits in `end`: the
 * first byte after the PkgLength and the end of the package. */
static int package_at(const uint8_t *aml, uint32_t end, uint32_t op, uint32_t op_size, uint32_t *body, uint32_t *pkg_end)
{
    if (op_size > end || op > end - op_size)
        return -1;
    uint32_t p = op + op_size, plen, psize;
    if (pkg_length(aml, end, p, &plen, &psize) != 0 || plen < psize || plen > end - p)
        return -1;
    *body = p + psize;
    *pkg_end = p + plen;
    return 0;
}

/* One integer data object (ZeroOp, OneOp, OnesOp, Byte/Word/DWord/QWordPrefix) at aml[*pos]. */
static int integer(const uint8_t *aml, uint32_t end, uint32_t *pos, uint64_t *value)
{
    uint32_t p = *pos, size;
    if (p >= end)
        return -1;
    switch (aml[p++]) {
    case OP_ZERO: *value = 0; *pos = p; return 0;
    case OP_ONE: *value = 1; *pos = p; return 0;
    case OP_ONES: *value = ~0ull; *pos = p; return 0;
    case OP_BYTE: size = 1; break;
    case OP_WORD: size = 2; break;
    case OP_DWORD: size = 4; break;
    case OP_QWORD: size = 8; break;
    default: return -1;
    }
    if (size > end - p)
        return -1;
    uint64_t v = 0;
    for (uint32_t i = size; i > 0; i--)
        v = (v << 8) | aml[p + i - 1];
    *value = v;
    *pos = p + size;
    return 0;
}

static int lead_name_char(uint8_t c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
static int name_char(uint8_t c) { return lead_name_char(c) || (c >= '0' && c <= '9'); }

/* NameString at aml[*pos]: '\' or '^'..., then a NameSeg, DualNamePrefix + 2 NameSegs or
 * MultiNamePrefix + count + NameSegs (not NullName). Gives the last NameSeg. */
static int name_string(const uint8_t *aml, uint32_t end, uint32_t *pos, const uint8_t **last)
{
    uint32_t p = *pos, segs;
    if (p < end && aml[p] == '\\')
        p++;
    else
        while (p < end && aml[p] == '^')
            p++;
    if (p >= end)
        return -1;
    if (aml[p] == OP_DUAL_NAME) {
        segs = 2;
        p++;
    } else if (aml[p] == OP_MULTI_NAME) {
        if (p + 1 >= end || aml[p + 1] == 0)
            return -1;
        segs = aml[p + 1];
        p += 2;
    } else {
        segs = 1;
    }
    if (segs > (end - p) / 4)
        return -1;
    for (uint32_t s = 0; s < segs; s++) {
        const uint8_t *seg = aml + p + 4 * s;
        if (!lead_name_char(seg[0]) || !name_char(seg[1]) || !name_char(seg[2]) || !name_char(seg[3]))
            return -1;
    }
    *last = aml + p + 4 * (segs - 1);
    *pos = p + 4 * segs;
    return 0;
}

/* Device(name){...} at aml[pos]: its last NameSeg, the first byte after the name, its end. */
static int device_at(const uint8_t *aml, uint32_t end, uint32_t pos, const uint8_t **name, uint32_t *body,
                     uint32_t *dev_end)
{
    if (pos >= end || aml[pos] != OP_EXT || pos + 1 >= end || aml[pos + 1] != OP_DEVICE)
        return -1;
    uint32_t p, e;
    if (package_at(aml, end, pos, 2, &p, &e) != 0 || name_string(aml, e, &p, name) != 0)
        return -1;
    *body = p;
    *dev_end = e;
    return 0;
}

/* Name(seg, ...) at aml[pos] with `seg` a NameSeg: the position of the data object. */
static int name_op_at(const uint8_t *aml, uint32_t end, uint32_t pos, const char *seg, uint32_t *data)
{
    if (end < 6 || pos > end - 6 || aml[pos] != OP_NAME || memcmp(aml + pos + 1, seg, 4) != 0)
        return -1;
    *data = pos + 5;
    return 0;
}

/* StringPrefix + `s` + NUL at aml[pos]. */
static int string_at(const uint8_t *aml, uint32_t end, uint32_t pos, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    if (pos >= end || aml[pos] != OP_STRING || n + 1 > end - pos - 1)
        return 0;
    return memcmp(aml + pos + 1, s, n) == 0 && aml[pos + 1 + n] == 0;
}

/* The next position directly in a device's body [*j, end), nested devices skipped:
 * returns 0 with *j at it, -1 at the end. Call with *j at the body, then *j + 1 each time.
 * (The byte checks before the calls here and below keep the scan of a large DSDT cheap.) */
static inline int next_direct(const uint8_t *aml, uint32_t end, uint32_t *j)
{
    while (*j < end) {
        const uint8_t *n;
        uint32_t nb, ne;
        if (aml[*j] != OP_EXT || device_at(aml, end, *j, &n, &nb, &ne) != 0)
            return 0;
        *j = ne;
    }
    return -1;
}

/* Name(_HID, "ACPI0013") directly in the device. */
static int is_ged(const uint8_t *aml, uint32_t body, uint32_t end)
{
    for (uint32_t j = body; next_direct(aml, end, &j) == 0; j++) {
        uint32_t d;
        if (aml[j] == OP_NAME && name_op_at(aml, end, j, "_HID", &d) == 0 && string_at(aml, end, d, "ACPI0013"))
            return 1;
    }
    return 0;
}

/* Extended Interrupt descriptors of the resource template in aml[start, end). */
static void resource_gsis(const uint8_t *aml, uint32_t start, uint32_t end, struct acpi_ged *ged)
{
    uint32_t p = start;
    while (p < end) {
        uint8_t tag = aml[p];
        if (!(tag & 0x80)) { /* small item: type in bits 6-3, length in bits 2-0 */
            uint32_t n = tag & 7u;
            if (((tag >> 3) & 0x0f) == RES_SMALL_END || n > end - p - 1)
                return;
            p += 1 + n;
            continue;
        }
        if (end - p < 3)
            return;
        uint32_t n = (uint32_t)aml[p + 1] | ((uint32_t)aml[p + 2] << 8);
        if (n > end - p - 3)
            return;
        if (tag == RES_EXTENDED_IRQ && n >= 2) {
            /* flags, interrupt table length, then that many 32-bit GSIs */
            uint32_t count = aml[p + 4];
            if (count >= 1 && count <= (n - 2) / 4) {
                for (uint32_t i = 0; i < count && ged->gsi_count < ACPI_GED_MAX_GSIS; i++) {
                    const uint8_t *g = aml + p + 5 + 4 * i;
                    ged->gsis[ged->gsi_count++] =
                        (uint32_t)g[0] | ((uint32_t)g[1] << 8) | ((uint32_t)g[2] << 16) | ((uint32_t)g[3] << 24);
                }
            }
        }
        p += 3 + n;
    }
}

/* Name(_CRS, Buffer(size){...}) at aml[pos]: adds its interrupts. */
static int crs_at(const uint8_t *aml, uint32_t end, uint32_t pos, struct acpi_ged *ged)
{
    uint32_t d, body, buf_end;
    uint64_t size;
    if (name_op_at(aml, end, pos, "_CRS", &d) != 0 || package_at(aml, end, d, 1, &body, &buf_end) != 0 ||
        aml[d] != OP_BUFFER || integer(aml, buf_end, &body, &size) != 0)
        return -1;
    if (size < buf_end - body)
        buf_end = body + (uint32_t)size; /* bytes past BufferSize are not part of the buffer */
    resource_gsis(aml, body, buf_end, ged);
    return 0;
}

/* Method(_EVT, ...) at aml[pos]: its body. */
static int evt_at(const uint8_t *aml, uint32_t end, uint32_t pos, struct acpi_ged *ged)
{
    uint32_t p, method_end;
    const uint8_t *name;
    if (pos >= end || aml[pos] != OP_METHOD || package_at(aml, end, pos, 1, &p, &method_end) != 0 ||
        name_string(aml, method_end, &p, &name) != 0 || memcmp(name, "_EVT", 4) != 0 || p >= method_end)
        return -1;
    p++; /* MethodFlags */
    ged->evt = aml + p;
    ged->evt_len = method_end - p;
    return 0;
}

int acpi_aml_next_ged(const uint8_t *aml, uint32_t len, uint32_t *pos, struct acpi_ged *ged)
{
    for (uint32_t i = *pos; i < len; i++) {
        const uint8_t *name;
        uint32_t body, end;
        if (aml[i] != OP_EXT || device_at(aml, len, i, &name, &body, &end) != 0 || !is_ged(aml, body, end))
            continue;
        memset(ged, 0, sizeof(*ged));
        for (uint32_t j = body; next_direct(aml, end, &j) == 0; j++) {
            if (aml[j] == OP_NAME && ged->gsi_count == 0)
                crs_at(aml, end, j, ged);
            else if (aml[j] == OP_METHOD && !ged->evt)
                evt_at(aml, end, j, ged);
        }
        *pos = i + 2;
        return 0;
    }
    *pos = len;
    return -1;
}

int acpi_aml_find_power_button(const uint8_t *aml, uint32_t len, char name[5])
{
    for (uint32_t i = 0; i < len; i++) {
        const uint8_t *dev_name;
        uint32_t body, end;
        if (aml[i] != OP_EXT || device_at(aml, len, i, &dev_name, &body, &end) != 0)
            continue;
        for (uint32_t j = body; next_direct(aml, end, &j) == 0; j++) {
            uint32_t d;
            uint64_t id;
            if (aml[j] != OP_NAME || name_op_at(aml, end, j, "_HID", &d) != 0)
                continue;
            uint32_t p = d;
            if ((integer(aml, end, &p, &id) == 0 && id == ACPI_EISA_PNP0C0C) || string_at(aml, end, d, "PNP0C0C")) {
                memcpy(name, dev_name, 4);
                name[4] = 0;
                return 0;
            }
        }
    }
    return -1;
}

/* If (LEqual (Arg0, n)) or If (LEqual (n, Arg0)) at b[i]: n, the If's body and end. */
static int if_arg0_at(const uint8_t *b, uint32_t end, uint32_t i, uint64_t *n, uint32_t *body, uint32_t *if_end)
{
    uint32_t p, e;
    if (i >= end || b[i] != OP_IF || package_at(b, end, i, 1, &p, &e) != 0 || p >= e || b[p] != OP_LEQUAL)
        return -1;
    p++;
    if (p < e && b[p] == OP_ARG0) {
        p++;
        if (integer(b, e, &p, n) != 0)
            return -1;
    } else if (integer(b, e, &p, n) != 0 || p >= e || b[p++] != OP_ARG0) {
        return -1;
    }
    *body = p;
    *if_end = e;
    return 0;
}

int acpi_ged_notify_gsi(const struct acpi_ged *ged, const char target[4], uint32_t value, uint32_t *gsi)
{
    const uint8_t *b = ged->evt;
    uint32_t len = ged->evt_len;
    if (!b)
        return -1;
    for (uint32_t i = 0; i < len; i++) {
        uint64_t n, nn, v;
        uint32_t body, if_end;
        if (b[i] != OP_IF || if_arg0_at(b, len, i, &n, &body, &if_end) != 0 || n > 0xffffffffull)
            continue;
        for (uint32_t j = body; j < if_end; j++) {
            uint32_t nb, ne;
            if (b[j] == OP_IF && if_arg0_at(b, if_end, j, &nn, &nb, &ne) == 0) {
                j = ne - 1; /* a nested If on Arg0 has its own event number */
                continue;
            }
            uint32_t p = j + 1;
            const uint8_t *name;
            if (b[j] == OP_NOTIFY && name_string(b, if_end, &p, &name) == 0 && memcmp(name, target, 4) == 0 &&
                integer(b, if_end, &p, &v) == 0 && v == value) {
                *gsi = (uint32_t)n;
                return 0;
            }
        }
    }
    return -1;
}

static int has_gsi(const struct acpi_ged *ged, uint32_t gsi)
{
    for (unsigned i = 0; i < ged->gsi_count; i++)
        if (ged->gsis[i] == gsi)
            return 1;
    return 0;
}

static enum acpi_pwrb_status check_ged(const struct acpi_ged *ged, const char *button, uint32_t *gsi)
{
    if (ged->gsi_count == 0)
        return ACPI_PWRB_NO_GSIS;
    if (!ged->evt)
        return ACPI_PWRB_NO_EVT;
    if (!button[0])
        return ACPI_PWRB_NO_BUTTON;
    if (acpi_ged_notify_gsi(ged, button, 0x80, gsi) != 0)
        return ACPI_PWRB_NO_NOTIFY;
    return has_gsi(ged, *gsi) ? ACPI_PWRB_OK : ACPI_PWRB_GSI_NOT_IN_CRS;
}

enum acpi_pwrb_status acpi_find_ged_power_button(const uint8_t *const aml[], const uint32_t len[], unsigned count,
                                                 struct acpi_pwrb *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned t = 0; t < count && !out->button[0]; t++)
        if (acpi_aml_find_power_button(aml[t], len[t], out->button) != 0)
            out->button[0] = 0;
    enum acpi_pwrb_status first = ACPI_PWRB_NO_GED;
    uint32_t first_gsi = 0;
    for (unsigned t = 0; t < count; t++) {
        struct acpi_ged ged;
        for (uint32_t pos = 0; acpi_aml_next_ged(aml[t], len[t], &pos, &ged) == 0;) {
            uint32_t gsi = 0;
            enum acpi_pwrb_status s = check_ged(&ged, out->button, &gsi);
            if (s == ACPI_PWRB_OK || first == ACPI_PWRB_NO_GED) {
                out->ged = ged;
                first = s;
                first_gsi = gsi;
            }
            if (s == ACPI_PWRB_OK) {
                out->gsi = gsi;
                return ACPI_PWRB_OK;
            }
        }
    }
    out->gsi = first_gsi;
    return first;
}
