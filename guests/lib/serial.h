/* 16550 UART on COM1 (0x3f8), polled output. */
#ifndef KIT_SERIAL_H
#define KIT_SERIAL_H

#include <stdint.h>

#define COM1_PORT 0x3f8
#define UART_RBR 0 /* receive buffer (read, DLAB=0) */
#define UART_THR 0 /* transmit holding (write, DLAB=0) */
#define UART_IER 1 /* interrupt enable */
#define UART_IIR 2 /* interrupt identification (read) */
#define UART_FCR 2 /* FIFO control (write) */
#define UART_LCR 3 /* line control */
#define UART_MCR 4 /* modem control */
#define UART_LSR 5 /* line status */
#define UART_LSR_DR 0x01   /* data ready */
#define UART_LSR_THRE 0x20 /* transmit holding register empty */

/* 115200 8N1, FIFOs on (1-byte trigger), DTR|RTS|OUT2, all interrupts off. */
void serial_init(void);
/* Writes one byte, waiting (bounded) for THRE. No newline translation. */
void serial_putc(char c);
void serial_write(const char *s, uint32_t len);
void serial_puts(const char *s);
/* Waits, without a bound and printing nothing, until COM1 has received a byte (LSR data
 * ready: one port read and a pause per iteration), then reads and returns it. */
uint8_t serial_wait_byte(void);

#endif
