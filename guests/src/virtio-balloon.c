/* virtio-balloon: drives the first virtio-balloon device (PCI 1af4:1045) in long mode,
 * polling (no interrupts). Negotiates VERSION_1, STATS_VQ and PAGE_REPORTING when offered,
 * sets up inflateq (0), deflateq (1), statsq (2 when negotiated) and reporting_vq (next
 * index when negotiated), and puts a statistics buffer on statsq. Then it writes a marker
 * into the first 8 bytes of every 4 KiB page of `mib=<n>` MiB (default 16) from 16 MiB up,
 * so the host has to back them, and follows the host's target (config num_pages):
 * inflating sends those pages' frame numbers (256 per request) and updates `actual`;
 * deflating sends them back and checks that each page now reads as zero (the host
 * discarded it). After deflating to 0 it touches the pages again, reports them as free
 * pages (1 MiB buffers) when PAGE_REPORTING was negotiated, gives the host time to measure
 * (until its next statistics request, at most 10 s) and checks they read as zero.
 * Whenever the device returns the statistics buffer it is refilled and re-queued
 * (total-memory, free-memory, available-memory, and minor-faults = buffers sent so far).
 * Output:
 *   virtio-balloon 00:<slot>.0 features 0x<negotiated>
 *   touched <pages> pages
 *   inflated <pages in balloon>                   (each time the balloon grows)
 *   deflated <pages> zeroed <pages read as zero>  (each time it shrinks)
 *   reported <pages>                              (with PAGE_REPORTING, then waits up to
 *                                                  10 s for a statistics request)
 *   report zeroed <pages read as zero>
 *   stats buffers <n>
 * Fails on a missing device, a request the device does not complete within 5 s, a deflated
 * or reported page that kept its marker, or no target change within 120 s. */
#include "io.h"
#include "longmode.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"
#include "virtio.h"

const char test_name[] = "virtio-balloon";

#define BALLOON_F_STATS_VQ (1ull << 1)
#define BALLOON_F_PAGE_REPORTING (1ull << 5)
#define CFG_NUM_PAGES 0
#define CFG_ACTUAL 4
#define STAT_MINFLT 3
#define STAT_MEMFREE 4
#define STAT_MEMTOT 5
#define STAT_AVAIL 6

#define PAGE_SIZE 4096u
#define PFNS_PER_REQUEST 256u
#define TOUCH_BASE (16u << 20)
#define REPORT_BUFFER (1u << 20)
#define REPORT_BUFFERS_PER_CHAIN 8u
#define TIMEOUT_MS 5000u
#define WAIT_FOR_HOST_MS 120000ull

struct balloon_stat {
    uint16_t tag;
    uint64_t val;
} __attribute__((packed));

static struct virtq inflateq, deflateq, statsq, reportq;
static uint32_t pfns[PFNS_PER_REQUEST];
static struct balloon_stat stats[4];
static struct virtio_dev dev;
static uint64_t ram_bytes;
static uint32_t touched, in_balloon, stats_sent;
static int have_stats, have_reporting;

static volatile uint64_t *page_word(uint32_t page)
{
    return (volatile uint64_t *)(uintptr_t)(TOUCH_BASE + (uint64_t)page * PAGE_SIZE);
}

static uint64_t marker(uint32_t page, uint64_t salt) { return 0x5a5a000000000000ull ^ salt ^ page; }

static void touch(uint32_t first, uint32_t count, uint64_t salt)
{
    for (uint32_t p = first; p < first + count; p++)
        *page_word(p) = marker(p, salt);
}

static uint32_t count_zero(uint32_t first, uint32_t count)
{
    uint32_t zero = 0;
    for (uint32_t p = first; p < first + count; p++)
        if (*page_word(p) == 0)
            zero++;
    return zero;
}

static void complete(struct virtq *q, const char *what)
{
    virtq_notify(q);
    if (virtq_wait_used(q, NULL, NULL, TIMEOUT_MS) != 0)
        test_fail("%s request not completed (used.idx %u)", what, virtq_used_idx(q));
}

