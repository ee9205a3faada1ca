/* A small virtio 1.x driver core for the modern PCI transport (virtio 1.x §4.1): finds the
 * common, notify, ISR and device configuration structures from the vendor capabilities,
 * runs the status and feature-negotiation sequence, and drives split virtqueues whose
 * rings live in the caller's static `struct virtq`. Polling first: completions are found
 * by reading the used ring with a bounded wait; MSI-X vectors can be bound per queue.
 * Guest addresses are physical (paging off, or the kit's identity map). */
#ifndef KIT_VIRTIO_H
#define KIT_VIRTIO_H

#include <stdint.h>
#include "pci.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE(type) (0x1040 + (type))

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_VSOCK 19

/* Device status bits (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* Transport feature bits (§6). */
#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_EVENT_IDX (1ull << 29)
#define VIRTIO_F_VERSION_1 (1ull << 32)

/* virtio_pci_cap cfg_type (§4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

/* Common configuration layout (§4.1.4.3). */
#define VIRTIO_COMMON_DFSELECT 0x00
#define VIRTIO_COMMON_DF 0x04
#define VIRTIO_COMMON_GFSELECT 0x08
#define VIRTIO_COMMON_GF 0x0c
#define VIRTIO_COMMON_MSIX 0x10
#define VIRTIO_COMMON_NUMQ 0x12
#define VIRTIO_COMMON_STATUS 0x14
#define VIRTIO_COMMON_CFGGEN 0x15
#define VIRTIO_COMMON_Q_SELECT 0x16
#define VIRTIO_COMMON_Q_SIZE 0x18
#define VIRTIO_COMMON_Q_MSIX 0x1a
#define VIRTIO_COMMON_Q_ENABLE 0x1c
#define VIRTIO_COMMON_Q_NOFF 0x1e
#define VIRTIO_COMMON_Q_DESCLO 0x20
#define VIRTIO_COMMON_Q_DESCHI 0x24
#define VIRTIO_COMMON_Q_AVAILLO 0x28
#define VIRTIO_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_COMMON_Q_USEDLO 0x30
#define VIRTIO_COMMON_Q_USEDHI 0x34
#define VIRTIO_COMMON_MIN_LENGTH 0x38

#define VIRTIO_MSI_NO_VECTOR 0xffff

/* Split-ring descriptor flags (§2.7.5). */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

/* Largest queue the kit drives (the device's size is capped to this). */
#define VIRTQ_MAX_SIZE 64

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* A virtqueue with its rings. Declare it static (the rings must not move). The avail ring
 * is `avail[0]` flags, `avail[1]` idx, `avail[2 + i]` ring, `avail[2 + size]` used_event;
 * the used ring is `used_hdr` (flags, idx), `used_ring[i]` (id, len), then avail_event. */
struct virtq {
    struct virtq_desc desc[VIRTQ_MAX_SIZE] __attribute__((aligned(16)));
    volatile uint16_t avail[2 + VIRTQ_MAX_SIZE + 1] __attribute__((aligned(2)));
    volatile uint16_t used_hdr[2] __attribute__((aligned(4)));
    volatile uint32_t used_ring[2 * VIRTQ_MAX_SIZE + 1];
    uint16_t size;        /* what the driver configured */
    uint16_t index;       /* queue number */
    uint16_t free_head;   /* free descriptors are linked through `next` */
    uint16_t num_free;
    uint16_t last_used;   /* next used slot the driver reads */
    uint16_t avail_idx;   /* shadow of avail->idx */
    uint16_t kicked_idx;  /* avail_idx at the last notification (EVENT_IDX) */
    uint16_t vector;      /* MSI-X vector the device accepted, or VIRTIO_MSI_NO_VECTOR */
    int event_idx;
    uintptr_t notify;     /* address of this queue's notify register */
    uint16_t chain_len[VIRTQ_MAX_SIZE];
};

/* One device found on bus 0 and the four structures its capabilities point at. */
struct virtio_dev {
    struct pci_dev pci;
    uintptr_t common, isr, device, notify_base;
    uint32_t common_len, device_len, notify_len;
    uint32_t notify_mult;
    uint64_t offered;      /* device features */
    uint64_t features;     /* negotiated features */
    struct pci_msix msix;
    int msix_enabled;
};

/* A buffer for a chain: guest-physical address, length, and whether the device writes it. */
struct virtq_buf {
    uint64_t addr;
    uint32_t len;
    int device_writes;
};

/* Finds the `index`-th device of virtio `type` (PCI 0x1af4:0x1040+type), enables memory
 * decoding and bus mastering, and maps the structures from its vendor capabilities.
 * Returns 0, or a negative code: -1 no device, -2 a structure is missing or its BAR is
 * not a 32-bit memory BAR, -3 a structure lies outside its BAR. */
int virtio_find(uint16_t type, unsigned index, struct virtio_dev *dev);
/* Human-readable reason for a virtio_find() result. */
const char *virtio_find_error(int code);

