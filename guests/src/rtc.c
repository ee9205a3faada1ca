/* rtc: reads the CMOS real-time clock and prints
 *   rtc regB 0x<b> <bcd|binary> <24h|12h>
 *   rtc YYYY-MM-DD HH:MM:SS
 * Waits for update-in-progress (register A bit 7) to clear, reads until two
 * consecutive reads agree, decodes BCD or binary and 12- or 24-hour format as
 * register B says, takes the century from register 0x32 if non-zero (else 20).
 * Fails if the time never settles or a field is out of range.
 * Optional multiboot command line `regb=<n>` writes register B first (e.g. regb=0x04
 * for binary 12-hour mode, regb=0x06 for binary 24-hour mode) to exercise the decoders. */
#include "io.h"
#include "print.h"
#include "multiboot.h"
#include "serial.h"
#include "string.h"
#include "test.h"

const char test_name[] = "rtc";

struct rtc_time {
    uint8_t sec, min, hour, day, mon, year, century;
};

static uint8_t cmos_read(uint8_t reg)
{
    outb(0x70, reg); /* bit 7 clear: NMI stays enabled */
    return inb(0x71);
}

static int wait_not_updating(void)
{
    for (uint32_t i = 0; i < 1000000; i++) {
        if (!(cmos_read(0x0a) & 0x80))
            return 0;
        cpu_pause();
    }
    return -1;
}

static void read_raw(struct rtc_time *t)
{
    t->sec = cmos_read(0x00);
    t->min = cmos_read(0x02);
    t->hour = cmos_read(0x04);
    t->day = cmos_read(0x07);
    t->mon = cmos_read(0x08);
    t->year = cmos_read(0x09);
    t->century = cmos_read(0x32);
}

static int same(const struct rtc_time *a, const struct rtc_time *b)
{
    return a->sec == b->sec && a->min == b->min && a->hour == b->hour && a->day == b->day &&
           a->mon == b->mon && a->year == b->year && a->century == b->century;
}

static unsigned bcd(uint8_t v) { return (unsigned)(v >> 4) * 10u + (v & 0x0fu); }

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic == MULTIBOOT_BOOTLOADER_MAGIC && (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline) {
        const char *v = cmdline_find((const char *)(uintptr_t)mbi->cmdline, 4096, "regb");
        uint32_t regb;
        if (v) {
            if (parse_u32(v, &regb) != 0 || regb > 0xff)
                test_fail("bad regb= value");
            outb(0x70, 0x0b);
            outb(0x71, (uint8_t)(regb & 0x7f)); /* never leave SET (bit 7) on */
        }
    }

    struct rtc_time a, b;
    int settled = 0;
    for (int tries = 0; tries < 10 && !settled; tries++) {
        if (wait_not_updating() != 0)
            test_fail("update-in-progress never cleared");
        read_raw(&a);
        if (wait_not_updating() != 0)
            test_fail("update-in-progress never cleared");
        read_raw(&b);
        settled = same(&a, &b);
    }
    if (!settled)
        test_fail("time did not settle");

    uint8_t regb = cmos_read(0x0b);
    int binary = (regb & 0x04) != 0, h24 = (regb & 0x02) != 0;
    kprintf("rtc regB 0x%02x %s %s\n", regb, binary ? "binary" : "bcd", h24 ? "24h" : "12h");

    int pm = (a.hour & 0x80) != 0;
    uint8_t hour_raw = a.hour & 0x7f;
    unsigned sec = binary ? a.sec : bcd(a.sec);
    unsigned min = binary ? a.min : bcd(a.min);
    unsigned hour = binary ? hour_raw : bcd(hour_raw);
    unsigned day = binary ? a.day : bcd(a.day);
    unsigned mon = binary ? a.mon : bcd(a.mon);
    unsigned year = binary ? a.year : bcd(a.year);
    unsigned century = a.century ? (binary ? a.century : bcd(a.century)) : 20;
    if (!h24) {
        if (hour < 1 || hour > 12)
            test_fail("12-hour clock reads hour %u", hour);
        hour = (hour % 12) + (pm ? 12 : 0);
    }
    kprintf("rtc %u%02u-%02u-%02u %02u:%02u:%02u\n", century, year, mon, day, hour, min, sec);
    if (sec > 59 || min > 59 || hour > 23 || day < 1 || day > 31 || mon < 1 || mon > 12 || year > 99 || century > 99)
        test_fail("field out of range");
    test_pass();
}
