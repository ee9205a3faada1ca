/* smp: starts every AP with INIT-SIPI-SIPI and has each report itself.
 * The CPU count comes from fw_cfg (key 0x0005). The BSP copies the real-mode
 * trampoline (smp-trampoline.S) to 0x70000, software-enables its LAPIC and broadcasts
 * INIT, then SIPI twice (vector 0x70) to all-excluding-self. Each AP enters protected
 * mode, takes a spinlock, prints its line and bumps a counter, then halts. The BSP waits
 * (TSC-bounded, about 4e9 cycles) for all of them. Output:
 *   fw_cfg cpus <n>
 *   madt cpus <n>                      (or: madt none; must match fw_cfg if present)
 *   bsp apic <id>
 *   cpu <k> apic <id>                  (one per AP, k = 1..n-1 in arrival order)
 *   smp online <n> apic ids <id0> <id1> ...   (by CPU number, BSP first)
 * Fails without fw_cfg, on a count mismatch, a timeout or duplicate APIC IDs. */
#include "acpi.h"
#include "fwcfg.h"
#include "idt.h"
#include "io.h"
#include "lapic.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"

const char test_name[] = "smp";

#define SMP_MAX_CPUS 32
#define TRAMPOLINE_BASE 0x70000u
#define ICR_ALL_BUT_SELF (3u << 18)
#define ICR_ASSERT (1u << 14)
#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)

extern const char smp_trampoline_start[], smp_trampoline_end[];

static volatile uint32_t print_lock;
static volatile uint32_t ap_reported;
static volatile uint32_t apic_ids[SMP_MAX_CPUS];

static void lock(void)
{
    while (atomic_xchg32(&print_lock, 1))
        while (print_lock)
            cpu_pause();
}

static void unlock(void)
{
    barrier();
    print_lock = 0;
}

void ap_main(uint32_t cpu)
{
    uint32_t apic = lapic_id();
    lock();
    kprintf("cpu %u apic %u\n", cpu, apic);
    apic_ids[cpu] = apic;
    atomic_fetch_add32(&ap_reported, 1);
    unlock();
    halt_forever();
}

static void delay_cycles(uint64_t cycles)
{
    uint64_t start = rdtsc();
    while (rdtsc() - start < cycles)
        cpu_pause();
}

void kmain(uint32_t magic, const void *info)
{
    (void)magic;
    (void)info;
    serial_init();
    idt_init();

    if (!fwcfg_present())
        test_fail("no fw_cfg signature at 0x510");
    uint32_t ncpus = fwcfg_read_u16(FW_CFG_NB_CPUS);
    kprintf("fw_cfg cpus %u\n", ncpus);
    if (ncpus == 0 || ncpus > SMP_MAX_CPUS)
        test_fail("fw_cfg reports %u CPUs (supported: 1..%u)", ncpus, SMP_MAX_CPUS);

    const struct acpi_rsdp *rsdp = acpi_find_rsdp();
    const struct acpi_header *madt = rsdp ? acpi_find_table(rsdp, "APIC", 0) : NULL;
    if (madt) {
        unsigned m = acpi_madt_cpus(madt);
        kprintf("madt cpus %u\n", m);
        if (m != ncpus)
            test_fail("MADT lists %u enabled CPUs, fw_cfg %u", m, ncpus);
    } else {
        kprintf("madt none\n");
    }

    lapic_enable(VEC_LAPIC_SPURIOUS);
    apic_ids[0] = lapic_id();
    kprintf("bsp apic %u\n", apic_ids[0]);

    if (ncpus > 1) {
        uint32_t size = (uint32_t)(smp_trampoline_end - smp_trampoline_start);
        memcpy((void *)(uintptr_t)TRAMPOLINE_BASE, smp_trampoline_start, size);
        if (lapic_send_ipi(0, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_INIT) != 0)
            test_fail("INIT IPI stuck in delivery");
        delay_cycles(40000000); /* >= 10 ms */
        for (int i = 0; i < 2; i++) {
            if (lapic_send_ipi(0, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_STARTUP | (TRAMPOLINE_BASE >> 12)) != 0)
                test_fail("SIPI stuck in delivery");
            delay_cycles(800000); /* >= 200 us */
        }
        uint64_t start = rdtsc();
        while (atomic_load32(&ap_reported) < ncpus - 1) {
            if (rdtsc() - start > TSC_PER_SECOND_GUESS)
                break;
            cpu_pause();
        }
    }

    lock();
    uint32_t online = 1 + ap_reported;
    if (online != ncpus)
        test_fail("only %u of %u CPUs reported", online, ncpus);
    for (uint32_t i = 0; i < ncpus; i++)
        for (uint32_t j = i + 1; j < ncpus; j++)
            if (apic_ids[i] == apic_ids[j])
                test_fail("CPUs %u and %u share APIC ID %u", i, j, apic_ids[i]);
    kprintf("smp online %u apic ids", online);
    for (uint32_t i = 0; i < ncpus; i++)
        kprintf(" %u", apic_ids[i]);
    kprintf("\n");
    test_pass();
}
