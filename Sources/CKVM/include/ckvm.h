/* The one place Skiff includes <linux/kvm.h>. Ioctl request numbers are exported as
 * constants (the _IO* macros do not import into Swift), and the anonymous unions of
 * struct kvm_run are reached through small inline accessors. */
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <stdint.h>
#include <stddef.h>

/* --- ioctl request numbers --- */
extern const unsigned long CKVM_GET_API_VERSION;
extern const unsigned long CKVM_CREATE_VM;
extern const unsigned long CKVM_CHECK_EXTENSION;
extern const unsigned long CKVM_GET_VCPU_MMAP_SIZE;
extern const unsigned long CKVM_GET_SUPPORTED_CPUID;
extern const unsigned long CKVM_GET_MSR_INDEX_LIST;
extern const unsigned long CKVM_CREATE_VCPU;
extern const unsigned long CKVM_SET_USER_MEMORY_REGION;
extern const unsigned long CKVM_SET_TSS_ADDR;
extern const unsigned long CKVM_SET_IDENTITY_MAP_ADDR;
extern const unsigned long CKVM_CREATE_IRQCHIP;
extern const unsigned long CKVM_CREATE_PIT2;
extern const unsigned long CKVM_IRQ_LINE;
extern const unsigned long CKVM_IRQFD;
extern const unsigned long CKVM_IOEVENTFD;
extern const unsigned long CKVM_SET_GSI_ROUTING;
extern const unsigned long CKVM_GET_DIRTY_LOG;
extern const unsigned long CKVM_CLEAR_DIRTY_LOG;
extern const unsigned long CKVM_RESET_DIRTY_RINGS;
extern const unsigned long CKVM_GET_XSAVE;
extern const unsigned long CKVM_GET_XSAVE2;
extern const unsigned long CKVM_SET_XSAVE;
extern const unsigned long CKVM_KVMCLOCK_CTRL;
extern const unsigned long CKVM_GET_CLOCK;
extern const unsigned long CKVM_SET_CLOCK;
extern const unsigned long CKVM_RUN;
extern const unsigned long CKVM_GET_REGS;
extern const unsigned long CKVM_SET_REGS;
extern const unsigned long CKVM_GET_SREGS;
extern const unsigned long CKVM_SET_SREGS;
extern const unsigned long CKVM_GET_FPU;
extern const unsigned long CKVM_SET_FPU;
extern const unsigned long CKVM_GET_MSRS;
extern const unsigned long CKVM_SET_MSRS;
extern const unsigned long CKVM_SET_CPUID2;
extern const unsigned long CKVM_GET_CPUID2;
extern const unsigned long CKVM_GET_LAPIC;
extern const unsigned long CKVM_SET_LAPIC;
extern const unsigned long CKVM_GET_VCPU_EVENTS;
extern const unsigned long CKVM_SET_VCPU_EVENTS;
extern const unsigned long CKVM_GET_MP_STATE;
extern const unsigned long CKVM_SET_MP_STATE;
extern const unsigned long CKVM_GET_XCRS;
extern const unsigned long CKVM_SET_XCRS;
extern const unsigned long CKVM_GET_DEBUGREGS;
extern const unsigned long CKVM_SET_DEBUGREGS;
extern const unsigned long CKVM_GET_TSC_KHZ;
extern const unsigned long CKVM_SET_TSC_KHZ;
extern const unsigned long CKVM_GET_IRQCHIP;
extern const unsigned long CKVM_SET_IRQCHIP;
extern const unsigned long CKVM_GET_PIT2;
extern const unsigned long CKVM_SET_PIT2;
extern const unsigned long CKVM_ENABLE_CAP;
extern const unsigned long CKVM_TRANSLATE;
/* TAP ioctl numbers, for the seccomp allow-lists (the TAP itself is opened in CVirtioHost). */
extern const unsigned long CKVM_TUNSETIFF;
extern const unsigned long CKVM_TUNSETOFFLOAD;
extern const unsigned long CKVM_TUNSETVNETHDRSZ;

/* --- ioctl wrappers: return -1 and set errno on failure --- */
int ckvm_ioctl_ptr(int fd, unsigned long request, void *arg);
int ckvm_ioctl_val(int fd, unsigned long request, unsigned long arg);

/* --- kvm_run accessors --- */
static inline uint32_t ckvm_run_exit_reason(const struct kvm_run *r) { return r->exit_reason; }
static inline void ckvm_run_set_immediate_exit(struct kvm_run *r, uint8_t v) {
    __atomic_store_n(&r->immediate_exit, v, __ATOMIC_SEQ_CST);
}
static inline uint8_t ckvm_run_io_direction(const struct kvm_run *r) { return r->io.direction; }
static inline uint8_t ckvm_run_io_size(const struct kvm_run *r) { return r->io.size; }
static inline uint16_t ckvm_run_io_port(const struct kvm_run *r) { return r->io.port; }
static inline uint32_t ckvm_run_io_count(const struct kvm_run *r) { return r->io.count; }
static inline uint64_t ckvm_run_io_data_offset(const struct kvm_run *r) { return r->io.data_offset; }
static inline uint64_t ckvm_run_mmio_phys_addr(const struct kvm_run *r) { return r->mmio.phys_addr; }
static inline uint8_t *ckvm_run_mmio_data(struct kvm_run *r) { return r->mmio.data; }
static inline uint32_t ckvm_run_mmio_len(const struct kvm_run *r) { return r->mmio.len; }
static inline uint8_t ckvm_run_mmio_is_write(const struct kvm_run *r) { return r->mmio.is_write; }
static inline uint64_t ckvm_run_fail_entry_reason(const struct kvm_run *r) {
    return r->fail_entry.hardware_entry_failure_reason;
}
static inline uint32_t ckvm_run_internal_suberror(const struct kvm_run *r) { return r->internal.suberror; }
static inline uint32_t ckvm_run_internal_ndata(const struct kvm_run *r) { return r->internal.ndata; }
static inline uint64_t ckvm_run_internal_data(const struct kvm_run *r, uint32_t i) {
    return i < 16 ? r->internal.data[i] : 0;
}
static inline uint32_t ckvm_run_system_event_type(const struct kvm_run *r) { return r->system_event.type; }

