/* workload: a memory-mutating workload whose console output shows that nothing was lost
 * or repeated across snapshot/restore, fork and live migration. 32-bit, paging off.
 *
 * Command line (all optional):
 *   mib=N       working region of N MiB from 16 MiB (default 8); it must lie inside a
 *               type-1 entry of the multiboot memory map (or below 1 MiB + mem_upper
 *               without a map), else FAIL
 *   report=K    progress line every K steps (default 1000)
 *   verify=V    verification pass every V progress lines (default 4; 0 = only at stop)
 *   dirty=R     pacing: R KiB/s of page writes (one step = one 4 KiB page); dirty=max
 *               (default) runs steps back to back; dirty=0 writes no page after start and
 *               prints a heartbeat about every 250 ms of guest time instead
 *   stop=S      after step S (dirty=0: after heartbeat S) a final verification, then PASS
 *               (default: run forever)
 *   wait=hlt|poll  how paced modes wait for the next step: sti;hlt woken by a 10 ms LAPIC
 *               timer tick (default), or a TSC busy loop with interrupts off
 *
 * Start: every page of the region gets counter 0 (offset 0) and the "never chosen"
 * marker 0xffffffffffffffff (offset 8). The TSC and the LAPIC timer are calibrated
 * against PIT channel 2 (50 ms).
 *
 * Step s (s = 0, 1, 2, ...): z = splitmix64(s); page p = (z >> 32) % pages; in page p
 * the 64-bit counter at offset 0 is incremented, s is stored at offset 8 and z at offset
 * 16 + 8 * ((z & 0xffffffff) % 510); then hash = FNV-1a-64 over the 32-bit words
 * (s & 0xffffffff, s >> 32, p): h = (h ^ w) * 0x100000001b3 for each word, starting from
 * 0xcbf29ce484222325. So a host can recompute the expected hash of any seq from `pages`.
 *
 * Verification: the sum of all page counters must equal the number of completed steps;
 * for 64 pages chosen by splitmix64(0x5eed0000 + 64 * pass + j) % pages, plus the page of
 * the last step, a page with counter 0 must hold the marker at offset 8, any other page
 * must hold a step s' < steps at offset 8 whose splitmix64 maps back to the page, and z(s')
 * at its second offset.
 *
 * Pacing uses the TSC only for timing, never for correctness: the VM may be paused
 * between any two instructions and resumed (on another host, with another TSC offset).
 * A backlog of more than 100 ms (e.g. after a pause) is dropped rather than caught up,
 * and a TSC that went backwards restarts the schedule.
 *
 * Output (exact):
 *   WL tsc-khz=<n> pages=<count> dirty=<R|max|0>        once, after the region is set up
 *   WL seq=<s> hash=<16 lower-case hex digits>          every K steps (s = completed steps)
 *   WL verify seq=<s> ok                                after every V-th progress line
 *   WL heartbeat n=<n>                                  dirty=0 only, n = 1, 2, ...
 * and with stop=S: a final `WL seq=S hash=...` (unless S is a multiple of K), a final
 * `WL verify seq=S ok` (unless that pass just ran), then SKIFF-TEST PASS workload.
 * Failures: SKIFF-TEST FAIL workload: verify seq=<s>: <reason>, or a setup problem. */
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

const char test_name[] = "workload";

#define REGION_BASE 0x1000000u
#define PAGE_SIZE 4096u
#define NEVER 0xffffffffffffffffull
#define SAMPLES 64
#define TICK_MS 10
#define HEARTBEAT_MS 250
#define BACKLOG_MS 100
#define VEC_TICK VEC_LAPIC_TIMER

/* Everything the workload knows lives in guest RAM (here, and the stack). */
static uint32_t pages;
static uint64_t steps;          /* completed steps */
static uint64_t hash = 0xcbf29ce484222325ull;
static uint32_t report_every, verify_every, until_report, reports_until_verify;
static uint64_t verified_at = NEVER; /* seq of the last verification pass */
static uint32_t verify_passes;
static uint32_t stop_at;        /* 0: never */
static uint32_t heartbeats;
static struct clock_cal cal;

