#include "pci.h"
#include "io.h"

static uint32_t pci_address(const struct pci_dev *d, uint16_t offset)
{
    return 0x80000000u | ((uint32_t)d->bus << 16) | ((uint32_t)(d->slot & 31) << 11) |
           ((uint32_t)(d->func & 7) << 8) | (offset & 0xfc);
}

uint32_t pci_read32(const struct pci_dev *d, uint16_t offset)
{
    outl(PCI_CONFIG_ADDRESS, pci_address(d, offset));
    return inl(PCI_CONFIG_DATA);
}

uint16_t pci_read16(const struct pci_dev *d, uint16_t offset)
{
    outl(PCI_CONFIG_ADDRESS, pci_address(d, offset));
    return inw(PCI_CONFIG_DATA + (offset & 2));
}

uint8_t pci_read8(const struct pci_dev *d, uint16_t offset)
{
    outl(PCI_CONFIG_ADDRESS, pci_address(d, offset));
    return inb(PCI_CONFIG_DATA + (offset & 3));
}

void pci_write32(const struct pci_dev *d, uint16_t offset, uint32_t value)
{
    outl(PCI_CONFIG_ADDRESS, pci_address(d, offset));
    outl(PCI_CONFIG_DATA, value);
}

void pci_write16(const struct pci_dev *d, uint16_t offset, uint16_t value)
{
    outl(PCI_CONFIG_ADDRESS, pci_address(d, offset));
    outw(PCI_CONFIG_DATA + (offset & 2), value);
}

void pci_write8(const struct pci_dev *d, uint16_t offset, uint8_t value)
{
    outl(PCI_CONFIG_ADDRESS, pci_address(d, offset));
    outb(PCI_CONFIG_DATA + (offset & 3), value);
}

int pci_enumerate(int (*fn)(const struct pci_dev *d, void *ctx), void *ctx)
{
    for (uint8_t slot = 0; slot < 32; slot++) {
        struct pci_dev d = { 0, slot, 0, 0, 0 };
        uint32_t id = pci_read32(&d, PCI_VENDOR_ID);
        if ((id & 0xffff) == 0xffff)
            continue;
        uint8_t functions = (pci_read8(&d, PCI_HEADER_TYPE) & 0x80) ? 8 : 1;
        for (uint8_t func = 0; func < functions; func++) {
            d.func = func;
            id = pci_read32(&d, PCI_VENDOR_ID);
            if ((id & 0xffff) == 0xffff)
                continue;
            d.vendor = (uint16_t)id;
            d.device = (uint16_t)(id >> 16);
            int r = fn(&d, ctx);
            if (r)
                return r;
        }
    }
    return 0;
}

struct find_ctx {
    uint16_t vendor, device;
    unsigned index;
    struct pci_dev *out;
};

static int find_one(const struct pci_dev *d, void *p)
{
    struct find_ctx *c = p;
    if (d->vendor != c->vendor || d->device != c->device)
        return 0;
    if (c->index-- > 0)
        return 0;
    *c->out = *d;
    return 1;
}

int pci_find(uint16_t vendor, uint16_t device, unsigned index, struct pci_dev *out)
{
    struct find_ctx c = { vendor, device, index, out };
    return pci_enumerate(find_one, &c) ? 0 : -1;
}

