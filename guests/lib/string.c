#include "string.h"

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--)
        *d++ = (uint8_t)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

size_t strnlen(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n])
        n++;
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i])
            return (uint8_t)a[i] < (uint8_t)b[i] ? -1 : 1;
        if (!a[i])
            return 0;
    }
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

const char *cmdline_find(const char *cmdline, size_t max, const char *key)
{
    size_t klen = strlen(key);
    size_t len = strnlen(cmdline, max);
    size_t i = 0;
    while (i < len) {
        while (i < len && is_space(cmdline[i]))
            i++;
        if (i + klen < len && strncmp(cmdline + i, key, klen) == 0 && cmdline[i + klen] == '=')
            return cmdline + i + klen + 1;
        while (i < len && !is_space(cmdline[i]))
            i++;
    }
    return NULL;
}

const char *multiboot_args(const char *cmdline, size_t max)
{
    size_t len = strnlen(cmdline, max);
    size_t i = 0;
    while (i < len && is_space(cmdline[i]))
        i++;
    while (i < len && !is_space(cmdline[i]))
        i++;
    while (i < len && is_space(cmdline[i]))
        i++;
    return cmdline + i;
}

size_t cmdline_words(const char *cmdline, size_t max, const char **starts, size_t *lengths, size_t max_words)
{
    size_t len = strnlen(cmdline, max);
    size_t i = 0, n = 0;
    while (i < len) {
        while (i < len && is_space(cmdline[i]))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && !is_space(cmdline[i]))
            i++;
        if (n < max_words) {
            starts[n] = cmdline + start;
            lengths[n] = i - start;
        }
        n++;
    }
    return n;
}

int parse_u32(const char *s, uint32_t *out)
{
    uint32_t base = 10, v = 0;
    int digits = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    for (;; s++) {
        uint32_t d;
        char c = *s;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            break;
        if (v > (0xffffffffu - d) / base)
            return -1;
        v = v * base + d;
        digits++;
    }
    if (!digits)
        return -1;
    *out = v;
    return 0;
}
