/* Small printf for the serial console and for buffers.
 * Supports %d %i %u %x %X %p %c %s %%, flags '-' and '0', a width, and the length
 * modifiers l, ll and z. 64-bit values work in 32-bit code without libgcc. */
#ifndef KIT_PRINT_H
#define KIT_PRINT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list ap);
/* Like snprintf: always NUL-terminates when size > 0; returns the untruncated length. */
int ksnprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* Prints exactly `n` bytes of `p` between double quotes; bytes outside 0x20..0x7e
 * (NUL included) are printed as '.'. */
void print_bytes_as_text(const void *p, size_t n);
/* Prints the NUL-terminated string `s` (at most `max` bytes) between double quotes,
 * non-printable bytes as '.'. */
void print_string_quoted(const char *s, size_t max);

#endif
