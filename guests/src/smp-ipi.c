/* smp-ipi: a token passed around all CPUs with fixed-vector IPIs, so that an IPI lost (or
 * doubled) across a snapshot/restore shows.
 *
 * The CPU count comes from fw_cfg (key 0x0005; the MADT, when found, must agree) or, without
 * fw_cfg, from the MADT. APs are started as smp.elf does (trampoline at 0x70000,
 * INIT-SIPI-SIPI to all-excluding-self, with delays from the calibrated TSC); CPU numbers
 * are the BSP 0, then APs 1..n-1 in arrival order. Every CPU waits in `sti; hlt`. CPU i
 * takes the token on vector 0x50, increments its own counter and sends a fixed IPI
 * (physical destination) to CPU (i + 1) mod n; with one CPU the BSP sends it to itself.
 * A round ends when the token is back at the BSP. Every `report=R` rounds (default 100)
 * and at `stop=X` the BSP keeps the token, checks that every counter equals the round,
 * prints the line and sends the token on (or passes after round X).
 * Watchdog: the BSP's LAPIC timer ticks every 10 ms (calibrated against PIT channel 2);
 * 200 ticks without a hop of the token (2 s of guest time; a paused VM gets no ticks) fail
 * the test.
 * `drop=D` makes the BSP swallow the token at round D (a self-test of the watchdog).
 * Output:
 *   IPI cpus=<n> apic ids <id of cpu 0> <id of cpu 1> ...
 *   IPI round=<r> counts=<c0>,<c1>,...,<cn-1>          every R rounds; all equal to r
 * Fails: `token lost at round <r>` (r = completed rounds), `counts disagree at round <r>:
 * <c0>,<c1>,...`, an IPI stuck in delivery, or CPUs that did not come up. Up to 32 CPUs. */
#include "acpi.h"
#include "clock.h"
#include "fwcfg.h"
#include "idt.h"
#include "io.h"
#include "lapic.h"
#include "multiboot.h"
#include "pic.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"

const char test_name[] = "smp-ipi";

#define MAX_CPUS 32
#define TRAMPOLINE_BASE 0x70000u
#define ICR_ALL_BUT_SELF (3u << 18)
#define ICR_ASSERT (1u << 14)
#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)
#define VEC_TOKEN 0x50
#define VEC_TICK VEC_LAPIC_TIMER
#define TICK_MS 10
#define WATCHDOG_TICKS 200

extern const char smp_trampoline_start[], smp_trampoline_end[];

static uint32_t ncpus;
static volatile uint32_t apic_ids[MAX_CPUS];
static volatile uint8_t cpu_of_apic[256];
static volatile uint32_t counts[MAX_CPUS];
static volatile uint32_t ap_ready;
static volatile uint32_t hops;
static volatile uint32_t parked;     /* the BSP holds the token for a report */
static volatile uint32_t ipi_errors;
static volatile uint32_t idle_ticks; /* BSP timer ticks since the token last moved */
static uint32_t seen_hops;
static uint32_t report_every = 100, stop_rounds, drop_round;

static void forward(uint32_t cpu)
{
    uint32_t next = cpu + 1 == ncpus ? 0 : cpu + 1;
    if (lapic_send_ipi(apic_ids[next], ICR_ASSERT | VEC_TOKEN) != 0)
        atomic_fetch_add32(&ipi_errors, 1);
}

static void on_token(struct isr_frame *f)
{
    (void)f;
    uint32_t cpu = cpu_of_apic[lapic_id()];
    uint32_t r = ++counts[cpu];
    atomic_fetch_add32(&hops, 1);
    lapic_eoi();
    if (cpu == 0 && r == drop_round)
        return; /* drop=R: swallow the token (checks the watchdog) */
    if (cpu == 0 && (r % report_every == 0 || r == stop_rounds)) {
        parked = 1; /* the main loop reports, then sends it on */
        return;
    }
    forward(cpu);
}

static void on_tick(struct isr_frame *f)
{
    (void)f;
    uint32_t h = hops;
    if (h != seen_hops || parked) {
        seen_hops = h;
        idle_ticks = 0;
    } else {
        idle_ticks++;
    }
    lapic_eoi();
}

void ap_main(uint32_t cpu)
{
    idt_load();
    lapic_enable(VEC_LAPIC_SPURIOUS);
    uint32_t id = lapic_id();
    if (cpu < MAX_CPUS) {
        apic_ids[cpu] = id;
        cpu_of_apic[id & 0xff] = (uint8_t)cpu;
        atomic_fetch_add32(&ap_ready, 1);
    }
    for (;;)
        cpu_sti_hlt();
}

static void delay_tsc(uint64_t cycles)
{
    uint64_t start = rdtsc();
    while (rdtsc() - start < cycles)
        cpu_pause();
}

