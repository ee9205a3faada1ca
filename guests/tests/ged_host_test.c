/* Host-side unit test of the GED power button search in lib/acpi_ged.c on hand-assembled
 * AML: Skiff's layout (root paths with DualNamePrefix, smallest integers), the same as iasl
 * compiles it (relative names), every integer encoding of the event number, the Notify
 * value and the BufferSize, the NameString forms of the Notify target, LEqual with the
 * operands swapped, nested Ifs and Else, an _EVT without the power-button branch, a GSI
 * missing from _CRS, a missing GED/_CRS/_EVT/PNP0C0C, the button and the GED in different
 * tables, two GEDs, several and malformed interrupt descriptors, and every truncation of
 * a valid blob. Each blob is placed at the very end of a page followed by an inaccessible
 * page, so a read past its length crashes the test. Built and run by `make test-host`. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "acpi_ged.h"

static int failures;
#define EXPECT(cond)                                                                       \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

struct aml {
    uint8_t b[4096];
    uint32_t n;
};

static void put(struct aml *a, const void *p, uint32_t n)
{
    if (a->n + n > sizeof(a->b)) {
        fprintf(stderr, "AML buffer overflow\n");
        exit(2);
    }
    memcpy(a->b + a->n, p, n);
    a->n += n;
}
/* lib/string.h (first on the include path) has no strcmp. */
static int streq(const char *a, const char *b) { return strlen(a) == strlen(b) && memcmp(a, b, strlen(a)) == 0; }

static void put8(struct aml *a, uint8_t v) { put(a, &v, 1); }
static void puts_(struct aml *a, const char *s) { put(a, s, (uint32_t)strlen(s)); }
static void cat(struct aml *a, const struct aml *b) { put(a, b->b, b->n); }

/* PkgLength of `size` bytes (1-4; 0: the smallest) for `content` bytes following it. */
static void pkg_length(struct aml *a, uint32_t content, int size)
{
    if (size == 0)
        size = content + 1 <= 63 ? 1 : content + 2 <= 0xfff ? 2 : 3;
    uint32_t v = content + (uint32_t)size;
    if (size == 1) {
        if (v > 63) {
            fprintf(stderr, "PkgLength %u needs more than one byte\n", v);
            exit(2);
        }
        put8(a, (uint8_t)v);
        return;
    }
    put8(a, (uint8_t)(((size - 1) << 6) | (v & 0xf)));
    for (int k = 1; k < size; k++)
        put8(a, (uint8_t)(v >> (4 + 8 * (k - 1))));
}

/* op (1 or 2 bytes, 2 if op > 0xff: 0x5b82 = DeviceOp), PkgLength, then `body`. */
static void package(struct aml *a, unsigned op, const struct aml *body, int plsize)
{
    if (op > 0xff)
        put8(a, (uint8_t)(op >> 8));
    put8(a, (uint8_t)op);
    pkg_length(a, body->n, plsize);
    cat(a, body);
}

enum enc { SMALLEST, ZERO, ONE, ONES, BYTE, WORD, DWORD, QWORD };
static void integer(struct aml *a, enum enc e, uint64_t v)
{
    if (e == SMALLEST)
        e = v == 0 ? ZERO : v == 1 ? ONE : v <= 0xff ? BYTE : v <= 0xffff ? WORD : v <= 0xffffffffu ? DWORD : QWORD;
    switch (e) {
    case SMALLEST: break;
    case ZERO: put8(a, 0x00); break;
    case ONE: put8(a, 0x01); break;
    case ONES: put8(a, 0xff); break;
    case BYTE: put8(a, 0x0a); put8(a, (uint8_t)v); break;
    case WORD: put8(a, 0x0b); put(a, &v, 2); break;
    case DWORD: put8(a, 0x0c); put(a, &v, 4); break;
    case QWORD: put8(a, 0x0e); put(a, &v, 8); break;
    }
}

/* A NameString from a path: "\\_SB_.PWRB" -> '\' DualNamePrefix _SB_ PWRB; "^PWRB"; "PWRB";
 * three or more segments use MultiNamePrefix. */
static void name_path(struct aml *a, const char *path)
{
    while (*path == '\\' || *path == '^')
        put8(a, (uint8_t)*path++);
    uint32_t segs = ((uint32_t)strlen(path) + 1) / 5;
    if (segs == 2)
        put8(a, 0x2e);
    else if (segs > 2) {
        put8(a, 0x2f);
        put8(a, (uint8_t)segs);
    }
    for (uint32_t s = 0; s < segs; s++)
        put(a, path + 5 * s, 4);
}

static void name_string_obj(struct aml *a, const char *seg, const char *s)
{
    put8(a, 0x08);
    put(a, seg, 4);
    put8(a, 0x0d);
    put(a, s, (uint32_t)strlen(s) + 1);
}

static void name_int(struct aml *a, const char *seg, enum enc e, uint64_t v)
{
    put8(a, 0x08);
    put(a, seg, 4);
    integer(a, e, v);
}