/* Sends the frame numbers of touched pages [first, first + count) on `q`. */
static void send_pages(struct virtq *q, uint32_t first, uint32_t count, const char *what)
{
    uint32_t base_pfn = TOUCH_BASE / PAGE_SIZE;
    while (count > 0) {
        uint32_t n = count < PFNS_PER_REQUEST ? count : PFNS_PER_REQUEST;
        for (uint32_t i = 0; i < n; i++)
            pfns[i] = base_pfn + first + i;
        struct virtq_buf b = { (uint64_t)(uintptr_t)pfns, n * 4, 0 };
        if (virtq_add(q, &b, 1) < 0)
            test_fail("no free %s descriptor", what);
        complete(q, what);
        first += n;
        count -= n;
    }
}

static void fill_stats(void)
{
    uint64_t used = (uint64_t)(touched - in_balloon) * PAGE_SIZE;
    stats[0] = (struct balloon_stat){ STAT_MEMTOT, ram_bytes };
    stats[1] = (struct balloon_stat){ STAT_MEMFREE, ram_bytes - TOUCH_BASE - used };
    stats[2] = (struct balloon_stat){ STAT_AVAIL, ram_bytes - TOUCH_BASE - used };
    stats[3] = (struct balloon_stat){ STAT_MINFLT, stats_sent + 1 };
}

static void queue_stats(void)
{
    fill_stats();
    struct virtq_buf b = { (uint64_t)(uintptr_t)stats, sizeof(stats), 0 };
    if (virtq_add(&statsq, &b, 1) < 0)
        test_fail("no free stats descriptor");
    virtq_notify(&statsq);
    stats_sent++;
}

/* The device hands the stats buffer back to ask for fresh numbers. */
static void serve_stats(void)
{
    if (have_stats && virtq_get_used(&statsq, NULL, NULL))
        queue_stats();
}

static void set_actual(void) { virtio_cfg_write32(&dev, CFG_ACTUAL, in_balloon); }

/* Reports touched pages [0, touched) as free in 1 MiB buffers, several per chain. */
static void report_free_pages(void)
{
    uint32_t per_buffer = REPORT_BUFFER / PAGE_SIZE;
    uint32_t page = 0;
    while (page < touched) {
        struct virtq_buf bufs[REPORT_BUFFERS_PER_CHAIN];
        unsigned n = 0;
        while (n < REPORT_BUFFERS_PER_CHAIN && page < touched) {
            uint32_t count = touched - page < per_buffer ? touched - page : per_buffer;
            bufs[n++] = (struct virtq_buf){ TOUCH_BASE + (uint64_t)page * PAGE_SIZE, count * PAGE_SIZE, 1 };
            page += count;
        }
        if (virtq_add(&reportq, bufs, n) < 0)
            test_fail("no free reporting descriptors");
        complete(&reportq, "free page report");
    }
}

static void delay_ms(uint32_t ms)
{
    uint64_t start = rdtsc();
    while (rdtsc() - start < (uint64_t)ms * (TSC_PER_SECOND_GUESS / 1000))
        cpu_pause();
}

