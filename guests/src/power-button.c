/* power-button: the ACPI power button of a hardware-reduced platform, behind a Generic
 * Event Device, pressed by the host.
 *
 * RSDP (EBDA / 0xE0000 scan) -> XSDT or RSDT -> FADT -> DSDT, then each SSDT; the AML is
 * searched (lib/acpi_ged.c) for
 *   Device (...PWRB) { Name (_HID, EisaId ("PNP0C0C")) }
 *   Device (...GED_) { Name (_HID, "ACPI0013")
 *       Name (_CRS, ResourceTemplate () { Interrupt (...) { 5, 6 } })
 *       Method (_EVT, 1) { If (LEqual (Arg0, 6)) { Notify (\_SB.PWRB, 0x80) } ... } }
 * giving the GSI whose event notifies the power button device (its last NameSeg, "PWRB")
 * with 0x80; that GSI must be one of the GED's _CRS interrupts and below 16. The 8259 is
 * remapped to 0x20/0x28 with only that IRQ unmasked (GSI n = IRQ n), and the guest waits
 * in `sti; hlt`. On the interrupt it prints "PWRB pressed", sends the EOI and powers off
 * through ACPI S5 exactly as poweroff.elf does (lib/acpi_s5.c): success is the VMM's clean
 * power-off (exit status 0).
 *
 * Command line:
 *   timeout-ms=N   fail after N ms of guest time without a press (default 0: wait forever);
 *                  counted in 10-ms ticks of the LAPIC timer calibrated against PIT
 *                  channel 2, so a paused VM does not time out.
 *   press=fdc      test aid for a PC without a host button (QEMU pc): after "PWRB waiting"
 *                  the guest resets the floppy controller, which raises IRQ 6 itself.
 * Output:
 *   PWRB ged gsis=<g>,<g>,... button=<NameSeg>
 *   PWRB gsi=<n>
 *   PWRB waiting
 *   PWRB pressed
 *   acpi poweroff slp_typ <n>
 *   acpi poweroff via <sleep_control_reg|pm1a_cnt> <io|mem> 0x<addr>
 * Fails (SKIFF-TEST FAIL power-button: ...) when any piece is missing, the GSI is 16 or
 * more, there is no _S5_, no press comes within timeout-ms, or the VM still runs after the
 * S5 write. */
#include "acpi.h"
#include "acpi_ged.h"
#include "acpi_s5.h"
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

const char test_name[] = "power-button";

#define VEC_TICK VEC_LAPIC_TIMER
#define TICK_MS 10
#define MAX_SSDTS 16
#define FDC_DOR 0x3f2

static volatile uint32_t presses, ticks;
static unsigned button_irq;

/* In-service bit of an IRQ (OCW3 "read ISR"): tells a spurious IRQ7/IRQ15 from a real one. */
static int in_service(unsigned irq)
{
    uint16_t cmd = irq < 8 ? 0x20 : 0xa0;
    outb(cmd, 0x0b);
    return (inb(cmd) >> (irq & 7)) & 1;
}

static void on_button(struct isr_frame *f)
{
    (void)f;
    if ((button_irq & 7) == 7 && !in_service(button_irq)) {
        if (button_irq >= 8)
            pic_eoi(0); /* a spurious IRQ15 still took the master's cascade input */
        return;
    }
    presses++;
    pic_eoi(button_irq);
}

