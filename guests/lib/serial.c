#include "serial.h"
#include "io.h"

void serial_init(void)
{
    outb(COM1_PORT + UART_IER, 0x00);
    outb(COM1_PORT + UART_LCR, 0x80); /* DLAB on */
    outb(COM1_PORT + 0, 0x01);        /* divisor 1: 115200 baud */
    outb(COM1_PORT + 1, 0x00);
    outb(COM1_PORT + UART_LCR, 0x03); /* 8N1, DLAB off */
    outb(COM1_PORT + UART_FCR, 0x07); /* enable and clear FIFOs, 1-byte trigger */
    outb(COM1_PORT + UART_MCR, 0x0b); /* DTR | RTS | OUT2 (routes the IRQ on PCs) */
}

void serial_putc(char c)
{
    /* Bounded wait: a missing or broken UART must not hang the guest. */
    for (uint32_t i = 0; i < 100000; i++) {
        if (inb(COM1_PORT + UART_LSR) & UART_LSR_THRE)
            break;
        cpu_pause();
    }
    outb(COM1_PORT + UART_THR, (uint8_t)c);
}

void serial_write(const char *s, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        serial_putc(s[i]);
}

void serial_puts(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

uint8_t serial_wait_byte(void)
{
    while (!(inb(COM1_PORT + UART_LSR) & UART_LSR_DR))
        cpu_pause();
    return inb(COM1_PORT + UART_RBR);
}
