/* uart-echo: interrupt-driven UART receive.
 * Enables the receive-data interrupt (IER bit 0) of COM1 and IRQ4 through the PIC
 * (vector 0x24), plus the PIT at 100 Hz on IRQ0 as the timeout clock, prints
 * "ready", then collects bytes in the IRQ4 handler until '\r' or '\n' (leading line
 * terminators are skipped; at most 63 bytes are kept). Prints
 *   got: <line>
 * (bytes outside 0x20..0x7e shown as '.') and passes. Fails after 20 s (2000 PIT
 * ticks) without a complete line, or if the line is longer than 63 bytes.
 * The host types the line after it sees "ready", e.g. "skiff\n". */
#include "idt.h"
#include "io.h"
#include "pic.h"
#include "print.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "uart-echo";

#define TIMEOUT_TICKS 2000
#define LINE_MAX 63

static volatile uint32_t ticks, line_done, overflow, rx_irqs;
static volatile uint32_t line_len;
static char line[LINE_MAX + 1];

static void on_pit(struct isr_frame *f)
{
    (void)f;
    ticks++;
    pic_eoi(0);
}

static void on_uart(struct isr_frame *f)
{
    (void)f;
    rx_irqs++;
    for (int n = 0; n < 64 && (inb(COM1_PORT + UART_LSR) & UART_LSR_DR); n++) {
        char c = (char)inb(COM1_PORT + UART_RBR);
        if (line_done)
            continue;
        if (c == '\r' || c == '\n') {
            if (line_len > 0)
                line_done = 1;
        } else if (line_len < LINE_MAX) {
            line[line_len++] = c;
        } else {
            overflow = 1;
        }
    }
    (void)inb(COM1_PORT + UART_IIR);
    pic_eoi(4);
}

void kmain(uint32_t magic, const void *info)
{
    (void)magic;
    (void)info;
    serial_init();
    idt_init();
    idt_set_handler(VEC_PIC_BASE + 0, on_pit);
    idt_set_handler(VEC_PIC_BASE + 4, on_uart);
    pic_remap(VEC_PIC_BASE, VEC_PIC2_BASE);
    pit_start_periodic(100);
    outb(COM1_PORT + UART_IER, 0x01); /* received data available */
    pic_unmask(0);
    pic_unmask(4);
    kprintf("ready\n");
    while (!line_done && !overflow && ticks < TIMEOUT_TICKS)
        cpu_sti_hlt();
    cpu_cli();
    outb(COM1_PORT + UART_IER, 0x00);
    pic_mask_all();
    if (overflow)
        test_fail("line longer than %u bytes", LINE_MAX);
    if (!line_done)
        test_fail("no line within %u PIT ticks (%u bytes, %u rx interrupts)", TIMEOUT_TICKS, line_len, rx_irqs);
    kprintf("got: ");
    for (uint32_t i = 0; i < line_len; i++)
        serial_putc(line[i] >= 0x20 && line[i] < 0x7f ? line[i] : '.');
    kprintf("\n");
    test_pass();
}
