#include "test.h"
#include "io.h"
#include "print.h"

void halt_forever(void)
{
    for (;;) {
        cpu_cli();
        cpu_hlt();
    }
}

void debug_exit(uint32_t v)
{
    if (v <= 0xff)
        outb(DEBUG_EXIT_PORT, (uint8_t)v);
    else
        outl(DEBUG_EXIT_PORT, v);
}

void test_pass(void)
{
    kprintf("SKIFF-TEST PASS %s\n", test_name);
    debug_exit(DEBUG_EXIT_PASS);
    halt_forever();
}

void test_fail(const char *fmt, ...)
{
    va_list ap;
    kprintf("SKIFF-TEST FAIL %s: ", test_name);
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
    kprintf("\n");
    debug_exit(DEBUG_EXIT_FAIL);
    halt_forever();
}

void kmain_returned(void)
{
    test_fail("main returned");
}