void kmain64(uint64_t magic, uint64_t mbi_address)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%llx", (unsigned long long)magic);
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uintptr_t)mbi_address;
    uint32_t mib = 16;
    if ((mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline) {
        const char *v = cmdline_find((const char *)(uintptr_t)mbi->cmdline, 4096, "mib");
        if (v && (parse_u32(v, &mib) != 0 || mib == 0 || mib > 1024))
            test_fail("bad mib= value");
    }
    if (!(mbi->flags & MB_INFO_MEMORY))
        test_fail("no memory size in the multiboot info");
    ram_bytes = ((uint64_t)mbi->mem_upper + 1024) * 1024;
    if (TOUCH_BASE + ((uint64_t)mib << 20) > ram_bytes)
        test_fail("mib=%u does not fit above 16 MiB in %llu MiB of RAM", mib, (unsigned long long)(ram_bytes >> 20));

    int r = virtio_find(VIRTIO_ID_BALLOON, 0, &dev);
    if (r != 0)
        test_fail("virtio-balloon: %s", virtio_find_error(r));
    if ((r = virtio_init(&dev, VIRTIO_F_VERSION_1 | BALLOON_F_STATS_VQ | BALLOON_F_PAGE_REPORTING)) != 0)
        test_fail("feature negotiation failed (%d), offered 0x%llx", r, (unsigned long long)dev.offered);
    have_stats = (dev.features & BALLOON_F_STATS_VQ) != 0;
    have_reporting = (dev.features & BALLOON_F_PAGE_REPORTING) != 0;
    kprintf("virtio-balloon 00:%02x.%u features 0x%llx\n", dev.pci.slot, dev.pci.func, (unsigned long long)dev.features);

    /* Absent queues take no index: reporting follows stats only if stats exist. */
    uint16_t next = 0;
    if ((r = virtq_setup(&dev, &inflateq, next++, 64, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("inflateq setup failed (%d)", r);
    if ((r = virtq_setup(&dev, &deflateq, next++, 64, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("deflateq setup failed (%d)", r);
    if (have_stats && (r = virtq_setup(&dev, &statsq, next++, 64, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("statsq setup failed (%d)", r);
    if (have_reporting && (r = virtq_setup(&dev, &reportq, next++, 64, VIRTIO_MSI_NO_VECTOR)) != 0)
        test_fail("reporting_vq setup failed (%d)", r);
    virtio_driver_ok(&dev);
    if (!(virtio_get_status(&dev) & VIRTIO_STATUS_DRIVER_OK))
        test_fail("DRIVER_OK did not stick (status 0x%x)", virtio_get_status(&dev));
    if (have_stats)
        queue_stats();

    touched = mib * ((1u << 20) / PAGE_SIZE);
    touch(0, touched, 0);
    kprintf("touched %u pages\n", touched);

    /* Follow the target until the balloon has been inflated and deflated back to 0. */
    int inflated_once = 0;
    uint64_t idle_since = rdtsc();
    for (;;) {
        serve_stats();
        uint32_t target = virtio_cfg_read32(&dev, CFG_NUM_PAGES);
        if (target > in_balloon && in_balloon < touched) {
            uint32_t n = target - in_balloon;
            if (n > touched - in_balloon)
                n = touched - in_balloon;
            send_pages(&inflateq, in_balloon, n, "inflate");
            in_balloon += n;
            set_actual();
            kprintf("inflated %u\n", in_balloon);
            inflated_once = 1;
            idle_since = rdtsc();
        } else if (target < in_balloon) {
            uint32_t n = in_balloon - target;
            send_pages(&deflateq, target, n, "deflate");
            in_balloon = target;
            set_actual();
            uint32_t zero = count_zero(target, n);
            kprintf("deflated %u zeroed %u\n", n, zero);
            if (zero != n)
                test_fail("%u deflated pages kept their contents: the host did not discard them", n - zero);
            idle_since = rdtsc();
            if (in_balloon == 0 && inflated_once)
                break;
        } else if (rdtsc() - idle_since > WAIT_FOR_HOST_MS * (TSC_PER_SECOND_GUESS / 1000)) {
            test_fail("no balloon target change for 120 s (target %u, balloon %u)", target, in_balloon);
        }
        delay_ms(2);
    }

    if (have_reporting) {
        touch(0, touched, 0x77);
        report_free_pages();
        kprintf("reported %u\n", touched);
        /* Reading the pages back makes the host back them again: first give the host up to
         * 10 s to look at its memory, ending early when it asks for statistics. */
        uint64_t start = rdtsc();
        while (have_stats && rdtsc() - start < 10000ull * (TSC_PER_SECOND_GUESS / 1000)) {
            if (virtq_get_used(&statsq, NULL, NULL)) {
                queue_stats();
                break;
            }
            delay_ms(2);
        }
        uint32_t zero = count_zero(0, touched);
        kprintf("report zeroed %u\n", zero);
        if (zero != touched)
            test_fail("%u reported pages kept their contents", touched - zero);
    }
    serve_stats();
    kprintf("stats buffers %u\n", stats_sent);
    virtio_reset(&dev);
    test_pass();
}
