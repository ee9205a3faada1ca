/* Host-side unit test of the VM Generation ID search in lib/acpi.c
 * (acpi_aml_find_vmgenid, acpi_aml_find_name_dword) on hand-assembled AML: a
 * Firecracker-style device in Scope(\_SB), every integer encoding of the two ADDR
 * elements, PkgLength encodings of 1 to 4 bytes (package and device), _HID instead of _CID,
 * a device without ADDR, ADDR only in a nested device, a Method ADDR (QEMU's form, with its
 * VGIA DWord), malformed packages, and every truncation of a valid blob. Each blob is
 * placed at the very end of a page followed by an inaccessible page, so a read past its
 * length crashes the test. Built and run natively by `make test-host`. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "acpi.h"

static int failures;
#define EXPECT(cond)                                                                       \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

struct aml {
    uint8_t b[2048];
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

static void put8(struct aml *a, uint8_t v) { put(a, &v, 1); }

/* PkgLength of `size` bytes (1-4) for `content` bytes following it. */
static void pkg_length(struct aml *a, uint32_t content, int size)
{
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

/* Name(seg, "string") */
static void name_string(struct aml *a, const char *seg, const char *s)
{
    put8(a, 0x08);
    put(a, seg, 4);
    put8(a, 0x0d);
    put(a, s, (uint32_t)strlen(s) + 1);
}

/* Integer encodings for the package elements. */
enum enc { ZERO, ONE, ONES, BYTE, WORD, DWORD, QWORD };
static void integer(struct aml *a, enum enc e, uint64_t v)
{
    switch (e) {
    case ZERO: put8(a, 0x00); break;
    case ONE: put8(a, 0x01); break;
    case ONES: put8(a, 0xff); break;
    case BYTE: put8(a, 0x0a); put8(a, (uint8_t)v); break;
    case WORD: put8(a, 0x0b); put(a, &v, 2); break;
    case DWORD: put8(a, 0x0c); put(a, &v, 4); break;
    case QWORD: put8(a, 0x0e); put(a, &v, 8); break;
    }
}

/* Name(ADDR, Package(2){lo, hi}) with a PkgLength of `plsize` bytes. */
static void addr_package(struct aml *a, enum enc le, uint64_t lo, enum enc he, uint64_t hi, int plsize)
{
    struct aml elems = { .n = 0 };
    put8(&elems, 0x02); /* NumElements */
    integer(&elems, le, lo);
    integer(&elems, he, hi);
    put8(a, 0x08);
    put(a, "ADDR", 4);
    put8(a, 0x12);
    pkg_length(a, elems.n, plsize);
    put(a, elems.b, elems.n);
}

/* Device(name){body} with a PkgLength of `plsize` bytes. */
static void device(struct aml *a, const char *name, const struct aml *body, int plsize)
{
    put8(a, 0x5b);
    put8(a, 0x82);
    pkg_length(a, 4 + body->n, plsize);
    put(a, name, 4);
    put(a, body->b, body->n);
}

/* Scope(\_SB_){inner} after a little unrelated AML, then a trailing NoopOp. */
static void wrap(struct aml *out, const struct aml *inner)
{
    out->n = 0;
    static const uint8_t prelude[] = { 0x08, 'P', 'I', 'C', 'M', 0x00,            /* Name(PICM, Zero) */
                                       0x08, 'V', 'E', 'R', '_', 0x0a, 0x82 };   /* Name(VER_, 0x82) */
    put(out, prelude, sizeof(prelude));
    put8(out, 0x10); /* ScopeOp */
    pkg_length(out, 5 + inner->n, 2);
    put(out, "\\_SB_", 5);
    put(out, inner->b, inner->n);
    put8(out, 0xa3);
}

static uint8_t *guarded;       /* two pages: read-write, then PROT_NONE */
static long page_size;

/* Runs the search on a copy of `a` (first `len` bytes) that ends right at the guard page. */
static int find(const struct aml *a, uint32_t len, uint64_t *addr)
{
    uint8_t *at = guarded + page_size - len;
    memcpy(at, a->b, len);
    return acpi_aml_find_vmgenid(at, len, addr);
}

/* The usual device: _HID, _CID "VM_GEN_COUNTER", _DDN, then ADDR. */
static void fc_device(struct aml *out, enum enc le, uint64_t lo, enum enc he, uint64_t hi, int addr_pl, int dev_pl)
{
    struct aml body = { .n = 0 }, scope = { .n = 0 };
    name_string(&body, "_HID", "SKFVMGID");
    name_string(&body, "_CID", "VM_GEN_COUNTER");
    name_string(&body, "_DDN", "VM_GEN_COUNTER");
    addr_package(&body, le, lo, he, hi, addr_pl);
    device(&scope, "VGEN", &body, dev_pl);
    wrap(out, &scope);
}

int main(void)
{
    page_size = sysconf(_SC_PAGESIZE);
    guarded = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guarded == MAP_FAILED || mprotect(guarded + page_size, page_size, PROT_NONE) != 0) {
        perror("mmap");
        return 2;
    }
    struct aml a;
    uint64_t addr;

    /* Firecracker-like: DWord low half, Zero high half. */
    fc_device(&a, DWORD, 0x0ffff000, ZERO, 0, 1, 2);
    EXPECT(find(&a, a.n, &addr) == 0 && addr == 0x0ffff000);

    /* Every integer encoding in both positions. */
    static const struct { enum enc e; uint64_t v; uint32_t want; } ints[] = {
        { ZERO, 0, 0 }, { ONE, 1, 1 }, { ONES, 0, 0xffffffffu }, { BYTE, 0xab, 0xab }, { WORD, 0xbeef, 0xbeef },
        { DWORD, 0xdeadb000, 0xdeadb000 }, { QWORD, 0x12345000, 0x12345000 },
    };
    for (unsigned i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        for (unsigned j = 0; j < sizeof(ints) / sizeof(ints[0]); j++) {
            fc_device(&a, ints[i].e, ints[i].v, ints[j].e, ints[j].v, 1, 2);
            addr = 0;
            int r = find(&a, a.n, &addr);
            EXPECT(r == 0 && addr == (((uint64_t)ints[j].want << 32) | ints[i].want));
            if (r != 0 || addr != (((uint64_t)ints[j].want << 32) | ints[i].want))
                fprintf(stderr, "  encodings %u/%u: r %d addr 0x%llx\n", i, j, r, (unsigned long long)addr);
        }
    }

    /* PkgLength of 1-4 bytes for the package and for the device. */
    for (int pl = 1; pl <= 4; pl++) {
        for (int dl = 2; dl <= 4; dl++) {
            fc_device(&a, DWORD, 0x7f000000, BYTE, 0x1, pl, dl);
            EXPECT(find(&a, a.n, &addr) == 0 && addr == 0x17f000000ull);
        }
    }

    /* _HID "VM_GEN_COUNTER" instead of _CID; ADDR before the id. */
    {
        struct aml body = { .n = 0 }, scope = { .n = 0 };
        addr_package(&body, WORD, 0x1000, ZERO, 0, 1);
        name_string(&body, "_HID", "VM_GEN_COUNTER");
        device(&scope, "VGID", &body, 1);
        wrap(&a, &scope);
        EXPECT(find(&a, a.n, &addr) == 0 && addr == 0x1000);
    }

    /* A VM_GEN_COUNTER device without ADDR (and an ADDR in another device). */
    {
        struct aml body = { .n = 0 }, other = { .n = 0 }, scope = { .n = 0 };
        name_string(&body, "_CID", "VM_GEN_COUNTER");
        device(&scope, "VGEN", &body, 1);
        addr_package(&other, DWORD, 0x2000, ZERO, 0, 1);
        device(&scope, "OTHR", &other, 1);
        wrap(&a, &scope);
        EXPECT(find(&a, a.n, &addr) == -2);
    }

    /* ADDR only in a device nested inside the VM_GEN_COUNTER device: not its own. */
    {
        struct aml body = { .n = 0 }, child = { .n = 0 }, scope = { .n = 0 };
        name_string(&body, "_CID", "VM_GEN_COUNTER");
        addr_package(&child, DWORD, 0x3000, ZERO, 0, 1);
        device(&body, "CHLD", &child, 1);
        device(&scope, "VGEN", &body, 2);
        wrap(&a, &scope);
        EXPECT(find(&a, a.n, &addr) == -2);
    }

    /* The VM_GEN_COUNTER device nested in an outer device that has its own ADDR: the inner one wins. */
    {
        struct aml outer = { .n = 0 }, inner = { .n = 0 }, scope = { .n = 0 };
        addr_package(&outer, DWORD, 0x4000, ZERO, 0, 1);
        name_string(&inner, "_CID", "VM_GEN_COUNTER");
        addr_package(&inner, DWORD, 0x5000, ZERO, 0, 1);
        device(&outer, "VGEN", &inner, 1);
        device(&scope, "OUTR", &outer, 2);
        wrap(&a, &scope);
        EXPECT(find(&a, a.n, &addr) == 0 && addr == 0x5000);
    }

    /* No VM_GEN_COUNTER anywhere; the id outside any device. */
    {
        struct aml body = { .n = 0 }, scope = { .n = 0 };
        name_string(&body, "_HID", "ACPI0010");
        addr_package(&body, DWORD, 0x6000, ZERO, 0, 1);
        device(&scope, "OTHR", &body, 1);
        wrap(&a, &scope);
        EXPECT(find(&a, a.n, &addr) == -1);
        body.n = scope.n = 0;
        name_string(&body, "_CID", "VM_GEN_COUNTEX");
        addr_package(&body, DWORD, 0x6000, ZERO, 0, 1);
        device(&scope, "OTHR", &body, 1);
        wrap(&a, &scope);
        EXPECT(find(&a, a.n, &addr) == -1);
        struct aml loose = { .n = 0 };
        name_string(&loose, "_CID", "VM_GEN_COUNTER");
        addr_package(&loose, DWORD, 0x6000, ZERO, 0, 1);
        wrap(&a, &loose);
        EXPECT(find(&a, a.n, &addr) == -1);
    }

    /* QEMU's form: Name(VGIA, DWord) at the top, Method(ADDR) in the device. */
    {
        struct aml body = { .n = 0 }, scope = { .n = 0 }, all = { .n = 0 };
        name_string(&body, "_HID", "QEMUVGID");
        name_string(&body, "_CID", "VM_Gen_Counter"); /* QEMU's spelling */
        static const uint8_t method[] = { 0x14, 0x0a, 'A', 'D', 'D', 'R', 0x00, 0xa4, 0x12, 0x03, 0x02, 0x00, 0x00 };
        put(&body, method, sizeof(method));
        device(&scope, "VGEN", &body, 1);
        static const uint8_t vgia[] = { 0x08, 'V', 'G', 'I', 'A', 0x0c, 0x00, 0xf0, 0xff, 0x0f };
        put(&all, vgia, sizeof(vgia));
        put(&all, scope.b, scope.n);
        wrap(&a, &all);
        EXPECT(find(&a, a.n, &addr) == -2);
        uint32_t v = 0;
        uint8_t *at = guarded + page_size - a.n;
        memcpy(at, a.b, a.n);
        EXPECT(acpi_aml_find_name_dword(at, a.n, "VGIA", &v) == 0 && v == 0x0ffff000);
        EXPECT(acpi_aml_find_name_dword(at, a.n, "NONE", &v) == -1);
        EXPECT(acpi_aml_find_name_dword(at, 9, "PICM", &v) == -1); /* too short */
    }

    /* Malformed packages: three elements, a QWord above 32 bits, a String element, a
     * package shorter than its elements. */
    {
        struct aml body = { .n = 0 }, scope = { .n = 0 };
        name_string(&body, "_CID", "VM_GEN_COUNTER");
        static const uint8_t three[] = { 0x08, 'A', 'D', 'D', 'R', 0x12, 0x05, 0x03, 0x00, 0x00, 0x00 };
        put(&body, three, sizeof(three));
        device(&scope, "VGEN", &body, 1);
        wrap(&a, &scope);
        EXPECT(find(&a, a.n, &addr) == -2);

        fc_device(&a, QWORD, 0x100000000ull, ZERO, 0, 1, 2);
        EXPECT(find(&a, a.n, &addr) == -2);

        body.n = scope.n = 0;
        name_string(&body, "_CID", "VM_GEN_COUNTER");
        static const uint8_t str[] = { 0x08, 'A', 'D', 'D', 'R', 0x12, 0x06, 0x02, 0x0d, 'x', 0x00, 0x00 };
        put(&body, str, sizeof(str));
        device(&scope, "VGEN", &body, 1);
        wrap(&a, &scope);
        EXPECT(find(&a, a.n, &addr) == -2);

        body.n = scope.n = 0;
        name_string(&body, "_CID", "VM_GEN_COUNTER");
        static const uint8_t shortpkg[] = { 0x08, 'A', 'D', 'D', 'R', 0x12, 0x04, 0x02, 0x0c, 0x00, 0x10, 0x00, 0x00, 0x00 };
        put(&body, shortpkg, sizeof(shortpkg)); /* PkgLength 4 ends inside the DWord */
        device(&scope, "VGEN", &body, 1);
        wrap(&a, &scope);
        EXPECT(find(&a, a.n, &addr) == -2);
    }

    /* Every truncation of a valid blob (4-byte PkgLengths, QWord elements): no reads past
     * the end (the guard page), and nothing found, because the device no longer fits
     * (only the trailing NoopOp can go). */
    fc_device(&a, QWORD, 0x0ffff000, QWORD, 0x1, 4, 4);
    EXPECT(find(&a, a.n, &addr) == 0 && addr == 0x10ffff000ull);
    int truncated_found = 0;
    for (uint32_t n = 0; n < a.n - 1; n++)
        if (find(&a, n, &addr) == 0)
            truncated_found++;
    EXPECT(truncated_found == 0);
    EXPECT(find(&a, a.n - 1, &addr) == 0 && addr == 0x10ffff000ull);
    /* The device and package alone, cut anywhere (their PkgLengths then overrun the end). */
    {
        struct aml body = { .n = 0 }, dev = { .n = 0 };
        name_string(&body, "_CID", "VM_GEN_COUNTER");
        addr_package(&body, DWORD, 0x1000, DWORD, 0, 2);
        device(&dev, "VGEN", &body, 2);
        EXPECT(find(&dev, dev.n, &addr) == 0 && addr == 0x1000);
        for (uint32_t n = 0; n < dev.n; n++)
            EXPECT(find(&dev, n, &addr) != 0);
    }

    if (failures) {
        fprintf(stderr, "vmgenid host test: %d failure(s)\n", failures);
        return 1;
    }
    printf("vmgenid host test: all checks passed\n");
    return 0;
}
