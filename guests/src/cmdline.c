/* cmdline: the multiboot command line exactly as received, split into argv the way test
 * kernels split it. GRUB and QEMU pass "<kernel file name> <arguments>" (QEMU: the -kernel
 * path as given, a space, the -append text), so argv[0] is the kernel's own name.
 *
 * Output lines:
 *   cmdline "<string>"          every byte, non-printable ones as '.'
 *   argc <n>
 *   argv[<i>] "<word>"          for each word (at most 16)
 * PASS when argv[0] is this kernel's file name (its last path component is "cmdline.elf")
 * and argv[1] is "first": started with `-append "first ..."`, a loader that drops the file
 * name shows "first" as argv[0] and fails here. */
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "string.h"
#include "test.h"

const char test_name[] = "cmdline";

#define MAX_STRING 4096
#define MAX_WORDS 16

static int word_is(const char *word, size_t length, const char *text)
{
    return length == strlen(text) && strncmp(word, text, length) == 0;
}

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%x", magic);
    if (!(mbi->flags & MB_INFO_CMDLINE) || !mbi->cmdline)
        test_fail("no command line");
    const char *cmdline = (const char *)(uintptr_t)mbi->cmdline;
    kprintf("cmdline ");
    print_string_quoted(cmdline, MAX_STRING);
    kprintf("\n");

    const char *starts[MAX_WORDS];
    size_t lengths[MAX_WORDS];
    size_t argc = cmdline_words(cmdline, MAX_STRING, starts, lengths, MAX_WORDS);
    kprintf("argc %u\n", (unsigned)argc);
    for (size_t i = 0; i < argc && i < MAX_WORDS; i++) {
        kprintf("argv[%u] \"", (unsigned)i);
        for (size_t k = 0; k < lengths[i]; k++)
            serial_putc(starts[i][k]);
        kprintf("\"\n");
    }

    if (argc < 2)
        test_fail("expected the kernel's file name and at least one argument, got %u words", (unsigned)argc);
    /* argv[0]: the last path component must be this kernel's file name. */
    size_t base = 0;
    for (size_t k = 0; k < lengths[0]; k++)
        if (starts[0][k] == '/')
            base = k + 1;
    if (!word_is(starts[0] + base, lengths[0] - base, "cmdline.elf"))
        test_fail("argv[0] is not this kernel's file name");
    if (!word_is(starts[1], lengths[1], "first"))
        test_fail("argv[1] is not \"first\"");
    test_pass();
}
