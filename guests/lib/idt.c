#include "idt.h"
#include "io.h"
#include "selectors.h"
#include "test.h"

#if defined(__x86_64__)
struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
} __attribute__((packed));
#define GATE_SELECTOR SEL_CODE64
#else
struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t zero;
    uint8_t type;
    uint16_t offset_hi;
} __attribute__((packed));
#define GATE_SELECTOR SEL_CODE32
#endif

struct idt_pointer {
    uint16_t limit;
    uintptr_t base;
} __attribute__((packed));

extern const uintptr_t isr_stub_table[256];

static struct idt_gate idt[256] __attribute__((aligned(16)));
static isr_handler_t handlers[256];

void idt_init(void)
{
    for (unsigned v = 0; v < 256; v++) {
        uintptr_t off = isr_stub_table[v];
        struct idt_gate *g = &idt[v];
        g->offset_lo = (uint16_t)off;
        g->selector = GATE_SELECTOR;
        g->type = 0x8e; /* present, DPL 0, interrupt gate */
#if defined(__x86_64__)
        g->ist = 0;
        g->offset_mid = (uint16_t)(off >> 16);
        g->offset_hi = (uint32_t)(off >> 32);
        g->reserved = 0;
#else
        g->zero = 0;
        g->offset_hi = (uint16_t)(off >> 16);
#endif
    }
    idt_load();
}

void idt_load(void)
{
    struct idt_pointer p = { sizeof(idt) - 1, (uintptr_t)idt };
    __asm__ volatile("lidt %0" : : "m"(p));
}

void idt_set_handler(uint8_t vector, isr_handler_t fn)
{
    handlers[vector] = fn;
}

void isr_dispatch(struct isr_frame *frame)
{
    unsigned v = (unsigned)frame->vector;
    if (v < 256 && handlers[v]) {
        handlers[v](frame);
        return;
    }
    if (v < 32) {
        uintptr_t cr2 = 0;
        if (v == 14)
            __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        test_fail("exception %u error 0x%lx at 0x%lx cr2 0x%lx", v, (unsigned long)frame->error,
                  (unsigned long)frame->ip, (unsigned long)cr2);
    }
    if (v == VEC_PIC_BASE + 7 || v == VEC_PIC2_BASE + 7 || v == VEC_LAPIC_SPURIOUS)
        return; /* spurious: no EOI */
    test_fail("unexpected interrupt vector 0x%x", v);
}