static inline uint64_t splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* h * 0x100000001b3 = h * 0x1b3 + (h << 40) */
static inline uint64_t fnv_word(uint64_t h, uint32_t w)
{
    h ^= w;
    return h * 0x1b3u + (h << 40);
}

static inline volatile uint64_t *page_at(uint32_t p) { return (volatile uint64_t *)(uintptr_t)(REGION_BASE + p * PAGE_SIZE); }
static inline uint32_t page_of(uint64_t z) { return (uint32_t)(z >> 32) % pages; }
static inline uint32_t slot_of(uint64_t z) { return 2 + (uint32_t)z % 510; }

static void step(void)
{
    uint64_t s = steps;
    uint64_t z = splitmix64(s);
    uint32_t p = page_of(z);
    volatile uint64_t *pg = page_at(p);
    pg[0] = pg[0] + 1;
    pg[1] = s;
    pg[slot_of(z)] = z;
    uint64_t h = fnv_word(hash, (uint32_t)s);
    h = fnv_word(h, (uint32_t)(s >> 32));
    hash = fnv_word(h, p);
    steps = s + 1;
}

static void check_page(uint32_t p)
{
    volatile uint64_t *pg = page_at(p);
    uint64_t count = pg[0], s = pg[1];
    if (count == 0) {
        if (s != NEVER)
            test_fail("verify seq=%llu: page %u has counter 0 but holds step %llu", (unsigned long long)steps, p,
                      (unsigned long long)s);
        return;
    }
    if (count > steps || s >= steps)
        test_fail("verify seq=%llu: page %u has counter %llu and step %llu", (unsigned long long)steps, p,
                  (unsigned long long)count, (unsigned long long)s);
    uint64_t z = splitmix64(s);
    if (page_of(z) != p)
        test_fail("verify seq=%llu: page %u holds step %llu, which chose page %u", (unsigned long long)steps, p,
                  (unsigned long long)s, page_of(z));
    if (pg[slot_of(z)] != z)
        test_fail("verify seq=%llu: page %u offset %u holds 0x%llx, step %llu wrote 0x%llx", (unsigned long long)steps, p,
                  slot_of(z) * 8, (unsigned long long)pg[slot_of(z)], (unsigned long long)s, (unsigned long long)z);
}

static void verify(void)
{
    uint64_t sum = 0;
    for (uint32_t p = 0; p < pages; p++)
        sum += *page_at(p);
    if (sum != steps)
        test_fail("verify seq=%llu: page counters sum to %llu", (unsigned long long)steps, (unsigned long long)sum);
    for (uint32_t j = 0; j < SAMPLES; j++)
        check_page((uint32_t)(splitmix64(0x5eed0000ull + (uint64_t)verify_passes * SAMPLES + j) >> 32) % pages);
    if (steps)
        check_page(page_of(splitmix64(steps - 1)));
    verify_passes++;
    verified_at = steps;
    kprintf("WL verify seq=%llu ok\n", (unsigned long long)steps);
}

static void progress(void)
{
    kprintf("WL seq=%llu hash=%016llx\n", (unsigned long long)steps, (unsigned long long)hash);
}

/* One step and the output it is due for. */
static void step_and_report(void)
{
    step();
    if (--until_report == 0) {
        until_report = report_every;
        progress();
        if (verify_every && --reports_until_verify == 0) {
            reports_until_verify = verify_every;
            verify();
        }
    }
    if (stop_at && steps == stop_at) {
        if (until_report != report_every)
            progress();
        if (verified_at != steps)
            verify();
        test_pass();
    }
}

static void heartbeat(void)
{
    heartbeats++;
    kprintf("WL heartbeat n=%u\n", heartbeats);
    if (stop_at && heartbeats == stop_at) {
        verify();
        test_pass();
    }
}

static void on_tick(struct isr_frame *f)
{
    (void)f;
    lapic_eoi();
}

static int region_fits(const struct multiboot_info *mbi, uint64_t end)
{
    if (mbi->flags & MB_INFO_MEM_MAP) {
        uint32_t at = mbi->mmap_addr, stop = mbi->mmap_addr + mbi->mmap_length;
        while (at + 24 <= stop) {
            const struct multiboot_mmap_entry *e = (const struct multiboot_mmap_entry *)(uintptr_t)at;
            if (e->type == 1 && e->addr <= REGION_BASE && e->addr + e->len >= end)
                return 1;
            if (e->size < 20)
                break;
            at += e->size + 4;
        }
        return 0;
    }
    if (mbi->flags & MB_INFO_MEMORY)
        return 0x100000ull + (uint64_t)mbi->mem_upper * 1024 >= end;
    return 0;
}