int pci_read_bar(const struct pci_dev *d, unsigned index, struct pci_bar *out)
{
    out->address = out->size = 0;
    out->is_io = out->is_64bit = 0;
    if (index > 5)
        return -1;
    uint16_t off = (uint16_t)(PCI_BAR0 + 4 * index);
    uint32_t lo = pci_read32(d, off);
    uint16_t cmd = pci_read16(d, PCI_COMMAND);
    pci_write16(d, PCI_COMMAND, cmd & (uint16_t)~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
    pci_write32(d, off, 0xffffffffu);
    uint32_t probe = pci_read32(d, off);
    pci_write32(d, off, lo);
    if (lo & 1) {
        out->is_io = 1;
        out->address = lo & ~3u;
        uint32_t mask = probe & ~3u & 0xffff;
        out->size = mask ? (uint64_t)((~mask & 0xffff) + 1) : 0;
    } else {
        uint64_t mask = probe & ~0xfu;
        out->address = lo & ~0xfu;
        if (((lo >> 1) & 3) == 2) {
            if (index == 5) {
                pci_write16(d, PCI_COMMAND, cmd);
                return -1;
            }
            out->is_64bit = 1;
            uint16_t hoff = (uint16_t)(off + 4);
            uint32_t hi = pci_read32(d, hoff);
            pci_write32(d, hoff, 0xffffffffu);
            uint32_t hprobe = pci_read32(d, hoff);
            pci_write32(d, hoff, hi);
            out->address |= (uint64_t)hi << 32;
            mask |= (uint64_t)hprobe << 32;
        } else if (mask) {
            mask |= 0xffffffff00000000ull;
        }
        out->size = mask ? (~mask + 1) : 0;
    }
    pci_write16(d, PCI_COMMAND, cmd);
    if (out->size == 0)
        out->address = 0;
    return 0;
}

uint16_t pci_enable(const struct pci_dev *d, uint16_t bits)
{
    pci_write16(d, PCI_COMMAND, pci_read16(d, PCI_COMMAND) | bits);
    return pci_read16(d, PCI_COMMAND);
}

#define PCI_CAP_WALK_LIMIT 48

uint8_t pci_cap_first(const struct pci_dev *d)
{
    if (!(pci_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST))
        return 0;
    uint8_t pos = pci_read8(d, PCI_CAPABILITY_LIST) & 0xfc;
    return pos >= 0x40 ? pos : 0;
}

uint8_t pci_cap_next(const struct pci_dev *d, uint8_t pos)
{
    uint8_t next = pci_read8(d, (uint16_t)(pos + 1)) & 0xfc;
    return next >= 0x40 ? next : 0;
}

uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t start)
{
    uint8_t pos = start ? pci_cap_next(d, start) : pci_cap_first(d);
    for (unsigned n = 0; pos && n < PCI_CAP_WALK_LIMIT; n++) {
        if (pci_read8(d, pos) == id)
            return pos;
        pos = pci_cap_next(d, pos);
    }
    return 0;
}

int pci_msix_init(const struct pci_dev *d, struct pci_msix *m)
{
    m->cap = pci_find_cap(d, PCI_CAP_ID_MSIX, 0);
    if (!m->cap)
        return -1;
    uint16_t control = pci_read16(d, (uint16_t)(m->cap + 2));
    m->table_size = (uint16_t)((control & 0x7ff) + 1);
    uint32_t table = pci_read32(d, (uint16_t)(m->cap + 4));
    uint32_t pba = pci_read32(d, (uint16_t)(m->cap + 8));
    struct pci_bar tb, pb;
    if (pci_read_bar(d, table & 7, &tb) || pci_read_bar(d, pba & 7, &pb))
        return -1;
    if (tb.is_io || !tb.address || tb.address >= (1ull << 32) || pb.is_io || !pb.address || pb.address >= (1ull << 32))
        return -1;
    uint64_t toff = table & ~7u, poff = pba & ~7u;
    if (toff + 16ull * m->table_size > tb.size || poff + 8 > pb.size)
        return -1;
    m->table = (volatile uint32_t *)(uintptr_t)(tb.address + toff);
    m->pba = (volatile uint32_t *)(uintptr_t)(pb.address + poff);
    return 0;
}

int pci_msix_set(struct pci_msix *m, unsigned entry, uint8_t apic_id, uint8_t vector)
{
    if (entry >= m->table_size)
        return -1;
    volatile uint32_t *e = m->table + 4 * entry;
    e[3] = 1; /* masked while it changes */
    e[0] = 0xfee00000u | ((uint32_t)apic_id << 12);
    e[1] = 0;
    e[2] = vector; /* fixed delivery, edge */
    e[3] = 0;
    return 0;
}

void pci_msix_enable(const struct pci_dev *d, const struct pci_msix *m, int on)
{
    uint16_t off = (uint16_t)(m->cap + 2);
    uint16_t control = pci_read16(d, off) & (uint16_t)~(3u << 14);
    if (on)
        control |= 1u << 15;
    pci_write16(d, off, control);
}