static void on_tick(struct isr_frame *f)
{
    (void)f;
    ticks++;
    lapic_eoi();
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    const char *cmdline = (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline ? (const char *)(uintptr_t)mbi->cmdline : "";
    const char *v;
    uint32_t timeout_ms = 0;
    int press_fdc = 0;
    if ((v = cmdline_find(cmdline, 512, "timeout-ms")) && parse_u32(v, &timeout_ms) != 0)
        test_fail("bad timeout-ms=%s", v);
    if ((v = cmdline_find(cmdline, 512, "press"))) {
        if (strncmp(v, "fdc", 3) != 0 || (v[3] && v[3] != ' '))
            test_fail("bad press=%s (expected press=fdc)", v);
        press_fdc = 1;
    }

    const struct acpi_rsdp *rsdp = acpi_find_rsdp();
    if (!rsdp)
        test_fail("no RSDP in 0xE0000-0xFFFFF or the EBDA");
    const struct acpi_header *fadt = acpi_find_table(rsdp, "FACP", 0);
    if (!fadt)
        test_fail("no FADT");
    const struct acpi_header *dsdt = acpi_fadt_dsdt(fadt);
    if (!dsdt)
        test_fail("no valid DSDT");
    const uint8_t *aml[1 + MAX_SSDTS];
    uint32_t len[1 + MAX_SSDTS];
    unsigned tables = 0;
    for (const struct acpi_header *t = dsdt; t && tables < 1 + MAX_SSDTS;
         t = acpi_find_table(rsdp, "SSDT", tables - 1)) {
        aml[tables] = (const uint8_t *)t + sizeof(struct acpi_header);
        len[tables] = t->length - (uint32_t)sizeof(struct acpi_header);
        tables++;
    }

    struct acpi_pwrb pb;
    switch (acpi_find_ged_power_button(aml, len, tables, &pb)) {
    case ACPI_PWRB_OK:
        break;
    case ACPI_PWRB_NO_GED:
        test_fail("no ACPI0013 (Generic Event Device) in the DSDT or SSDTs");
    case ACPI_PWRB_NO_GSIS:
        test_fail("the ACPI0013 device has no Interrupt in a Name(_CRS, Buffer)");
    case ACPI_PWRB_NO_EVT:
        test_fail("the ACPI0013 device has no _EVT method");
    case ACPI_PWRB_NO_BUTTON:
        test_fail("no PNP0C0C (power button) device in the DSDT or SSDTs");
    case ACPI_PWRB_NO_NOTIFY:
        test_fail("the ACPI0013 _EVT has no If (LEqual (Arg0, <gsi>)) { Notify (<path>.%s, 0x80) }", pb.button);
    case ACPI_PWRB_GSI_NOT_IN_CRS:
        test_fail("the ACPI0013 _EVT notifies %s for GSI %u, which is not among its %u _CRS interrupts", pb.button,
                  pb.gsi, pb.ged.gsi_count);
    }
    kprintf("PWRB ged gsis=");
    for (unsigned i = 0; i < pb.ged.gsi_count; i++)
        kprintf(i ? ",%u" : "%u", pb.ged.gsis[i]);
    kprintf(" button=%s\n", pb.button);
    kprintf("PWRB gsi=%u\n", pb.gsi);
    if (pb.gsi >= 16)
        test_fail("power button GSI %u is not below 16 (no 8259 IRQ)", pb.gsi);
    uint8_t typ_a, typ_b;
    if (acpi_find_s5(dsdt, &typ_a, &typ_b) != 0) /* checked now rather than after the press */
        test_fail("no _S5_ package in the DSDT");
    button_irq = pb.gsi;

    idt_init();
    idt_set_handler((uint8_t)(VEC_PIC_BASE + button_irq), on_button); /* 0x28 = VEC_PIC_BASE + 8 */
    pic_remap(VEC_PIC_BASE, VEC_PIC2_BASE); /* all IRQs masked */
    uint32_t limit_ticks = 0;
    if (timeout_ms) {
        idt_set_handler(VEC_TICK, on_tick);
        lapic_enable(VEC_LAPIC_SPURIOUS);
        struct clock_cal cal;
        if (clock_calibrate(50, 1, &cal) != 0 || cal.lapic_khz == 0)
            test_fail("LAPIC timer calibration against PIT channel 2 failed");
        limit_ticks = timeout_ms / TICK_MS + (timeout_ms % TICK_MS != 0);
        lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_DIVIDE_16);
        lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VEC_TICK);
        lapic_write(LAPIC_TIMER_INITIAL, cal.lapic_khz * TICK_MS);
    }
    pic_unmask(button_irq);
    kprintf("PWRB waiting\n");
    if (press_fdc) {
        outb(FDC_DOR, 0x00); /* reset asserted */
        for (volatile int i = 0; i < 100; i++)
            cpu_pause();
        outb(FDC_DOR, 0x0c); /* reset released, DMA/IRQ enabled: the controller raises IRQ 6 */
    }
    for (;;) {
        cpu_cli();
        if (presses)
            break;
        if (limit_ticks && ticks >= limit_ticks)
            test_fail("no power button press within %u ms", timeout_ms);
        cpu_sti_hlt();
    }
    if (timeout_ms)
        lapic_write(LAPIC_LVT_TIMER, LAPIC_LVT_MASKED);
    pic_mask_all();
    kprintf("PWRB pressed\n");
    acpi_s5_poweroff(fadt, dsdt);
    test_fail("still running");
}