uint8_t virtio_get_status(const struct virtio_dev *dev);
/* ORs `bits` into the status register. */
void virtio_add_status(const struct virtio_dev *dev, uint8_t bits);
/* Writes 0 and waits (bounded) until the status reads back 0. 0 on success. */
int virtio_reset(const struct virtio_dev *dev);
/* The 64-bit device feature word. */
uint64_t virtio_device_features(const struct virtio_dev *dev);
/* Reset, ACKNOWLEDGE, DRIVER, then accept `wanted` & offered and set FEATURES_OK.
 * VERSION_1 must be offered and wanted. Returns 0 when FEATURES_OK stuck, -1 if VERSION_1
 * is missing, -2 if the device cleared FEATURES_OK, -3 if the reset did not complete. */
int virtio_init(struct virtio_dev *dev, uint64_t wanted);
/* Sets DRIVER_OK. */
void virtio_driver_ok(const struct virtio_dev *dev);
uint16_t virtio_num_queues(const struct virtio_dev *dev);
/* Reads the ISR byte (clears it on the device). */
uint8_t virtio_read_isr(const struct virtio_dev *dev);

/* Device configuration reads (little-endian fields at `offset`); 0 past the structure.
 * virtio_cfg_read64 retries until config_generation is stable. */
uint8_t virtio_cfg_read8(const struct virtio_dev *dev, uint32_t offset);
uint16_t virtio_cfg_read16(const struct virtio_dev *dev, uint32_t offset);
uint32_t virtio_cfg_read32(const struct virtio_dev *dev, uint32_t offset);
uint64_t virtio_cfg_read64(const struct virtio_dev *dev, uint32_t offset);
void virtio_cfg_write8(const struct virtio_dev *dev, uint32_t offset, uint8_t value);
void virtio_cfg_write32(const struct virtio_dev *dev, uint32_t offset, uint32_t value);

/* Enables MSI-X and routes table entries 0..count-1 to vectors `first_vector + i` on the
 * LAPIC `apic_id`. Call before virtq_setup(). 0 on success. */
int virtio_msix_setup(struct virtio_dev *dev, uint8_t apic_id, uint8_t first_vector, unsigned count);
/* Binds configuration-change interrupts to MSI-X entry `entry` (or VIRTIO_MSI_NO_VECTOR);
 * returns what the device read back. */
uint16_t virtio_set_config_vector(const struct virtio_dev *dev, uint16_t entry);

/* Configures queue `index` (between FEATURES_OK and DRIVER_OK): size = min(device size,
 * max_size, VIRTQ_MAX_SIZE) rounded down to a power of two, rings from `q`, MSI-X entry
 * `vector` (VIRTIO_MSI_NO_VECTOR for none), then queue_enable. Returns 0, -1 if the queue
 * does not exist (size 0), -2 if the device refused the vector, -3 if notify_off is
 * outside the notify structure, -4 if queue_enable did not stick. */
int virtq_setup(struct virtio_dev *dev, struct virtq *q, uint16_t index, uint16_t max_size, uint16_t vector);
/* Puts the chain `bufs[0..n)` (readable buffers first) on the avail ring. Returns the
 * head descriptor index, or -1 when there are not enough free descriptors. */
int virtq_add(struct virtq *q, const struct virtq_buf *bufs, unsigned n);
/* Like virtq_add, but as one INDIRECT descriptor pointing at `table` (n entries, caller's
 * static memory, 16-byte aligned). Needs VIRTIO_F_INDIRECT_DESC. */
int virtq_add_indirect(struct virtq *q, struct virtq_desc *table, const struct virtq_buf *bufs, unsigned n);
/* Publishes a head index on the avail ring (as virtq_add does) without touching descriptors. */
void virtq_publish(struct virtq *q, uint16_t head);
/* Notifies the device (a 16-bit write of the queue index at notify_base +
 * queue_notify_off * multiplier), unless EVENT_IDX says the device does not need it. */
void virtq_kick(struct virtq *q);
/* Notifies unconditionally. */
void virtq_notify(struct virtq *q);
/* Takes one used element if there is one: returns 1 and frees its chain, else 0. */
int virtq_get_used(struct virtq *q, uint32_t *id, uint32_t *len);
/* Waits up to `timeout_ms` (TSC-estimated) for a used element. 0 on success, -1 on timeout.
 * The ring is read once more after the deadline, so a pause of the VM during the wait
 * does not fail a request that completed. */
int virtq_wait_used(struct virtq *q, uint32_t *id, uint32_t *len, uint32_t timeout_ms);
/* used.idx as the device last wrote it. */
uint16_t virtq_used_idx(const struct virtq *q);

/* Waits up to `timeout_ms` until any of `bits` is set in the status register. Returns the
 * status, or -1 on timeout. */
int virtio_wait_status(const struct virtio_dev *dev, uint8_t bits, uint32_t timeout_ms);

/* Full memory barrier (lock-prefixed add: no fence instructions). */
#if defined(__x86_64__)
static inline void virtio_mb(void) { __asm__ volatile("lock; addl $0, (%%rsp)" ::: "memory", "cc"); }
#else
static inline void virtio_mb(void) { __asm__ volatile("lock; addl $0, (%%esp)" ::: "memory", "cc"); }
#endif

#endif
