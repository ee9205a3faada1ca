#include "print.h"
#include "serial.h"

struct sink {
    char *buf;   /* NULL: write to the serial port */
    size_t size;
    size_t len;
};

static void sink_put(struct sink *s, char c)
{
    if (!s->buf)
        serial_putc(c);
    else if (s->len + 1 < s->size)
        s->buf[s->len] = c;
    s->len++;
}

/* Divides *n by base in place and returns the remainder, using only 32-bit divisions
 * so that 32-bit builds need no __udivdi3. */
static unsigned divmod(uint64_t *n, unsigned base)
{
#if defined(__x86_64__)
    unsigned r = (unsigned)(*n % base);
    *n /= base;
    return r;
#else
    uint32_t hi = (uint32_t)(*n >> 32), lo = (uint32_t)*n;
    uint32_t qhi = hi / base, r = hi % base, qlo;
    __asm__("divl %4" : "=a"(qlo), "=d"(r) : "a"(lo), "d"(r), "rm"(base));
    *n = ((uint64_t)qhi << 32) | qlo;
    return r;
#endif
}

static void put_number(struct sink *s, uint64_t v, unsigned base, int upper, int neg, int width, int zero, int left)
{
    char tmp[24];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[divmod(&v, base)];
    } while (v);
    int len = n + (neg ? 1 : 0);
    if (!left && !zero) {
        for (; width > len; width--)
            sink_put(s, ' ');
    }
    if (neg)
        sink_put(s, '-');
    if (!left && zero) {
        for (; width > len; width--)
            sink_put(s, '0');
    }
    while (n)
        sink_put(s, tmp[--n]);
    if (left) {
        for (; width > len; width--)
            sink_put(s, ' ');
    }
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            sink_put(s, *fmt);
            continue;
        }
        fmt++;
        int zero = 0, left = 0, width = 0, lng = 0;
        for (;; fmt++) {
            if (*fmt == '0')
                zero = 1;
            else if (*fmt == '-')
                left = 1;
            else
                break;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z') {
            lng += (*fmt == 'z') ? (sizeof(size_t) == 8 ? 2 : 1) : 1;
            fmt++;
        }
        uint64_t u;
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v;
            if (lng >= 2)
                v = va_arg(ap, long long);
            else if (lng == 1)
                v = va_arg(ap, long);
            else
                v = va_arg(ap, int);
            put_number(s, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, 10, 0, v < 0, width, zero, left);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
            if (lng >= 2)
                u = va_arg(ap, unsigned long long);
            else if (lng == 1)
                u = va_arg(ap, unsigned long);
            else
                u = va_arg(ap, unsigned int);
            put_number(s, u, *fmt == 'u' ? 10 : 16, *fmt == 'X', 0, width, zero, left);
            break;
        case 'p':
            sink_put(s, '0');
            sink_put(s, 'x');
            put_number(s, (uintptr_t)va_arg(ap, void *), 16, 0, 0, width, zero, left);
            break;
        case 'c':
            sink_put(s, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            int len = 0;
            while (str[len])
                len++;
            if (!left)
                for (; width > len; width--)
                    sink_put(s, ' ');
            for (int i = 0; i < len; i++)
                sink_put(s, str[i]);
            for (; width > len; width--)
                sink_put(s, ' ');
            break;
        }
        case '%':
            sink_put(s, '%');
            break;
        case '\0':
            return;
        default:
            sink_put(s, '%');
            sink_put(s, *fmt);
            break;
        }
    }
}

void kvprintf(const char *fmt, va_list ap)
{
    struct sink s = { 0, 0, 0 };
    format(&s, fmt, ap);
}

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
}

int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct sink s = { buf, size, 0 };
    format(&s, fmt, ap);
    if (size)
        buf[s.len < size ? s.len : size - 1] = '\0';
    return (int)s.len;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = kvsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

static char printable(uint8_t b) { return b >= 0x20 && b < 0x7f ? (char)b : '.'; }

void print_bytes_as_text(const void *p, size_t n)
{
    const uint8_t *b = p;
    serial_putc('"');
    for (size_t i = 0; i < n; i++)
        serial_putc(printable(b[i]));
    serial_putc('"');
}

void print_string_quoted(const char *s, size_t max)
{
    serial_putc('"');
    for (size_t i = 0; i < max && s[i]; i++)
        serial_putc(printable((uint8_t)s[i]));
    serial_putc('"');
}