/* --- KVM_SET_GSI_ROUTING helpers (flexible array) --- */
static inline size_t ckvm_irq_routing_size(uint32_t n) {
    return sizeof(struct kvm_irq_routing) + (size_t)n * sizeof(struct kvm_irq_routing_entry);
}
static inline struct kvm_irq_routing_entry *ckvm_irq_routing_entries(struct kvm_irq_routing *r) {
    return r->entries;
}
static inline size_t ckvm_cpuid2_size(uint32_t n) {
    return sizeof(struct kvm_cpuid2) + (size_t)n * sizeof(struct kvm_cpuid_entry2);
}
static inline struct kvm_cpuid_entry2 *ckvm_cpuid2_entries(struct kvm_cpuid2 *c) { return c->entries; }
static inline size_t ckvm_msrs_size(uint32_t n) {
    return sizeof(struct kvm_msrs) + (size_t)n * sizeof(struct kvm_msr_entry);
}
static inline struct kvm_msr_entry *ckvm_msrs_entries(struct kvm_msrs *m) { return m->entries; }
static inline size_t ckvm_msr_list_size(uint32_t n) {
    return sizeof(struct kvm_msr_list) + (size_t)n * sizeof(uint32_t);
}
static inline uint32_t *ckvm_msr_list_indices(struct kvm_msr_list *l) { return l->indices; }

/* Fills an irq routing entry for an MSI route. */
static inline void ckvm_routing_set_msi(struct kvm_irq_routing_entry *e, uint32_t gsi,
                                        uint32_t addr_lo, uint32_t addr_hi, uint32_t data) {
    e->gsi = gsi; e->type = KVM_IRQ_ROUTING_MSI; e->flags = 0;
    e->u.msi.address_lo = addr_lo; e->u.msi.address_hi = addr_hi; e->u.msi.data = data;
}
/* Fills an irq routing entry for an irqchip pin. */
static inline void ckvm_routing_set_irqchip(struct kvm_irq_routing_entry *e, uint32_t gsi,
                                            uint32_t irqchip, uint32_t pin) {
    e->gsi = gsi; e->type = KVM_IRQ_ROUTING_IRQCHIP; e->flags = 0;
    e->u.irqchip.irqchip = irqchip; e->u.irqchip.pin = pin;
}

/* --- dirty log: the bitmap pointer lives in an anonymous union --- */
static inline void ckvm_dirty_log_set(struct kvm_dirty_log *log, uint32_t slot, void *bitmap) {
    log->slot = slot; log->padding1 = 0; log->dirty_bitmap = bitmap;
}
static inline void ckvm_clear_dirty_log_set(struct kvm_clear_dirty_log *log, uint32_t slot, uint64_t first_page,
                                            uint32_t num_pages, void *bitmap) {
    log->slot = slot; log->num_pages = num_pages; log->first_page = first_page; log->dirty_bitmap = bitmap;
}

/* --- dirty ring (KVM_CAP_DIRTY_LOG_RING): struct kvm_dirty_gfn entries shared with KVM ---
 * The flags word is the hand-off between KVM and user space: it is read with acquire and
 * written with release ordering, as the API documentation asks of weakly ordered hosts
 * (on x86 these are plain moves the compiler may not reorder). */
enum {
    CKVM_DIRTY_GFN_F_DIRTY = KVM_DIRTY_GFN_F_DIRTY,
    CKVM_DIRTY_GFN_F_RESET = KVM_DIRTY_GFN_F_RESET,
};
/* Page offset of the ring inside a vCPU file's mmap space (0 = no dirty ring on this arch). */
extern const unsigned long CKVM_DIRTY_LOG_PAGE_OFFSET;
static inline size_t ckvm_dirty_gfn_size(void) { return sizeof(struct kvm_dirty_gfn); }
static inline uint32_t ckvm_dirty_gfn_flags(const struct kvm_dirty_gfn *g) {
    return __atomic_load_n(&g->flags, __ATOMIC_ACQUIRE);
}
static inline uint32_t ckvm_dirty_gfn_slot(const struct kvm_dirty_gfn *g) {
    return __atomic_load_n(&g->slot, __ATOMIC_RELAXED);
}
static inline uint64_t ckvm_dirty_gfn_offset(const struct kvm_dirty_gfn *g) {
    return __atomic_load_n(&g->offset, __ATOMIC_RELAXED);
}
/* Hands a harvested entry back to KVM (state 01 -> 1X); KVM_RESET_DIRTY_RINGS recycles it. */
static inline void ckvm_dirty_gfn_mark_harvested(struct kvm_dirty_gfn *g) {
    __atomic_store_n(&g->flags, (uint32_t)KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
}

/* --- vCPU events: exception injection --- */
static inline void ckvm_events_inject_exception(struct kvm_vcpu_events *ev, uint8_t nr,
                                                int has_error, uint32_t error_code) {
    ev->exception.injected = 1;
    ev->exception.nr = nr;
    ev->exception.has_error_code = has_error ? 1 : 0;
    ev->exception.error_code = error_code;
}

#endif
