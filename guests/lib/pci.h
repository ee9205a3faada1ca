/* PCI through configuration mechanism #1 (ports 0xCF8/0xCFC): config reads and writes of
 * 8, 16 and 32 bits, enumeration of bus 0, BARs, the command register, capabilities and
 * MSI-X. Everything the guest learns comes from config space: no BAR address is assumed. */
#ifndef KIT_PCI_H
#define KIT_PCI_H

#include <stdint.h>

#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA 0xcfc

#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_CLASS_REVISION 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_IO (1u << 0)
#define PCI_COMMAND_MEMORY (1u << 1)
#define PCI_COMMAND_MASTER (1u << 2)
#define PCI_COMMAND_INTX_DISABLE (1u << 10)
#define PCI_STATUS_CAP_LIST (1u << 4)

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VENDOR 0x09

/* One function on bus 0. */
struct pci_dev {
    uint8_t bus, slot, func;
    uint16_t vendor, device;
};

uint32_t pci_read32(const struct pci_dev *d, uint16_t offset);
uint16_t pci_read16(const struct pci_dev *d, uint16_t offset);
uint8_t pci_read8(const struct pci_dev *d, uint16_t offset);
void pci_write32(const struct pci_dev *d, uint16_t offset, uint32_t value);
void pci_write16(const struct pci_dev *d, uint16_t offset, uint16_t value);
void pci_write8(const struct pci_dev *d, uint16_t offset, uint8_t value);

/* Calls fn for every function present on bus 0 (vendor != 0xffff), multi-function devices
 * included; stops early and returns fn's value if it is non-zero. Returns 0 otherwise. */
int pci_enumerate(int (*fn)(const struct pci_dev *d, void *ctx), void *ctx);
/* Finds the `index`-th (0-based) function with this vendor and device ID. 0 on success. */
int pci_find(uint16_t vendor, uint16_t device, unsigned index, struct pci_dev *out);

/* A decoded BAR. `address` is 0 for an unimplemented BAR. */
struct pci_bar {
    uint64_t address;
    uint64_t size;   /* from the all-ones probe; 0 if unimplemented */
    int is_io;
    int is_64bit;
};
/* Reads BAR `index` (0-5); a 64-bit BAR takes `index` and `index + 1`. Sizing briefly
 * disables decoding (the command register is restored). Returns 0, or -1 for a bad index
 * or the upper half of a 64-bit BAR. */
int pci_read_bar(const struct pci_dev *d, unsigned index, struct pci_bar *out);
/* Sets bits in the command register (e.g. PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER) and
 * returns the value read back. */
uint16_t pci_enable(const struct pci_dev *d, uint16_t bits);

/* Capability list walk: the first capability's offset (0 if none), the next one after
 * `pos` (0 at the end). The walk is bounded (48 entries) so a looping list ends. */
uint8_t pci_cap_first(const struct pci_dev *d);
uint8_t pci_cap_next(const struct pci_dev *d, uint8_t pos);
/* Offset of the first capability with `id` at or after `start` (0 = from the beginning), or 0. */
uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t start);

/* MSI-X (PCI 3.0 §6.8.2): the table lives in a memory BAR. */
struct pci_msix {
    uint8_t cap;                 /* capability offset */
    uint16_t table_size;         /* number of vectors */
    volatile uint32_t *table;    /* 16 bytes per entry: addr lo, addr hi, data, control */
    volatile uint32_t *pba;
};
/* Locates the table and PBA (the BAR must already hold an address). 0 on success. */
int pci_msix_init(const struct pci_dev *d, struct pci_msix *m);
/* Programs entry `entry` to deliver `vector` to the LAPIC with ID `apic_id` (fixed,
 * edge, physical destination) and unmasks it. 0 on success, -1 if out of range. */
int pci_msix_set(struct pci_msix *m, unsigned entry, uint8_t apic_id, uint8_t vector);
/* Sets or clears MSI-X enable (message control bit 15); clears the function mask. */
void pci_msix_enable(const struct pci_dev *d, const struct pci_msix *m, int on);

#endif
