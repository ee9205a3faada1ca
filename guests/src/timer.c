/* timer: legacy PIT interrupts through the 8259 PIC, then LAPIC timer interrupts.
 *   1. PIC remapped to 0x20/0x28, PIT channel 0 in mode 2 at 100 Hz, IRQ0 unmasked,
 *      sti, count >= 5 interrupts on vector 0x20.
 *   2. PIC fully masked, LAPIC software-enabled (SVR 0x1ff), LVT timer periodic on
 *      vector 0x40, divide by 16, initial count 0x20000; count >= 5 interrupts.
 * Output:
 *   pit ticks <n>
 *   lapic ticks <n>
 * Waits are busy loops with a TSC bound (about 4e9 cycles, 1-4 s) rather than hlt,
 * so that a timer that never fires gives a FAIL line instead of a hang. */
#include "idt.h"
#include "io.h"
#include "lapic.h"
#include "pic.h"
#include "print.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "timer";

#define WANT_TICKS 5

static volatile uint32_t pit_ticks, lapic_ticks;

static void on_pit(struct isr_frame *f)
{
    (void)f;
    pit_ticks++;
    pic_eoi(0);
}

static void on_lapic_timer(struct isr_frame *f)
{
    (void)f;
    lapic_ticks++;
    lapic_eoi();
}

static int wait_ticks(volatile uint32_t *counter)
{
    uint64_t start = rdtsc();
    while (*counter < WANT_TICKS) {
        if (rdtsc() - start > TSC_PER_SECOND_GUESS)
            return -1;
        cpu_pause();
    }
    return 0;
}

void kmain(uint32_t magic, const void *info)
{
    (void)magic;
    (void)info;
    serial_init();
    idt_init();
    idt_set_handler(VEC_PIC_BASE + 0, on_pit);
    idt_set_handler(VEC_LAPIC_TIMER, on_lapic_timer);

    pic_remap(VEC_PIC_BASE, VEC_PIC2_BASE);
    pit_start_periodic(100);
    pic_unmask(0);
    cpu_sti();
    int r = wait_ticks(&pit_ticks);
    cpu_cli();
    pic_mask_all();
    kprintf("pit ticks %u\n", pit_ticks);
    if (r != 0)
        test_fail("timed out waiting for PIT interrupts (%u seen)", pit_ticks);

    lapic_enable(VEC_LAPIC_SPURIOUS);
    lapic_write(LAPIC_TIMER_DIVIDE, 0x3); /* divide by 16 */
    lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VEC_LAPIC_TIMER);
    lapic_write(LAPIC_TIMER_INITIAL, 0x20000);
    cpu_sti();
    r = wait_ticks(&lapic_ticks);
    cpu_cli();
    lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
    lapic_write(LAPIC_TIMER_INITIAL, 0);
    kprintf("lapic ticks %u\n", lapic_ticks);
    if (r != 0)
        test_fail("timed out waiting for LAPIC timer interrupts (%u seen)", lapic_ticks);
    test_pass();
}
