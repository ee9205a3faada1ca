/* Freestanding string helpers (gcc may also emit calls to memcpy/memset/memmove/memcmp). */
#ifndef KIT_STRING_H
#define KIT_STRING_H

#include <stddef.h>
#include <stdint.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strncmp(const char *a, const char *b, size_t n);

/* Finds `key` followed by '=' as a whitespace-separated token of `cmdline`
 * (at most `max` bytes are examined) and returns a pointer to its value, or NULL. */
const char *cmdline_find(const char *cmdline, size_t max, const char *key);
/* A multiboot command line starts with the kernel's file name, as GRUB and QEMU pass it
 * ("k.elf a b"): returns the text after that first word and the spaces following it. */
const char *multiboot_args(const char *cmdline, size_t max);
/* Splits `cmdline` (at most `max` bytes) into whitespace-separated words: up to `max_words`
 * (start, length) pairs; returns the number of words (which may exceed `max_words`). */
size_t cmdline_words(const char *cmdline, size_t max, const char **starts, size_t *lengths, size_t max_words);
/* Parses an unsigned decimal or 0x-prefixed hex number; stops at the first non-digit.
 * Returns 0 on success, -1 if no digit was found or the value overflowed 32 bits. */
int parse_u32(const char *s, uint32_t *out);

#endif
