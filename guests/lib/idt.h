/* IDT with one stub per vector (lib/isr32.S or lib/isr64.S) and C handlers.
 * Unhandled exceptions fail the test with the vector, error code and faulting address;
 * unhandled spurious PIC (0x27, 0x2f) and LAPIC (0xff) vectors are ignored;
 * any other unhandled interrupt fails the test. */
#ifndef KIT_IDT_H
#define KIT_IDT_H

#include <stdint.h>

#if defined(__x86_64__)
struct isr_frame {
    uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
    uint64_t vector, error;
    uint64_t ip, cs, flags, sp, ss;
};
#else
struct isr_frame {
    uint32_t edi, esi, ebp, esp_unused, ebx, edx, ecx, eax;
    uint32_t vector, error;
    uint32_t ip, cs, flags;
};
#endif

typedef void (*isr_handler_t)(struct isr_frame *frame);

#define VEC_PIC_BASE 0x20   /* IRQ0..7 -> 0x20..0x27 after pic_remap */
#define VEC_PIC2_BASE 0x28  /* IRQ8..15 -> 0x28..0x2f */
#define VEC_LAPIC_TIMER 0x40
#define VEC_LAPIC_SPURIOUS 0xff

/* Fills all 256 gates and loads the IDT. Interrupts stay disabled. */
void idt_init(void);
/* Loads the (already filled) IDT on the calling CPU, e.g. on an AP after the BSP's idt_init(). */
void idt_load(void);
void idt_set_handler(uint8_t vector, isr_handler_t fn);
/* Called from the assembly stubs. */
void isr_dispatch(struct isr_frame *frame);

#endif
