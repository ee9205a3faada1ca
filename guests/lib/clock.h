/* Guest time: TSC and LAPIC timer calibration against PIT channel 2, and 64-by-32-bit
 * division for 32-bit code (no libgcc, so no __udivdi3).
 *
 * Calibration gates PIT channel 2 through port 0x61 (bit 0 = gate, bit 1 = speaker off,
 * bit 5 = OUT2), loads a mode-0 countdown of `ms` milliseconds and polls OUT2 until it
 * goes high, like Linux's pit_calibrate_tsc(); the TSC (and, if asked, the LAPIC timer
 * counting down from 0xffffffff at divide-by-16) is read at both ends. Each poll is an I/O
 * exit, so the error is about one exit over the window (50 ms is plenty).
 * The result is only meaningful if the VM is not paused during the window. */
#ifndef KIT_CLOCK_H
#define KIT_CLOCK_H

#include <stdint.h>

#define LAPIC_DIVIDE_16 0x3

struct clock_cal {
    uint32_t tsc_khz;   /* TSC cycles per millisecond */
    uint32_t lapic_khz; /* LAPIC timer ticks per millisecond at divide-by-16 (0: not measured) */
};

/* Calibrates over a PIT channel 2 window of `ms` milliseconds (1..50). With `with_lapic`
 * the LAPIC must already be enabled; its LVT timer is left masked with count 0.
 * Returns 0, or -1 if OUT2 never went high (within ~4e9 TSC cycles) or the TSC did not move. */
int clock_calibrate(uint32_t ms, int with_lapic, struct clock_cal *out);

/* n / d and n % d for a 32-bit divisor, with 32-bit divisions only. */
static inline uint64_t clock_div64(uint64_t n, uint32_t d, uint32_t *rem)
{
#if defined(__x86_64__)
    if (rem)
        *rem = (uint32_t)(n % d);
    return n / d;
#else
    uint32_t hi = (uint32_t)(n >> 32), lo = (uint32_t)n;
    uint32_t qhi = hi / d, r = hi % d, qlo;
    __asm__("divl %4" : "=a"(qlo), "=d"(r) : "a"(lo), "d"(r), "rm"(d));
    if (rem)
        *rem = r;
    return ((uint64_t)qhi << 32) | qlo;
#endif
}

/* TSC cycles for `ms` milliseconds. */
static inline uint64_t clock_tsc_ms(const struct clock_cal *c, uint32_t ms) { return (uint64_t)c->tsc_khz * ms; }
/* Milliseconds for `cycles` TSC cycles (rounded down). */
static inline uint64_t clock_ms_of_tsc(const struct clock_cal *c, uint64_t cycles) { return clock_div64(cycles, c->tsc_khz, 0); }

#endif