static void device(struct aml *a, const char *path, const struct aml *body, int plsize)
{
    struct aml d = { .n = 0 };
    name_path(&d, path);
    cat(&d, body);
    package(a, 0x5b82, &d, plsize);
}

/* Name(_CRS, Buffer(){resources}) with BufferSize in encoding `e` (its value: the length,
 * plus `size_delta`). */
static void crs(struct aml *a, const struct aml *res, enum enc e, int size_delta)
{
    struct aml buf = { .n = 0 };
    integer(&buf, e, (uint64_t)((int64_t)res->n + size_delta));
    cat(&buf, res);
    put8(a, 0x08);
    puts_(a, "_CRS");
    package(a, 0x11, &buf, 0);
}

/* Extended Interrupt descriptor: consumer, edge, active high, exclusive. */
static void ext_irq(struct aml *a, const uint32_t *gsis, unsigned count)
{
    uint16_t len = (uint16_t)(2 + 4 * count);
    put8(a, 0x89);
    put(a, &len, 2);
    put8(a, 0x03);
    put8(a, (uint8_t)count);
    put(a, gsis, 4 * count);
}
static void end_tag(struct aml *a) { put8(a, 0x79); put8(a, 0x00); }

/* If (LEqual (Arg0, gsi)) { Notify (target, value) } */
struct branch {
    enum enc gsi_enc;
    uint64_t gsi;
    const char *target;
    enum enc val_enc;
    uint64_t value;
    int swapped; /* LEqual (gsi, Arg0) */
    int plsize;
};
static void if_notify(struct aml *a, const struct branch *br)
{
    struct aml body = { .n = 0 };
    put8(&body, 0x93);
    if (br->swapped) {
        integer(&body, br->gsi_enc, br->gsi);
        put8(&body, 0x68);
    } else {
        put8(&body, 0x68);
        integer(&body, br->gsi_enc, br->gsi);
    }
    put8(&body, 0x86);
    name_path(&body, br->target);
    integer(&body, br->val_enc, br->value);
    package(a, 0xa0, &body, br->plsize);
}

static void method(struct aml *a, const char *name, uint8_t flags, const struct aml *body, int plsize)
{
    struct aml m = { .n = 0 };
    name_path(&m, name);
    put8(&m, flags);
    cat(&m, body);
    package(a, 0x14, &m, plsize);
}

/* Device (\_SB.PWRB) { Name (_HID, EisaId ("PNP0C0C")), Name (_UID, 0) } */
static void pwrb_device(struct aml *a, const char *path, enum enc e, uint64_t hid)
{
    struct aml body = { .n = 0 };
    name_int(&body, "_HID", e, hid);
    name_int(&body, "_UID", SMALLEST, 0);
    device(a, path, &body, 0);
}

/* The GED with _CRS {gsis} and an _EVT made of `evt` (NULL: no _EVT; crs_res NULL: no _CRS). */
static void ged_device(struct aml *a, const char *path, const struct aml *crs_res, const struct aml *evt)
{
    struct aml body = { .n = 0 };
    name_string_obj(&body, "_HID", "ACPI0013");
    name_int(&body, "_UID", SMALLEST, 0);
    if (crs_res)
        crs(&body, crs_res, SMALLEST, 0);
    if (evt)
        method(&body, "_EVT", 0x09, evt, 0);
    device(a, path, &body, 0);
}

static const struct branch VGEN5 = { SMALLEST, 5, "\\_SB_.VGEN", SMALLEST, 0x80, 0, 0 };
static const struct branch PWRB6 = { SMALLEST, 6, "\\_SB_.PWRB", SMALLEST, 0x80, 0, 0 };