static void print_counts(void)
{
    for (uint32_t i = 0; i < ncpus; i++)
        kprintf(i ? ",%u" : "%u", counts[i]);
    kprintf("\n");
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    const char *cmdline = (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline ? (const char *)(uintptr_t)mbi->cmdline : "";
    const char *v;
    if ((v = cmdline_find(cmdline, 512, "report")) && (parse_u32(v, &report_every) != 0 || report_every == 0))
        test_fail("bad report=%s", v);
    if ((v = cmdline_find(cmdline, 512, "stop")) && parse_u32(v, &stop_rounds) != 0)
        test_fail("bad stop=%s", v);
    if ((v = cmdline_find(cmdline, 512, "drop")) && parse_u32(v, &drop_round) != 0)
        test_fail("bad drop=%s", v);

    idt_init();
    idt_set_handler(VEC_TOKEN, on_token);
    idt_set_handler(VEC_TICK, on_tick);
    pic_remap(VEC_PIC_BASE, VEC_PIC2_BASE); /* all legacy IRQs masked */

    const struct acpi_rsdp *rsdp = acpi_find_rsdp();
    const struct acpi_header *madt = rsdp ? acpi_find_table(rsdp, "APIC", 0) : NULL;
    uint32_t madt_cpus = madt ? acpi_madt_cpus(madt) : 0;
    if (fwcfg_present()) {
        ncpus = fwcfg_read_u16(FW_CFG_NB_CPUS);
        if (madt && madt_cpus != ncpus)
            test_fail("MADT lists %u enabled CPUs, fw_cfg %u", madt_cpus, ncpus);
    } else {
        ncpus = madt_cpus;
    }
    if (ncpus == 0 || ncpus > MAX_CPUS)
        test_fail("%u CPUs (fw_cfg or MADT; supported: 1..%u)", ncpus, MAX_CPUS);

    lapic_enable(VEC_LAPIC_SPURIOUS);
    struct clock_cal cal;
    if (clock_calibrate(50, 1, &cal) != 0 || cal.lapic_khz == 0)
        test_fail("TSC/LAPIC calibration against PIT channel 2 failed");
    apic_ids[0] = lapic_id();
    cpu_of_apic[apic_ids[0] & 0xff] = 0;

    if (ncpus > 1) {
        uint32_t size = (uint32_t)(smp_trampoline_end - smp_trampoline_start);
        memcpy((void *)(uintptr_t)TRAMPOLINE_BASE, smp_trampoline_start, size);
        if (lapic_send_ipi(0, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_INIT) != 0)
            test_fail("INIT IPI stuck in delivery");
        delay_tsc(clock_tsc_ms(&cal, 10));
        for (int i = 0; i < 2; i++) {
            if (lapic_send_ipi(0, ICR_ALL_BUT_SELF | ICR_ASSERT | ICR_STARTUP | (TRAMPOLINE_BASE >> 12)) != 0)
                test_fail("SIPI stuck in delivery");
            delay_tsc(cal.tsc_khz / 5); /* 200 us */
        }
        uint64_t start = rdtsc();
        while (atomic_load32(&ap_ready) < ncpus - 1 && rdtsc() - start < clock_tsc_ms(&cal, 2000))
            cpu_pause();
        if (ap_ready != ncpus - 1)
            test_fail("only %u of %u CPUs came up", 1 + ap_ready, ncpus);
    }
    for (uint32_t i = 0; i < ncpus; i++)
        for (uint32_t j = i + 1; j < ncpus; j++)
            if (apic_ids[i] == apic_ids[j])
                test_fail("CPUs %u and %u share APIC ID %u", i, j, apic_ids[i]);
    kprintf("IPI cpus=%u apic ids", ncpus);
    for (uint32_t i = 0; i < ncpus; i++)
        kprintf(" %u", apic_ids[i]);
    kprintf("\n");

    lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_DIVIDE_16);
    lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VEC_TICK);
    lapic_write(LAPIC_TIMER_INITIAL, cal.lapic_khz * TICK_MS);
    forward(0);
    for (;;) {
        cpu_cli();
        if (ipi_errors)
            test_fail("an IPI stayed in delivery at round %u", counts[0]);
        if (parked) {
            uint32_t r = counts[0];
            for (uint32_t i = 1; i < ncpus; i++) {
                if (counts[i] != r) {
                    kprintf("SKIFF-TEST FAIL %s: counts disagree at round %u: ", test_name, r);
                    print_counts();
                    debug_exit(DEBUG_EXIT_FAIL);
                    halt_forever();
                }
            }
            kprintf("IPI round=%u counts=", r);
            print_counts();
            if (stop_rounds && r >= stop_rounds)
                test_pass();
            idle_ticks = 0;
            parked = 0;
            forward(0);
            continue;
        }
        if (idle_ticks >= WATCHDOG_TICKS)
            test_fail("token lost at round %u", counts[0]);
        cpu_sti_hlt();
    }
}
