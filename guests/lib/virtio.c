#include "virtio.h"
#include "io.h"
#include "string.h"

#define TSC_PER_MS (TSC_PER_SECOND_GUESS / 1000)

static inline uint8_t r8(uintptr_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t r16(uintptr_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t r32(uintptr_t a) { return *(volatile uint32_t *)a; }
static inline void w8(uintptr_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void w16(uintptr_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void w32(uintptr_t a, uint32_t v) { *(volatile uint32_t *)a = v; }

/* ---- discovery ------------------------------------------------------------------- */

/* Maps one vendor capability to an address inside its BAR. 0 on success. */
static int map_cap(const struct pci_dev *d, uint8_t pos, uintptr_t *addr, uint32_t *len)
{
    uint8_t bar_index = pci_read8(d, (uint16_t)(pos + 4));
    uint32_t offset = pci_read32(d, (uint16_t)(pos + 8));
    uint32_t length = pci_read32(d, (uint16_t)(pos + 12));
    struct pci_bar bar;
    if (bar_index > 5 || pci_read_bar(d, bar_index, &bar) != 0)
        return -2;
    if (bar.is_io || bar.address == 0 || bar.address + bar.size > (1ull << 32))
        return -2;
    if ((uint64_t)offset + length > bar.size)
        return -3;
    *addr = (uintptr_t)(bar.address + offset);
    *len = length;
    return 0;
}

int virtio_find(uint16_t type, unsigned index, struct virtio_dev *dev)
{
    memset(dev, 0, sizeof(*dev));
    if (pci_find(VIRTIO_PCI_VENDOR, (uint16_t)VIRTIO_PCI_DEVICE(type), index, &dev->pci) != 0)
        return -1;
    const struct pci_dev *d = &dev->pci;
    int have_common = 0, have_notify = 0, have_isr = 0, have_device = 0;
    for (uint8_t pos = pci_find_cap(d, PCI_CAP_ID_VENDOR, 0); pos; pos = pci_find_cap(d, PCI_CAP_ID_VENDOR, pos)) {
        uint8_t cap_len = pci_read8(d, (uint16_t)(pos + 2));
        uint8_t cfg_type = pci_read8(d, (uint16_t)(pos + 3));
        uint32_t len = 0;
        int r;
        /* The first capability of each type wins (§4.1.4). */
        switch (cfg_type) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            if (have_common)
                break;
            if ((r = map_cap(d, pos, &dev->common, &len)) != 0)
                return r;
            if (len < VIRTIO_COMMON_MIN_LENGTH)
                return -3;
            dev->common_len = len;
            have_common = 1;
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            if (have_notify || cap_len < 20)
                break;
            if ((r = map_cap(d, pos, &dev->notify_base, &dev->notify_len)) != 0)
                return r;
            dev->notify_mult = pci_read32(d, (uint16_t)(pos + 16));
            have_notify = 1;
            break;
        case VIRTIO_PCI_CAP_ISR_CFG:
            if (have_isr)
                break;
            if ((r = map_cap(d, pos, &dev->isr, &len)) != 0)
                return r;
            if (len < 1)
                return -3;
            have_isr = 1;
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            if (have_device)
                break;
            if ((r = map_cap(d, pos, &dev->device, &dev->device_len)) != 0)
                return r;
            have_device = 1;
            break;
        default:
            break;
        }
    }
    if (!have_common || !have_notify || !have_isr)
        return -2;
    pci_enable(d, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    return 0;
}

const char *virtio_find_error(int code)
{
    switch (code) {
    case 0: return "ok";
    case -1: return "no such device on bus 0";
    case -2: return "a virtio structure is missing or not in a 32-bit memory BAR";
    case -3: return "a virtio structure lies outside its BAR";
    default: return "unknown error";
    }
}

/* ---- status and features ---------------------------------------------------------- */

uint8_t virtio_get_status(const struct virtio_dev *dev) { return r8(dev->common + VIRTIO_COMMON_STATUS); }

void virtio_add_status(const struct virtio_dev *dev, uint8_t bits)
{
    w8(dev->common + VIRTIO_COMMON_STATUS, (uint8_t)(virtio_get_status(dev) | bits));
}

int virtio_wait_status(const struct virtio_dev *dev, uint8_t bits, uint32_t timeout_ms)
{
    uint64_t start = rdtsc();
    for (;;) {
        uint8_t s = virtio_get_status(dev);
        if (s & bits)
            return s;
        if (rdtsc() - start > (uint64_t)timeout_ms * TSC_PER_MS)
            return -1;
        cpu_pause();
    }
}

int virtio_reset(const struct virtio_dev *dev)
{
    w8(dev->common + VIRTIO_COMMON_STATUS, 0);
    uint64_t start = rdtsc();
    while (virtio_get_status(dev) != 0) {
        if (rdtsc() - start > 1000 * TSC_PER_MS)
            return -1;
        cpu_pause();
    }
    return 0;
}

uint64_t virtio_device_features(const struct virtio_dev *dev)
{
    w32(dev->common + VIRTIO_COMMON_DFSELECT, 0);
    uint64_t lo = r32(dev->common + VIRTIO_COMMON_DF);
    w32(dev->common + VIRTIO_COMMON_DFSELECT, 1);
    uint64_t hi = r32(dev->common + VIRTIO_COMMON_DF);
    return lo | (hi << 32);
}

int virtio_init(struct virtio_dev *dev, uint64_t wanted)
{
    if (virtio_reset(dev) != 0)
        return -3;
    virtio_add_status(dev, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_add_status(dev, VIRTIO_STATUS_DRIVER);
    dev->offered = virtio_device_features(dev);
    if (!(dev->offered & VIRTIO_F_VERSION_1) || !(wanted & VIRTIO_F_VERSION_1)) {
        virtio_add_status(dev, VIRTIO_STATUS_FAILED);
        return -1;
    }
    dev->features = dev->offered & wanted;
    w32(dev->common + VIRTIO_COMMON_GFSELECT, 0);
    w32(dev->common + VIRTIO_COMMON_GF, (uint32_t)dev->features);
    w32(dev->common + VIRTIO_COMMON_GFSELECT, 1);
    w32(dev->common + VIRTIO_COMMON_GF, (uint32_t)(dev->features >> 32));
    virtio_add_status(dev, VIRTIO_STATUS_FEATURES_OK);
    if (!(virtio_get_status(dev) & VIRTIO_STATUS_FEATURES_OK)) {
        virtio_add_status(dev, VIRTIO_STATUS_FAILED);
        return -2;
    }
    return 0;
}

void virtio_driver_ok(const struct virtio_dev *dev) { virtio_add_status(dev, VIRTIO_STATUS_DRIVER_OK); }

uint16_t virtio_num_queues(const struct virtio_dev *dev) { return r16(dev->common + VIRTIO_COMMON_NUMQ); }

uint8_t virtio_read_isr(const struct virtio_dev *dev) { return r8(dev->isr); }

/* ---- device configuration --------------------------------------------------------- */

static int cfg_in_range(const struct virtio_dev *dev, uint32_t offset, uint32_t size)
{
    return dev->device && (uint64_t)offset + size <= dev->device_len;
}

uint8_t virtio_cfg_read8(const struct virtio_dev *dev, uint32_t offset)
{
    return cfg_in_range(dev, offset, 1) ? r8(dev->device + offset) : 0;
}

uint16_t virtio_cfg_read16(const struct virtio_dev *dev, uint32_t offset)
{
    return cfg_in_range(dev, offset, 2) ? r16(dev->device + offset) : 0;
}

uint32_t virtio_cfg_read32(const struct virtio_dev *dev, uint32_t offset)
{
    return cfg_in_range(dev, offset, 4) ? r32(dev->device + offset) : 0;
}

uint64_t virtio_cfg_read64(const struct virtio_dev *dev, uint32_t offset)
{
    if (!cfg_in_range(dev, offset, 8))
        return 0;
    for (unsigned tries = 0; tries < 100; tries++) {
        uint8_t g0 = r8(dev->common + VIRTIO_COMMON_CFGGEN);
        uint64_t lo = r32(dev->device + offset);
        uint64_t hi = r32(dev->device + offset + 4);
        if (r8(dev->common + VIRTIO_COMMON_CFGGEN) == g0)
            return lo | (hi << 32);
    }
    return 0;
}

void virtio_cfg_write8(const struct virtio_dev *dev, uint32_t offset, uint8_t value)
{
    if (cfg_in_range(dev, offset, 1))
        w8(dev->device + offset, value);
}

void virtio_cfg_write32(const struct virtio_dev *dev, uint32_t offset, uint32_t value)
{
    if (cfg_in_range(dev, offset, 4))
        w32(dev->device + offset, value);
}

/* ---- MSI-X -------------------------------------------------------------------------- */

int virtio_msix_setup(struct virtio_dev *dev, uint8_t apic_id, uint8_t first_vector, unsigned count)
{
    if (pci_msix_init(&dev->pci, &dev->msix) != 0)
        return -1;
    if (count > dev->msix.table_size)
        return -2;
    for (unsigned i = 0; i < count; i++)
        pci_msix_set(&dev->msix, i, apic_id, (uint8_t)(first_vector + i));
    pci_msix_enable(&dev->pci, &dev->msix, 1);
    dev->msix_enabled = 1;
    return 0;
}

uint16_t virtio_set_config_vector(const struct virtio_dev *dev, uint16_t entry)
{
    w16(dev->common + VIRTIO_COMMON_MSIX, entry);
    return r16(dev->common + VIRTIO_COMMON_MSIX);
}

/* ---- virtqueues ------------------------------------------------------------------- */

int virtq_setup(struct virtio_dev *dev, struct virtq *q, uint16_t index, uint16_t max_size, uint16_t vector)
{
    uintptr_t c = dev->common;
    w16(c + VIRTIO_COMMON_Q_SELECT, index);
    uint16_t device_size = r16(c + VIRTIO_COMMON_Q_SIZE);
    if (device_size == 0)
        return -1;
    uint16_t limit = device_size;
    if (max_size && max_size < limit)
        limit = max_size;
    if (limit > VIRTQ_MAX_SIZE)
        limit = VIRTQ_MAX_SIZE;
    uint16_t size = 1;
    while ((uint16_t)(size << 1) != 0 && (uint16_t)(size << 1) <= limit)
        size = (uint16_t)(size << 1);

    memset(q, 0, sizeof(*q));
    q->size = size;
    q->index = index;
    q->num_free = size;
    q->event_idx = (dev->features & VIRTIO_F_EVENT_IDX) != 0;
    for (uint16_t i = 0; i < size; i++)
        q->desc[i].next = (uint16_t)(i + 1);

    uint64_t desc = (uint64_t)(uintptr_t)q->desc;
    uint64_t avail = (uint64_t)(uintptr_t)q->avail;
    uint64_t used = (uint64_t)(uintptr_t)q->used_hdr;
    w16(c + VIRTIO_COMMON_Q_SIZE, size);
    w32(c + VIRTIO_COMMON_Q_DESCLO, (uint32_t)desc);
    w32(c + VIRTIO_COMMON_Q_DESCHI, (uint32_t)(desc >> 32));
    w32(c + VIRTIO_COMMON_Q_AVAILLO, (uint32_t)avail);
    w32(c + VIRTIO_COMMON_Q_AVAILHI, (uint32_t)(avail >> 32));
    w32(c + VIRTIO_COMMON_Q_USEDLO, (uint32_t)used);
    w32(c + VIRTIO_COMMON_Q_USEDHI, (uint32_t)(used >> 32));
    w16(c + VIRTIO_COMMON_Q_MSIX, vector);
    q->vector = r16(c + VIRTIO_COMMON_Q_MSIX);
    if (vector != VIRTIO_MSI_NO_VECTOR && q->vector != vector)
        return -2;
    uint64_t notify_off = (uint64_t)r16(c + VIRTIO_COMMON_Q_NOFF) * dev->notify_mult;
    if (notify_off + 2 > dev->notify_len)
        return -3;
    q->notify = dev->notify_base + (uintptr_t)notify_off;
    w16(c + VIRTIO_COMMON_Q_ENABLE, 1);
    if (r16(c + VIRTIO_COMMON_Q_ENABLE) != 1)
        return -4;
    return 0;
}

void virtq_publish(struct virtq *q, uint16_t head)
{
    q->avail[2 + (q->avail_idx % q->size)] = head;
    barrier(); /* x86 keeps stores in order; the compiler must too */
    q->avail_idx++;
    q->avail[1] = q->avail_idx;
}

int virtq_add(struct virtq *q, const struct virtq_buf *bufs, unsigned n)
{
    if (n == 0 || n > q->num_free)
        return -1;
    uint16_t head = q->free_head, i = head;
    for (unsigned k = 0; k < n; k++) {
        struct virtq_desc *d = &q->desc[i];
        d->addr = bufs[k].addr;
        d->len = bufs[k].len;
        d->flags = (uint16_t)((bufs[k].device_writes ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        if (k + 1 < n)
            i = d->next;
    }
    q->free_head = q->desc[i].next;
    q->num_free = (uint16_t)(q->num_free - n);
    q->chain_len[head] = (uint16_t)n;
    virtq_publish(q, head);
    return head;
}

int virtq_add_indirect(struct virtq *q, struct virtq_desc *table, const struct virtq_buf *bufs, unsigned n)
{
    if (n == 0 || q->num_free == 0)
        return -1;
    for (unsigned k = 0; k < n; k++) {
        table[k].addr = bufs[k].addr;
        table[k].len = bufs[k].len;
        table[k].flags = (uint16_t)((bufs[k].device_writes ? VIRTQ_DESC_F_WRITE : 0) | (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        table[k].next = (uint16_t)(k + 1 < n ? k + 1 : 0);
    }
    uint16_t head = q->free_head;
    struct virtq_desc *d = &q->desc[head];
    q->free_head = d->next;
    d->addr = (uint64_t)(uintptr_t)table;
    d->len = (uint32_t)(16 * n);
    d->flags = VIRTQ_DESC_F_INDIRECT;
    q->num_free--;
    q->chain_len[head] = 1;
    virtq_publish(q, head);
    return head;
}

void virtq_notify(struct virtq *q)
{
    virtio_mb();
    q->kicked_idx = q->avail_idx;
    w16(q->notify, q->index);
}

void virtq_kick(struct virtq *q)
{
    virtio_mb();
    if (q->event_idx) {
        uint16_t event = (uint16_t)q->used_ring[2 * q->size];
        uint16_t new_idx = q->avail_idx, old_idx = q->kicked_idx;
        if ((uint16_t)(new_idx - event - 1) >= (uint16_t)(new_idx - old_idx))
            return;
    } else if (q->used_hdr[0] & VIRTQ_USED_F_NO_NOTIFY) {
        return;
    }
    virtq_notify(q);
}

uint16_t virtq_used_idx(const struct virtq *q) { return q->used_hdr[1]; }

int virtq_get_used(struct virtq *q, uint32_t *id, uint32_t *len)
{
    if (q->used_hdr[1] == q->last_used)
        return 0;
    barrier();
    uint16_t slot = (uint16_t)(q->last_used % q->size);
    uint32_t used_id = q->used_ring[2 * slot];
    uint32_t used_len = q->used_ring[2 * slot + 1];
    q->last_used++;
    if (q->event_idx)
        q->avail[2 + q->size] = q->last_used;
    if (id)
        *id = used_id;
    if (len)
        *len = used_len;
    /* Give the chain's descriptors back (only chains virtq_add made are counted). */
    if (used_id < q->size && q->chain_len[used_id]) {
        uint16_t last = (uint16_t)used_id;
        for (uint16_t k = 1; k < q->chain_len[used_id]; k++)
            last = q->desc[last].next;
        q->desc[last].next = q->free_head;
        q->free_head = (uint16_t)used_id;
        q->num_free = (uint16_t)(q->num_free + q->chain_len[used_id]);
        q->chain_len[used_id] = 0;
    }
    return 1;
}

int virtq_wait_used(struct virtq *q, uint32_t *id, uint32_t *len, uint32_t timeout_ms)
{
    uint64_t start = rdtsc();
    while (!virtq_get_used(q, id, len)) {
        /* One more look after the deadline: a VM paused (and resumed) between the ring
         * read and the TSC read must not time out a request the device has completed. */
        if (rdtsc() - start > (uint64_t)timeout_ms * TSC_PER_MS)
            return virtq_get_used(q, id, len) ? 0 : -1;
        cpu_pause();
    }
    return 0;
}