static uint32_t option(const char *cmdline, const char *key, uint32_t dflt, uint32_t min)
{
    const char *v = cmdline_find(cmdline, 512, key);
    uint32_t x = dflt;
    if (v && (parse_u32(v, &x) != 0 || x < min))
        test_fail("bad %s=%s", key, v);
    return x;
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    const char *cmdline = (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline ? (const char *)(uintptr_t)mbi->cmdline : "";
    uint32_t mib = option(cmdline, "mib", 8, 1);
    report_every = option(cmdline, "report", 1000, 1);
    verify_every = option(cmdline, "verify", 4, 0);
    stop_at = option(cmdline, "stop", 0, 0);
    uint32_t dirty = 0;
    int dirty_max = 1;
    const char *d = cmdline_find(cmdline, 512, "dirty");
    if (d && strncmp(d, "max", 3) != 0) {
        if (parse_u32(d, &dirty) != 0)
            test_fail("bad dirty=%s", d);
        dirty_max = 0;
    }
    const char *w = cmdline_find(cmdline, 512, "wait");
    int poll = w && strncmp(w, "poll", 4) == 0;

    if (mib > 4080)
        test_fail("mib=%u does not fit below 4 GiB", mib);
    uint64_t end = REGION_BASE + (uint64_t)mib * 0x100000;
    if (!region_fits(mbi, end))
        test_fail("region 0x%x-0x%llx does not fit the RAM the multiboot information reports", REGION_BASE,
                  (unsigned long long)end);
    pages = mib * 256;
    for (uint32_t p = 0; p < pages; p++) {
        volatile uint64_t *pg = page_at(p);
        pg[0] = 0;
        pg[1] = NEVER;
    }
    until_report = report_every;
    reports_until_verify = verify_every;

    idt_init();
    idt_set_handler(VEC_TICK, on_tick);
    pic_remap(VEC_PIC_BASE, VEC_PIC2_BASE); /* firmware may have IRQ0 on vector 8; all masked */
    lapic_enable(VEC_LAPIC_SPURIOUS);
    if (clock_calibrate(50, 1, &cal) != 0)
        test_fail("TSC calibration against PIT channel 2 failed");
    if (dirty_max)
        kprintf("WL tsc-khz=%u pages=%u dirty=max\n", cal.tsc_khz, pages);
    else
        kprintf("WL tsc-khz=%u pages=%u dirty=%u\n", cal.tsc_khz, pages, dirty);

    if (dirty_max)
        for (;;)
            step_and_report();

    if (!poll) {
        if (cal.lapic_khz == 0)
            test_fail("LAPIC timer calibration failed (use wait=poll)");
        lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_DIVIDE_16);
        lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VEC_TICK);
        lapic_write(LAPIC_TIMER_INITIAL, cal.lapic_khz * TICK_MS);
    }
    /* Cycles between two steps (R KiB/s = R/4 pages a second) or two heartbeats. */
    uint64_t period = dirty ? clock_div64((uint64_t)cal.tsc_khz * 4000, dirty, 0) : clock_tsc_ms(&cal, HEARTBEAT_MS);
    if (period == 0)
        period = 1;
    uint64_t backlog = clock_tsc_ms(&cal, BACKLOG_MS);
    uint64_t next = rdtsc() + (dirty ? 0 : period);
    for (;;) {
        uint64_t now = rdtsc();
        int64_t ahead = (int64_t)(next - now);
        if (ahead > 0) {
            if ((uint64_t)ahead > period) {
                next = now; /* the TSC went backwards (restored elsewhere): start again */
            } else if (poll) {
                cpu_pause();
            } else {
                cpu_sti_hlt();
                cpu_cli();
            }
            continue;
        }
        if ((uint64_t)-ahead > backlog)
            next = now; /* paused, or slower than asked: do not catch up in a burst */
        if (dirty)
            step_and_report();
        else
            heartbeat();
        next += period;
    }
}
