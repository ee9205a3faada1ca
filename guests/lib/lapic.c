#include "lapic.h"
#include "io.h"

#define IA32_APIC_BASE 0x1b
#define APIC_BASE_ENABLE (1ull << 11)

uint32_t lapic_read(uint32_t reg) { return mmio_read32(LAPIC_BASE + reg); }
void lapic_write(uint32_t reg, uint32_t value) { mmio_write32(LAPIC_BASE + reg, value); }
uint32_t lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }
void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }

uint64_t lapic_enable(uint8_t spurious_vector)
{
    uint64_t base = rdmsr(IA32_APIC_BASE);
    if (!(base & APIC_BASE_ENABLE))
        wrmsr(IA32_APIC_BASE, base | APIC_BASE_ENABLE);
    lapic_write(LAPIC_SVR, 0x100u | spurious_vector);
    return base;
}

int lapic_send_ipi(uint32_t dest_apic_id, uint32_t icr_low)
{
    lapic_write(LAPIC_ICR_HI, dest_apic_id << 24);
    lapic_write(LAPIC_ICR_LO, icr_low);
    for (uint32_t i = 0; i < 1000000; i++) {
        if (!(lapic_read(LAPIC_ICR_LO) & (1u << 12)))
            return 0;
        cpu_pause();
    }
    return -1;
}
