/* lapic-timer: one LAPIC timer interrupt after a calibrated delay, waited for with
 * sti; hlt — so a timer armed before a snapshot must still fire after the restore.
 *
 * Command line: mode=oneshot (default) or mode=tsc-deadline, delay-ms=D (default 1500).
 * The TSC and the LAPIC timer (divide by 16) are calibrated against PIT channel 2 (50 ms).
 * oneshot: LVT timer one-shot on vector 0x40, initial count = D ms of LAPIC ticks (divide
 * by 128 if that does not fit 32 bits). tsc-deadline: needs CPUID.01H:ECX[24]; LVT timer
 * in TSC-deadline mode, IA32_TSC_DEADLINE = TSC now + D ms. Then `sti; hlt` until the
 * interrupt. A timer that never fires hangs the guest (the host's timeout notices).
 * Output:
 *   TIMER tsc-khz=<n> lapic-khz=<n>                    (lapic-khz at divide by 16)
 *   TIMER armed mode=<oneshot|tsc-deadline> delay-ms=<D>
 *   TIMER fired
 *   TIMER elapsed-ms=<n>                               (by the TSC, arming to interrupt)
 * Fails without TSC-deadline support (mode=tsc-deadline), on a calibration failure, or
 * if the interrupt came before D/2 ms by the TSC. */
#include "clock.h"
#include "idt.h"
#include "io.h"
#include "lapic.h"
#include "multiboot.h"
#include "pic.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"

const char test_name[] = "lapic-timer";

#define VEC_TIMER VEC_LAPIC_TIMER
#define MSR_TSC_DEADLINE 0x6e0
#define LVT_TSC_DEADLINE (2u << 17)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define LAPIC_DIVIDE_128 0xa

static volatile uint32_t fired;
static volatile uint64_t fired_tsc;

static void on_timer(struct isr_frame *f)
{
    (void)f;
    if (!fired)
        fired_tsc = rdtsc();
    fired++;
    lapic_eoi();
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    const char *cmdline = (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline ? (const char *)(uintptr_t)mbi->cmdline : "";
    const char *m = cmdline_find(cmdline, 512, "mode");
    int deadline = 0;
    if (m && strncmp(m, "tsc-deadline", 12) == 0)
        deadline = 1;
    else if (m && strncmp(m, "oneshot", 7) != 0)
        test_fail("unknown mode=%s", m);
    uint32_t delay = 1500;
    const char *d = cmdline_find(cmdline, 512, "delay-ms");
    if (d && (parse_u32(d, &delay) != 0 || delay == 0))
        test_fail("bad delay-ms=%s", d);

    idt_init();
    idt_set_handler(VEC_TIMER, on_timer);
    pic_remap(VEC_PIC_BASE, VEC_PIC2_BASE); /* firmware may have IRQ0 on vector 8; all masked */
    lapic_enable(VEC_LAPIC_SPURIOUS);
    struct clock_cal cal;
    if (clock_calibrate(50, 1, &cal) != 0)
        test_fail("TSC calibration against PIT channel 2 failed");
    kprintf("TIMER tsc-khz=%u lapic-khz=%u\n", cal.tsc_khz, cal.lapic_khz);

    uint64_t start;
    if (deadline) {
        uint32_t a, b, c, dx;
        cpuid(1, 0, &a, &b, &c, &dx);
        if (!(c & CPUID_1_ECX_TSC_DEADLINE))
            test_fail("mode=tsc-deadline but CPUID.01H:ECX[24] (TSC-deadline timer) is 0");
        lapic_write(LAPIC_LVT_TIMER, LVT_TSC_DEADLINE | VEC_TIMER);
        start = rdtsc();
        wrmsr(MSR_TSC_DEADLINE, start + clock_tsc_ms(&cal, delay));
    } else {
        if (cal.lapic_khz == 0)
            test_fail("LAPIC timer calibration failed");
        uint64_t count = (uint64_t)cal.lapic_khz * delay;
        uint32_t divide = LAPIC_DIVIDE_16;
        if (count > 0xffffffffull) {
            count >>= 3;
            divide = LAPIC_DIVIDE_128;
        }
        if (count > 0xffffffffull)
            test_fail("delay-ms=%u is too long for the LAPIC timer", delay);
        lapic_write(LAPIC_TIMER_DIVIDE, divide);
        lapic_write(LAPIC_LVT_TIMER, VEC_TIMER); /* one-shot */
        start = rdtsc();
        lapic_write(LAPIC_TIMER_INITIAL, (uint32_t)count);
    }
    kprintf("TIMER armed mode=%s delay-ms=%u\n", deadline ? "tsc-deadline" : "oneshot", delay);
    while (!fired)
        cpu_sti_hlt();
    cpu_cli();
    kprintf("TIMER fired\n");
    uint64_t elapsed = clock_ms_of_tsc(&cal, fired_tsc - start);
    kprintf("TIMER elapsed-ms=%llu\n", (unsigned long long)elapsed);
    if (elapsed < delay / 2)
        test_fail("the timer fired after %llu ms, before half of delay-ms=%u", (unsigned long long)elapsed, delay);
    test_pass();
}
