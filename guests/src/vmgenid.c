/* vmgenid: finds the VM Generation ID the VMM exposes through ACPI and watches it.
 *
 * RSDP (EBDA / 0xE0000 scan) -> XSDT or RSDT -> FADT -> DSDT, then each SSDT: the AML is
 * searched (lib/acpi.c acpi_aml_find_vmgenid) for a device whose scope has
 * Name(_CID or _HID, "VM_GEN_COUNTER") and Name(ADDR, Package(2){low32, high32}); the two
 * integers are the guest-physical address of the 16-byte GUID. QEMU's vmgenid device has a
 * Method ADDR instead, returning VGIA + 40 (its docs/specs/vmgenid.txt): when the device
 * has no ADDR package but the table has Name(VGIA, DWordConst), that address is used
 * (form=qemu-vgia), so the watch can be exercised under QEMU too.
 * Then the GUID is read every 100 ms of guest time (LAPIC timer calibrated against PIT
 * channel 2, `sti; hlt` in between); each change is printed.
 *
 * Command line: require=1 (FAIL instead of passing when there is no GUID),
 * stop=changes:N (PASS after N changes; N = 0 passes right after the first lines; default:
 * watch forever).
 * Output (GUIDs as 32 lower-case hex digits, the 16 bytes in memory order):
 *   VMGENID table=<DSDT|SSDT> form=<addr-package|qemu-vgia>
 *   VMGENID addr=0x<addr> guid=<32 hex digits>
 *   VMGENID changed guid=<32 hex digits>                (each change)
 * or
 *   VMGENID none                                        (then PASS, or FAIL with require=1)
 * Fails on an ADDR of 0 or a GUID not below 4 GiB (this guest runs without paging). */
#include "acpi.h"
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

const char test_name[] = "vmgenid";

#define VEC_TICK VEC_LAPIC_TIMER
#define POLL_MS 100
#define QEMU_VMGENID_GUID_OFFSET 40
#define MAX_SSDTS 16

static volatile uint32_t ticks;

static void on_tick(struct isr_frame *f)
{
    (void)f;
    ticks++;
    lapic_eoi();
}

static int search(const struct acpi_header *t, uint64_t *addr, const char **form)
{
    const uint8_t *aml = (const uint8_t *)t + sizeof(struct acpi_header);
    uint32_t len = t->length - (uint32_t)sizeof(struct acpi_header);
    int r = acpi_aml_find_vmgenid(aml, len, addr);
    if (r == 0) {
        *form = "addr-package";
        return 0;
    }
    uint32_t vgia;
    if (r == -2 && acpi_aml_find_name_dword(aml, len, "VGIA", &vgia) == 0 && vgia) {
        *addr = (uint64_t)vgia + QEMU_VMGENID_GUID_OFFSET;
        *form = "qemu-vgia";
        return 0;
    }
    return r;
}

/* Reads the GUID until two reads agree (the VMM may be writing it). */
static void read_guid(uint64_t addr, uint8_t out[16])
{
    const volatile uint8_t *g = (const volatile uint8_t *)(uintptr_t)addr;
    uint8_t again[16];
    for (;;) {
        for (int i = 0; i < 16; i++)
            out[i] = g[i];
        for (int i = 0; i < 16; i++)
            again[i] = g[i];
        if (memcmp(out, again, 16) == 0)
            return;
    }
}

static void print_guid(const uint8_t g[16])
{
    for (int i = 0; i < 16; i++)
        kprintf("%02x", g[i]);
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    const char *cmdline = (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline ? (const char *)(uintptr_t)mbi->cmdline : "";
    const char *v;
    uint32_t require = 0, stop_changes = 0;
    int stop = 0;
    if ((v = cmdline_find(cmdline, 512, "require")) && parse_u32(v, &require) != 0)
        test_fail("bad require=%s", v);
    if ((v = cmdline_find(cmdline, 512, "stop"))) {
        if (strncmp(v, "changes:", 8) != 0 || parse_u32(v + 8, &stop_changes) != 0)
            test_fail("bad stop=%s (expected stop=changes:N)", v);
        stop = 1;
    }

    const struct acpi_rsdp *rsdp = acpi_find_rsdp();
    const struct acpi_header *fadt = rsdp ? acpi_find_table(rsdp, "FACP", 0) : NULL;
    const struct acpi_header *dsdt = fadt ? acpi_fadt_dsdt(fadt) : NULL;
    uint64_t addr = 0;
    const char *form = 0, *table = 0;
    if (dsdt && search(dsdt, &addr, &form) == 0)
        table = "DSDT";
    for (unsigned i = 0; rsdp && !table && i < MAX_SSDTS; i++) {
        const struct acpi_header *ssdt = acpi_find_table(rsdp, "SSDT", i);
        if (!ssdt)
            break;
        if (search(ssdt, &addr, &form) == 0)
            table = "SSDT";
    }
    if (!table) {
        kprintf("VMGENID none\n");
        if (require)
            test_fail("no VM_GEN_COUNTER device with an ADDR in the %s", rsdp ? "DSDT or SSDTs" : "ACPI tables (no RSDP)");
        test_pass();
    }
    kprintf("VMGENID table=%s form=%s\n", table, form);
    if (addr == 0 || addr > 0x100000000ull - 16)
        test_fail("GUID address 0x%llx is not usable (zero, or not below 4 GiB)", (unsigned long long)addr);
    uint8_t guid[16], now[16];
    read_guid(addr, guid);
    kprintf("VMGENID addr=0x%llx guid=", (unsigned long long)addr);
    print_guid(guid);
    kprintf("\n");
    if (stop && stop_changes == 0)
        test_pass();

    idt_init();
    idt_set_handler(VEC_TICK, on_tick);
    pic_remap(VEC_PIC_BASE, VEC_PIC2_BASE); /* all legacy IRQs masked */
    lapic_enable(VEC_LAPIC_SPURIOUS);
    struct clock_cal cal;
    if (clock_calibrate(50, 1, &cal) != 0 || cal.lapic_khz == 0)
        test_fail("LAPIC timer calibration against PIT channel 2 failed");
    lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_DIVIDE_16);
    lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VEC_TICK);
    lapic_write(LAPIC_TIMER_INITIAL, cal.lapic_khz * POLL_MS);
    uint32_t changes = 0, seen = ticks;
    for (;;) {
        cpu_cli();
        if (ticks == seen) {
            cpu_sti_hlt();
            continue;
        }
        seen = ticks;
        read_guid(addr, now);
        if (memcmp(now, guid, 16) != 0) {
            memcpy(guid, now, 16);
            kprintf("VMGENID changed guid=");
            print_guid(guid);
            kprintf("\n");
            changes++;
            if (stop && changes >= stop_changes)
                test_pass();
        }
    }
}
