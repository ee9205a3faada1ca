/* Local APIC in xAPIC mode at 0xFEE00000. */
#ifndef KIT_LAPIC_H
#define KIT_LAPIC_H

#include <stdint.h>

#define LAPIC_BASE 0xfee00000u
#define LAPIC_ID 0x020
#define LAPIC_VERSION 0x030
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_ESR 0x280
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE 0x3e0

#define LAPIC_TIMER_PERIODIC (1u << 17)
#define LAPIC_LVT_MASKED (1u << 16)

uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t value);
/* APIC ID of the calling CPU (bits 31:24 of the ID register). */
uint32_t lapic_id(void);
/* Makes sure IA32_APIC_BASE has the global enable bit and software-enables the APIC
 * through the spurious-vector register. Returns the IA32_APIC_BASE value found. */
uint64_t lapic_enable(uint8_t spurious_vector);
void lapic_eoi(void);
/* Writes ICR (high then low) and waits (bounded) for the delivery-status bit to clear.
 * Returns 0 on success, -1 on timeout. */
int lapic_send_ipi(uint32_t dest_apic_id, uint32_t icr_low);

#endif
