#include "clock.h"
#include "io.h"
#include "lapic.h"
#include "pic.h"

#define PORT_61 0x61
#define PIT_CH2 0x42
#define PIT_MODE 0x43

int clock_calibrate(uint32_t ms, int with_lapic, struct clock_cal *out)
{
    if (ms < 1)
        ms = 1;
    if (ms > 50)
        ms = 50;
    uint32_t latch = PIT_HZ * ms / 1000;
    out->tsc_khz = 0;
    out->lapic_khz = 0;
    if (with_lapic) {
        lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
        lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_DIVIDE_16);
        lapic_write(LAPIC_TIMER_INITIAL, 0xffffffffu);
    }
    outb(PORT_61, (uint8_t)((inb(PORT_61) & ~0x02) | 0x01)); /* gate high, speaker off */
    outb(PIT_MODE, 0xb0);                                   /* channel 2, lobyte/hibyte, mode 0 */
    outb(PIT_CH2, (uint8_t)latch);
    outb(PIT_CH2, (uint8_t)(latch >> 8)); /* counting starts here */
    uint64_t t1 = rdtsc();
    uint32_t l1 = with_lapic ? lapic_read(LAPIC_TIMER_CURRENT) : 0;
    uint64_t t2 = t1;
    while (!(inb(PORT_61) & 0x20)) {
        t2 = rdtsc();
        if (t2 - t1 > TSC_PER_SECOND_GUESS)
            return -1;
    }
    t2 = rdtsc();
    uint32_t l2 = with_lapic ? lapic_read(LAPIC_TIMER_CURRENT) : 0;
    if (with_lapic) {
        lapic_write(LAPIC_TIMER_INITIAL, 0);
        out->lapic_khz = (l1 - l2) / ms;
    }
    uint64_t khz = clock_div64(t2 - t1, ms, 0);
    if (khz == 0 || khz > 0xffffffffull)
        return -1;
    out->tsc_khz = (uint32_t)khz;
    return 0;
}