/* Skiff's DSDT pieces: the button, then the GED with _CRS {5, 6} and both branches. */
static void skiff_layout(struct aml *out, const struct branch *pwrb_branch)
{
    static const uint32_t gsis[] = { 5, 6 };
    struct aml res = { .n = 0 }, evt = { .n = 0 };
    ext_irq(&res, gsis, 2);
    end_tag(&res);
    if_notify(&evt, &VGEN5);
    if (pwrb_branch)
        if_notify(&evt, pwrb_branch);
    out->n = 0;
    static const uint8_t prelude[] = { 0x08, 'P', 'I', 'C', 'M', 0x00 }; /* Name(PICM, Zero) */
    put(out, prelude, sizeof(prelude));
    pwrb_device(out, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
    ged_device(out, "\\_SB_.GED_", &res, &evt);
    put8(out, 0xa3); /* NoopOp */
}

static long page_size;
static uint8_t *guarded[2]; /* each: a read-write page, then a PROT_NONE page */

static const uint8_t *place(int slot, const struct aml *a, uint32_t len)
{
    uint8_t *at = guarded[slot] + page_size - len;
    memcpy(at, a->b, len);
    return at;
}

/* Runs the search over one blob (its first `len` bytes). */
static enum acpi_pwrb_status find1(const struct aml *a, uint32_t len, struct acpi_pwrb *out)
{
    const uint8_t *aml[1] = { place(0, a, len) };
    uint32_t lens[1] = { len };
    return acpi_find_ged_power_button(aml, lens, 1, out);
}

static enum acpi_pwrb_status find2(const struct aml *a, const struct aml *b, struct acpi_pwrb *out)
{
    const uint8_t *aml[2] = { place(0, a, a->n), place(1, b, b->n) };
    uint32_t lens[2] = { a->n, b->n };
    return acpi_find_ged_power_button(aml, lens, 2, out);
}

static int ok6(enum acpi_pwrb_status s, const struct acpi_pwrb *pb)
{
    return s == ACPI_PWRB_OK && pb->gsi == 6 && streq(pb->button, "PWRB") && pb->ged.gsi_count == 2 &&
           pb->ged.gsis[0] == 5 && pb->ged.gsis[1] == 6;
}

/* What iasl 20200925 makes of the layout (Device(\_SB.PWRB) etc. in a DefinitionBlock):
 * device names without the root prefix, Notify targets shortened to a NameSeg. */
static const uint8_t iasl_aml[] = {
    0x5b, 0x82, 0x19, 0x2e, '_', 'S', 'B', '_', 'V', 'G', 'E', 'N', 0x08, '_', 'H', 'I', 'D', 0x0d, 'Q', 'E', 'M',
    'U', '0', '0', '0', '2', 0x00, 0x5b, 0x82, 0x1a, 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', 0x08, '_', 'H',
    'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x0c, 0x08, '_', 'U', 'I', 'D', 0x00, 0x5b, 0x82, 0x49, 0x05, 0x2e, '_', 'S',
    'B', '_', 'G', 'E', 'D', '_', 0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0', '0', '1', '3', 0x00,
    0x08, '_', 'U', 'I', 'D', 0x00, 0x08, '_', 'C', 'R', 'S', 0x11, 0x12, 0x0a, 0x0f, 0x89, 0x0a, 0x00, 0x03, 0x02,
    0x05, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x79, 0x00, 0x14, 0x20, '_', 'E', 'V', 'T', 0x09, 0xa0, 0x0c,
    0x93, 0x68, 0x0a, 0x05, 0x86, 'V', 'G', 'E', 'N', 0x0a, 0x80, 0xa0, 0x0c, 0x93, 0x68, 0x0a, 0x06, 0x86, 'P',
    'W', 'R', 'B', 0x0a, 0x80,
};

int main(void)
{
    page_size = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < 2; i++) {
        guarded[i] = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (guarded[i] == MAP_FAILED || mprotect(guarded[i] + page_size, page_size, PROT_NONE) != 0) {
            perror("mmap");
            return 2;
        }
    }
    struct aml a, b;
    struct acpi_pwrb pb;

    /* Skiff's layout. */
    skiff_layout(&a, &PWRB6);
    EXPECT(ok6(find1(&a, a.n, &pb), &pb));

    /* iasl's encoding of it. */
    {
        struct aml c = { .n = 0 };
        put(&c, iasl_aml, sizeof(iasl_aml));
        EXPECT(ok6(find1(&c, c.n, &pb), &pb));
    }

    /* Every encoding of the event number (the GED's _CRS lists it). */
    static const struct { enum enc e; uint64_t v; } gsi_encs[] = {
        { ZERO, 0 }, { ONE, 1 }, { BYTE, 6 }, { BYTE, 0xfe }, { WORD, 6 }, { WORD, 0x1234 },
        { DWORD, 6 }, { DWORD, 0x89abcdef }, { QWORD, 6 }, { QWORD, 0xfffffffe },
    };
    for (unsigned i = 0; i < sizeof(gsi_encs) / sizeof(gsi_encs[0]); i++) {
        for (int swapped = 0; swapped < 2; swapped++) {
            uint32_t gsis[2] = { 5, (uint32_t)gsi_encs[i].v };
            struct aml res = { .n = 0 }, evt = { .n = 0 };
            ext_irq(&res, gsis, 2);
            end_tag(&res);
            if_notify(&evt, &VGEN5);
            struct branch br = PWRB6;
            br.gsi_enc = gsi_encs[i].e;
            br.gsi = gsi_encs[i].v;
            br.swapped = swapped;
            if_notify(&evt, &br);
            a.n = 0;
            pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
            ged_device(&a, "\\_SB_.GED_", &res, &evt);
            enum acpi_pwrb_status s = find1(&a, a.n, &pb);
            EXPECT(s == ACPI_PWRB_OK && pb.gsi == (uint32_t)gsi_encs[i].v);
            if (s != ACPI_PWRB_OK || pb.gsi != (uint32_t)gsi_encs[i].v)
                fprintf(stderr, "  gsi encoding %u swapped %d: status %d gsi %u\n", i, swapped, s, pb.gsi);
        }
    }
    /* OnesOp and a QWord above 32 bits are no GSI: the branch does not count. */
    {
        struct branch br = PWRB6;
        br.gsi_enc = ONES;
        skiff_layout(&a, &br);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_NOTIFY);
        br.gsi_enc = QWORD;
        br.gsi = 0x100000006ull;
        skiff_layout(&a, &br);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_NOTIFY);
    }

    /* Every encoding of the Notify value 0x80; other values do not count. */
    {
        static const enum enc val_encs[] = { BYTE, WORD, DWORD, QWORD };
        for (unsigned i = 0; i < 4; i++) {
            struct branch br = PWRB6;
            br.val_enc = val_encs[i];
            skiff_layout(&a, &br);
            EXPECT(ok6(find1(&a, a.n, &pb), &pb));
        }
        struct branch br = PWRB6;
        br.value = 0x81;
        skiff_layout(&a, &br);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_NOTIFY);
        br.value = 0x2;
        skiff_layout(&a, &br);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_NOTIFY);
        br.value = 0;
        br.val_enc = ZERO;
        skiff_layout(&a, &br);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_NOTIFY);
    }

    /* Every encoding of BufferSize, a BufferSize larger than the initializer (zero fill),
     * and one that cuts the descriptor (the rest is not part of the buffer). */
    {
        static const enum enc size_encs[] = { BYTE, WORD, DWORD, QWORD };
        static const uint32_t gsis[] = { 5, 6 };
        struct aml res = { .n = 0 }, evt = { .n = 0 };
        ext_irq(&res, gsis, 2);
        end_tag(&res);
        if_notify(&evt, &PWRB6);
        for (unsigned i = 0; i < 5; i++) {
            struct aml body = { .n = 0 };
            name_string_obj(&body, "_HID", "ACPI0013");
            crs(&body, &res, i < 4 ? size_encs[i] : BYTE, i < 4 ? 0 : 8);
            method(&body, "_EVT", 0x09, &evt, 0);
            a.n = 0;
            pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
            device(&a, "\\_SB_.GED_", &body, 0);
            EXPECT(ok6(find1(&a, a.n, &pb), &pb));
        }
        for (int delta = -1; delta >= -(int)res.n; delta--) {
            struct aml body = { .n = 0 };
            name_string_obj(&body, "_HID", "ACPI0013");
            crs(&body, &res, SMALLEST, delta);
            method(&body, "_EVT", 0x09, &evt, 0);
            a.n = 0;
            pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
            device(&a, "\\_SB_.GED_", &body, 0);
            enum acpi_pwrb_status s = find1(&a, a.n, &pb);
            /* 2 bytes short: only the End Tag is cut, both GSIs are in */
            EXPECT(delta >= -2 ? ok6(s, &pb) : s == ACPI_PWRB_NO_GSIS);
        }
    }

    /* NameString forms of the Notify target, and of the devices' names. */
    {
        static const char *targets[] = { "PWRB", "\\PWRB", "^PWRB", "^^PWRB", "_SB_.PWRB", "\\_SB_.PWRB",
                                          "\\_SB_.PCI0.PWRB", "\\_SB_.PCI0.ISA_.PWRB" };
        for (unsigned i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
            struct branch br = PWRB6;
            br.target = targets[i];
            skiff_layout(&a, &br);
            EXPECT(ok6(find1(&a, a.n, &pb), &pb));
        }
        static const char *wrong[] = { "PWRC", "\\_SB_.PWR_", "\\PWRB._STA" };
        for (unsigned i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
            struct branch br = PWRB6;
            br.target = wrong[i];
            skiff_layout(&a, &br);
            EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_NOTIFY);
        }
        /* A NameSeg with an invalid character is no NameString. */
        skiff_layout(&a, &PWRB6);
        uint8_t *p = NULL;
        for (uint32_t i = 0; !p && i + 11 <= a.n; i++)
            if (memcmp(a.b + i, "\x86\\\x2e_SB_PWRB", 11) == 0)
                p = a.b + i;
        EXPECT(p != NULL);
        if (p) {
            p[3] = 'a'; /* "_SB_" -> "aSB_" */
            EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_NOTIFY);
        }
        /* Devices inside Scope(\_SB_) with NameSeg names; the button named PBTN. */
        static const uint32_t gsis[] = { 5, 6 };
        struct aml res = { .n = 0 }, evt = { .n = 0 }, scope = { .n = 0 };
        ext_irq(&res, gsis, 2);
        end_tag(&res);
        struct branch br = PWRB6;
        br.target = "PBTN";
        if_notify(&evt, &br);
        put(&scope, "\\_SB_", 5);
        pwrb_device(&scope, "PBTN", DWORD, ACPI_EISA_PNP0C0C);
        ged_device(&scope, "GED_", &res, &evt);
        a.n = 0;
        package(&a, 0x10, &scope, 2);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_OK && pb.gsi == 6 && streq(pb.button, "PBTN"));
    }

    /* PkgLengths of 1-4 bytes for the If. */
    for (int pl = 1; pl <= 4; pl++) {
        struct branch br = PWRB6;
        br.plsize = pl;
        skiff_layout(&a, &br);
        EXPECT(ok6(find1(&a, a.n, &pb), &pb));
    }

    /* The _EVT without the power-button branch; a GSI not in _CRS. */
    skiff_layout(&a, NULL);
    EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_NOTIFY && streq(pb.button, "PWRB") && pb.ged.gsi_count == 2);
    {
        struct branch br = PWRB6;
        br.gsi = 7;
        skiff_layout(&a, &br);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_GSI_NOT_IN_CRS && pb.gsi == 7);
    }

    /* Nested Ifs and Else: the GSI is the innermost If on Arg0 around the Notify. */
    {
        static const uint32_t gsis[] = { 5, 6 };
        struct aml res = { .n = 0 }, evt = { .n = 0 }, outer = { .n = 0 }, inner = { .n = 0 };
        ext_irq(&res, gsis, 2);
        end_tag(&res);
        /* If (LEqual (Arg0, 5)) { Notify (VGEN, 0x80); If (LEqual (Arg0, 6)) { Notify (PWRB, 0x80) } } */
        put(&outer, "\x93\x68\x0a\x05", 4);
        put8(&outer, 0x86);
        name_path(&outer, "\\_SB_.VGEN");
        put(&outer, "\x0a\x80", 2);
        if_notify(&outer, &PWRB6);
        package(&evt, 0xa0, &outer, 0);
        a.n = 0;
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        ged_device(&a, "\\_SB_.GED_", &res, &evt);
        EXPECT(ok6(find1(&a, a.n, &pb), &pb));
        /* If (LEqual (Arg0, 5)) { Notify (VGEN, 0x80) } Else { If (LEqual (Arg0, 6)) { Notify (PWRB, 0x80) } } */
        evt.n = 0;
        if_notify(&evt, &VGEN5);
        if_notify(&inner, &PWRB6);
        package(&evt, 0xa1, &inner, 0);
        a.n = 0;
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        ged_device(&a, "\\_SB_.GED_", &res, &evt);
        EXPECT(ok6(find1(&a, a.n, &pb), &pb));
        /* If (LEqual (Local0, 6)) is not on Arg0. */
        evt.n = 0;
        put(&evt, "\xa0\x0c\x93\x60\x0a\x06\x86PWRB\x0a\x80", 13);
        a.n = 0;
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        ged_device(&a, "\\_SB_.GED_", &res, &evt);
        EXPECT(a.b[a.n - 13] == 0xa0 && find1(&a, a.n, &pb) == ACPI_PWRB_NO_NOTIFY);
    }

    /* Missing pieces. */
    {
        static const uint32_t gsis[] = { 5, 6 };
        struct aml res = { .n = 0 }, evt = { .n = 0 };
        ext_irq(&res, gsis, 2);
        end_tag(&res);
        if_notify(&evt, &PWRB6);

        a.n = 0; /* no GED */
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_GED && streq(pb.button, "PWRB"));
        EXPECT(find1(&a, 0, &pb) == ACPI_PWRB_NO_GED);

        a.n = 0; /* "ACPI0013" as _CID, or a different _HID */
        {
            struct aml body = { .n = 0 };
            name_string_obj(&body, "_CID", "ACPI0013");
            crs(&body, &res, SMALLEST, 0);
            method(&body, "_EVT", 0x09, &evt, 0);
            device(&a, "\\_SB_.GED_", &body, 0);
            body.n = 0;
            name_string_obj(&body, "_HID", "ACPI0014");
            crs(&body, &res, SMALLEST, 0);
            method(&body, "_EVT", 0x09, &evt, 0);
            device(&a, "\\_SB_.GED1", &body, 0);
            pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
            EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_GED);
        }

        a.n = 0; /* no _CRS */
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        ged_device(&a, "\\_SB_.GED_", NULL, &evt);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_GSIS);

        a.n = 0; /* a _CRS with only a small IRQ descriptor (IRQNoFlags {6}) */
        {
            struct aml small = { .n = 0 };
            put(&small, "\x22\x40\x00", 3);
            end_tag(&small);
            pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
            ged_device(&a, "\\_SB_.GED_", &small, &evt);
            EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_GSIS);
        }

        a.n = 0; /* no _EVT; a Method(_EVX) */
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        {
            struct aml body = { .n = 0 };
            name_string_obj(&body, "_HID", "ACPI0013");
            crs(&body, &res, SMALLEST, 0);
            method(&body, "_EVX", 0x09, &evt, 0);
            device(&a, "\\_SB_.GED_", &body, 0);
        }
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_EVT && pb.ged.gsi_count == 2);

        a.n = 0; /* no PNP0C0C: none, PNP0C0E (sleep button), _CID instead of _HID */
        pwrb_device(&a, "\\_SB_.SLPB", DWORD, 0x0e0cd041);
        {
            struct aml body = { .n = 0 };
            put(&body, "\x08_CID\x0c\x41\xd0\x0c\x0c", 10);
            device(&a, "\\_SB_.PWRC", &body, 0);
        }
        ged_device(&a, "\\_SB_.GED_", &res, &evt);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_BUTTON && pb.button[0] == 0);

        a.n = 0; /* _HID "PNP0C0C" as a string */
        {
            struct aml body = { .n = 0 };
            name_string_obj(&body, "_HID", "PNP0C0C");
            device(&a, "\\_SB_.PWRB", &body, 0);
        }
        ged_device(&a, "\\_SB_.GED_", &res, &evt);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_OK && pb.gsi == 6);

        /* The EisaId in other integer encodings (QWord; a DWord is the usual one). */
        a.n = 0;
        pwrb_device(&a, "\\_SB_.PWRB", QWORD, ACPI_EISA_PNP0C0C);
        ged_device(&a, "\\_SB_.GED_", &res, &evt);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_OK);
    }

    /* _HID "ACPI0013" only in a device nested in the one with _CRS and _EVT: the nested
     * device is the GED (and has neither); the PNP0C0C _HID in a nested device names that one. */
    {
        static const uint32_t gsis[] = { 5, 6 };
        struct aml res = { .n = 0 }, evt = { .n = 0 }, body = { .n = 0 }, child = { .n = 0 };
        ext_irq(&res, gsis, 2);
        end_tag(&res);
        if_notify(&evt, &PWRB6);
        name_string_obj(&child, "_HID", "ACPI0013");
        crs(&body, &res, SMALLEST, 0);
        device(&body, "CHLD", &child, 0);
        method(&body, "_EVT", 0x09, &evt, 0);
        a.n = 0;
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        device(&a, "\\_SB_.OUTR", &body, 0);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_GSIS);

        struct aml pbody = { .n = 0 }, pchild = { .n = 0 };
        name_int(&pchild, "_HID", DWORD, ACPI_EISA_PNP0C0C);
        device(&pbody, "PWRB", &pchild, 0);
        a.n = 0;
        device(&a, "\\_SB_.OUTR", &pbody, 0);
        ged_device(&a, "\\_SB_.GED_", &res, &evt);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_OK && streq(pb.button, "PWRB"));
    }

    /* The button in one table (DSDT), the GED in another (SSDT), either way round. */
    {
        static const uint32_t gsis[] = { 5, 6 };
        struct aml res = { .n = 0 }, evt = { .n = 0 };
        ext_irq(&res, gsis, 2);
        end_tag(&res);
        if_notify(&evt, &VGEN5);
        if_notify(&evt, &PWRB6);
        a.n = b.n = 0;
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        ged_device(&b, "\\_SB_.GED_", &res, &evt);
        EXPECT(ok6(find2(&a, &b, &pb), &pb));
        EXPECT(ok6(find2(&b, &a, &pb), &pb));
    }

    /* Two GEDs: the first has no power-button branch, the second (GSI 9) has. */
    {
        static const uint32_t g1[] = { 5 }, g2[] = { 9 };
        struct aml r1 = { .n = 0 }, r2 = { .n = 0 }, e1 = { .n = 0 }, e2 = { .n = 0 };
        ext_irq(&r1, g1, 1);
        end_tag(&r1);
        ext_irq(&r2, g2, 1);
        end_tag(&r2);
        if_notify(&e1, &VGEN5);
        struct branch br = PWRB6;
        br.gsi = 9;
        if_notify(&e2, &br);
        a.n = 0;
        ged_device(&a, "\\_SB_.GED0", &r1, &e1);
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        ged_device(&a, "\\_SB_.GED1", &r2, &e2);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_OK && pb.gsi == 9 && pb.ged.gsi_count == 1 && pb.ged.gsis[0] == 9);
        uint32_t pos = 0, n = 0;
        struct acpi_ged g;
        const uint8_t *at = place(0, &a, a.n);
        while (acpi_aml_next_ged(at, a.n, &pos, &g) == 0)
            n++;
        EXPECT(n == 2 && pos == a.n);
        /* Only the first: the status is about it. */
        a.n = 0;
        ged_device(&a, "\\_SB_.GED0", &r1, &e1);
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_NO_NOTIFY && pb.ged.gsis[0] == 5);
    }

    /* Interrupt descriptors: several, a count of 0, a count the length cannot hold, an
     * unknown large item before them, a length past the buffer, more than the maximum. */
    {
        struct aml evt = { .n = 0 };
        if_notify(&evt, &PWRB6);
        static const uint32_t g5[] = { 5 }, g6[] = { 6 }, g7[] = { 7 };
        struct aml res = { .n = 0 };
        put(&res, "\x86\x09\x00\x01\x00\x00\xd0\xfe\x00\x10\x00\x00", 12); /* Memory32Fixed */
        ext_irq(&res, g5, 1);
        put(&res, "\x89\x06\x00\x03\x00\x07\x00\x00\x00", 9); /* count 0 */
        put(&res, "\x89\x06\x00\x03\x02\x07\x00\x00\x00", 9); /* count 2 in a length for 1 */
        ext_irq(&res, g6, 1);
        end_tag(&res);
        ext_irq(&res, g7, 1); /* after the End Tag */
        a.n = 0;
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        ged_device(&a, "\\_SB_.GED_", &res, &evt);
        EXPECT(ok6(find1(&a, a.n, &pb), &pb));

        res.n = 0;
        ext_irq(&res, g5, 1);
        put(&res, "\x89\x40\x00\x03\x01\x06\x00\x00\x00", 9); /* length 64 past the buffer */
        end_tag(&res);
        a.n = 0;
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        ged_device(&a, "\\_SB_.GED_", &res, &evt);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_GSI_NOT_IN_CRS && pb.ged.gsi_count == 1);

        uint32_t many[20];
        for (unsigned i = 0; i < 20; i++)
            many[i] = i + 1;
        res.n = 0;
        ext_irq(&res, many, 20);
        end_tag(&res);
        a.n = 0;
        pwrb_device(&a, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        ged_device(&a, "\\_SB_.GED_", &res, &evt);
        EXPECT(find1(&a, a.n, &pb) == ACPI_PWRB_OK && pb.ged.gsi_count == ACPI_GED_MAX_GSIS && pb.gsi == 6);
    }

    /* Every truncation of the layout: no reads past the end (the guard page), and nothing
     * found until the GED fits again (only the trailing NoopOp can go). Both orders. */
    for (int order = 0; order < 2; order++) {
        skiff_layout(&a, &PWRB6);
        if (order) { /* GED first, then the button */
            struct aml c = { .n = 0 };
            static const uint32_t gsis[] = { 5, 6 };
            struct aml res = { .n = 0 }, evt = { .n = 0 };
            ext_irq(&res, gsis, 2);
            end_tag(&res);
            if_notify(&evt, &VGEN5);
            if_notify(&evt, &PWRB6);
            ged_device(&c, "\\_SB_.GED_", &res, &evt);
            pwrb_device(&c, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
            put8(&c, 0xa3);
            a = c;
        }
        EXPECT(ok6(find1(&a, a.n, &pb), &pb));
        int found = 0;
        for (uint32_t n = 0; n < a.n - 1; n++)
            if (find1(&a, n, &pb) == ACPI_PWRB_OK)
                found++;
        EXPECT(found == 0);
        EXPECT(ok6(find1(&a, a.n - 1, &pb), &pb));
    }
    /* The iasl blob cut anywhere (it ends in the GED). */
    {
        struct aml c = { .n = 0 };
        put(&c, iasl_aml, sizeof(iasl_aml));
        int found = 0;
        for (uint32_t n = 0; n < c.n; n++)
            if (find1(&c, n, &pb) == ACPI_PWRB_OK)
                found++;
        EXPECT(found == 0);
    }
    /* The pieces on their own, cut anywhere: an _EVT body cut inside the Notify. */
    {
        struct aml evt = { .n = 0 };
        if_notify(&evt, &PWRB6);
        for (uint32_t n = 0; n <= evt.n; n++) {
            struct acpi_ged g = { .gsi_count = 0 };
            g.evt = place(0, &evt, n);
            g.evt_len = n;
            uint32_t gsi = 0;
            int r = acpi_ged_notify_gsi(&g, "PWRB", 0x80, &gsi);
            EXPECT(n == evt.n ? r == 0 && gsi == 6 : r == -1);
        }
        struct acpi_ged none = { .evt = NULL };
        uint32_t gsi;
        EXPECT(acpi_ged_notify_gsi(&none, "PWRB", 0x80, &gsi) == -1);
        struct aml dev = { .n = 0 };
        pwrb_device(&dev, "\\_SB_.PWRB", DWORD, ACPI_EISA_PNP0C0C);
        char name[5];
        for (uint32_t n = 0; n <= dev.n; n++) {
            const uint8_t *at = place(0, &dev, n);
            int r = acpi_aml_find_power_button(at, n, name);
            EXPECT(n == dev.n ? r == 0 && streq(name, "PWRB") : r == -1);
        }
    }

    /* Packages that fit but end inside an object, at the very end of the blob: each
     * object's own bounds check is what stops the read. The PkgLength byte that should
     * reach the end (the If's, the device's) is written as 0 and set here. */
    {
#define LIT(s) { s, sizeof(s) - 1 }
        static const struct { const char *bytes; uint32_t n; } evts[] = {
            LIT("\xa0\x00\x93"),                            /* LEqualOp, then nothing */
            LIT("\xa0\x00\x93\x0a\x06"),                    /* LEqual (6, <nothing>) */
            LIT("\xa0\x00\x93\x68\x0c"),                    /* LEqual's DWord */
            LIT("\xa0\x00\x93\x0c\x06"),                    /* swapped: the DWord first */
            LIT("\xa0\x00\x93\x68\x0a\x06"),                /* no Notify at all */
            LIT("\xa0\x00\x93\x68\x0a\x06\x86PWRB\x0c"),    /* Notify value's DWord */
            LIT("\xa0\x00\x93\x68\x0a\x06\x86\x2ePWRB"),    /* DualNamePrefix, one NameSeg */
            LIT("\xa0\x00\x93\x68\x0a\x06\x86\x2f\x03PWRB"), /* MultiNamePrefix 3, one NameSeg */
            LIT("\xa0\x00\x93\x68\x0a\x06\x86\x2f"),        /* MultiNamePrefix, no count */
            LIT("\xa0\x00\x93\x68\x0a\x06\x86\x5c"),        /* root prefix, then nothing */
            LIT("\xa0\x00\x93\x68\x0a\x06\x86^^^^"),        /* parent prefixes only */
        };
        for (unsigned i = 0; i < sizeof(evts) / sizeof(evts[0]); i++) {
            struct aml e = { .n = 0 };
            put(&e, evts[i].bytes, evts[i].n);
            e.b[1] = (uint8_t)(e.n - 1);
            struct acpi_ged g = { .gsi_count = 0 };
            g.evt = place(0, &e, e.n);
            g.evt_len = e.n;
            uint32_t gsi;
            EXPECT(acpi_ged_notify_gsi(&g, "PWRB", 0x80, &gsi) == -1);
        }
        /* Device (PWRB) { Name (_HID, <DWordPrefix and 2 bytes | "PNP0C0C" without its NUL>) } */
        static const struct { const char *bytes; uint32_t n; } buttons[] = {
            LIT("\x5b\x82\x00" "PWRB" "\x08_HID\x0c\x41\xd0"),
            LIT("\x5b\x82\x00" "PWRB" "\x08_HID\x0d" "PNP0C0C"),
            LIT("\x5b\x82\x00" "PWRB" "\x08_HID"),
            LIT("\x5b\x82\x00" "PWRB" "\x08_HI"),
        };
        /* A GED ending after Name(_CRS's NameSeg (or in it), inside Name(_CRS, Buffer
         * (WordPrefix and 1 byte)), inside a
         * descriptor header (1, 2 bytes), with a descriptor length past the end, inside
         * Method(_EVT)'s name, before its MethodFlags. */
        static const struct { const char *bytes; uint32_t n; } geds[] = {
            LIT("\x5b\x82\x00" "GED_" "\x08_HID\x0d" "ACPI0013\x00" "\x08_CRS"),
            LIT("\x5b\x82\x00" "GED_" "\x08_HID\x0d" "ACPI0013\x00" "\x08_CR"),
            LIT("\x5b\x82\x00" "GED_" "\x08_HID\x0d" "ACPI0013\x00" "\x08_CRS\x11\x03\x0b\x10"),
            LIT("\x5b\x82\x00" "GED_" "\x08_HID\x0d" "ACPI0013\x00" "\x08_CRS\x11\x04\x0a\x10\x89"),
            LIT("\x5b\x82\x00" "GED_" "\x08_HID\x0d" "ACPI0013\x00" "\x08_CRS\x11\x05\x0a\x10\x89\x0a"),
            LIT("\x5b\x82\x00" "GED_" "\x08_HID\x0d" "ACPI0013\x00" "\x08_CRS\x11\x07\x0a\x10\x89\x0a\x00\x03"),
            LIT("\x5b\x82\x00" "GED_" "\x08_HID\x0d" "ACPI0013\x00" "\x14\x05\x2e_EV"),
            LIT("\x5b\x82\x00" "GED_" "\x08_HID\x0d" "ACPI0013\x00" "\x14\x05_EVT"),
        };
#undef LIT
        char name[5];
        for (unsigned i = 0; i < sizeof(buttons) / sizeof(buttons[0]); i++) {
            struct aml e = { .n = 0 };
            put(&e, buttons[i].bytes, buttons[i].n);
            e.b[2] = (uint8_t)(e.n - 2);
            EXPECT(acpi_aml_find_power_button(place(0, &e, e.n), e.n, name) == -1);
        }
        for (unsigned i = 0; i < sizeof(geds) / sizeof(geds[0]); i++) {
            struct aml e = { .n = 0 };
            put(&e, geds[i].bytes, geds[i].n);
            e.b[2] = (uint8_t)(e.n - 2);
            uint32_t pos = 0;
            struct acpi_ged g;
            int r = acpi_aml_next_ged(place(0, &e, e.n), e.n, &pos, &g);
            EXPECT(r == 0 && g.gsi_count == 0 && g.evt == NULL);
            if (r != 0)
                fprintf(stderr, "  cut GED %u: not found (length %u)\n", i, e.n);
        }
    }

    if (failures) {
        fprintf(stderr, "ged host test: %d failure(s)\n", failures);
        return 1;
    }
    printf("ged host test: all checks passed\n");
    return 0;
}
