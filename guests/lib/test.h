/* Test result reporting and the isa-debug-exit port.
 *
 * Each guest defines `const char test_name[]`. test_pass() prints
 * "SKIFF-TEST PASS <name>" and writes 0x10 to port 0xf4 (exit status 33);
 * test_fail() prints "SKIFF-TEST FAIL <name>: <reason>" and writes 0x11 (status 35).
 * Both then halt forever with interrupts off, in case the port does nothing. */
#ifndef KIT_TEST_H
#define KIT_TEST_H

#include <stdint.h>

#define DEBUG_EXIT_PORT 0xf4
#define DEBUG_EXIT_PASS 0x10
#define DEBUG_EXIT_FAIL 0x11

extern const char test_name[];

__attribute__((noreturn)) void test_pass(void);
__attribute__((noreturn, format(printf, 1, 2))) void test_fail(const char *fmt, ...);
__attribute__((noreturn)) void halt_forever(void);
/* Writes v to the debug-exit port (the VMM exits with status (v << 1) | 1). */
void debug_exit(uint32_t v);
/* Called by the entry code if the guest's main function returns: fails the test. */
__attribute__((noreturn)) void kmain_returned(void);

#endif
