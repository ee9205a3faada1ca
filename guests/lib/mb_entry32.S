/* Multiboot v1 header and 32-bit entry for ELF32 guests.
 * Entry state (multiboot spec): protected mode, paging off, eax = 0x2BADB002,
 * ebx = physical address of the multiboot information structure.
 * Calls kmain(magic, mbi) on the kit's own GDT and stack.
 * With MB_AOUT_KLUDGE defined the header also carries the address fields (flag bit 16),
 * taken from the linker symbols _load_start, _load_end and _bss_end. */
#include "selectors.h"

#define MB_MAGIC 0x1BADB002
#ifdef MB_AOUT_KLUDGE
#define MB_FLAGS 0x00010003 /* bit 16: address fields valid */
#else
#define MB_FLAGS 0x00000003 /* bit 0: page-align modules, bit 1: memory information */
#endif

    .section .multiboot, "a"
    .balign 4
    .global multiboot_header
multiboot_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
#ifdef MB_AOUT_KLUDGE
    .long multiboot_header /* header_addr */
    .long _load_start      /* load_addr: file offset 0 */
    .long _load_end        /* load_end_addr */
    .long _bss_end         /* bss_end_addr */
    .long _start           /* entry_addr */
#endif

    .section .text.entry, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    lgdt boot_gdt_desc
    ljmp $SEL_CODE32, $1f
1:  mov $SEL_DATA, %ecx
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %fs
    mov %ecx, %gs
    mov %ecx, %ss
    mov $boot_stack_top, %esp
    xor %ebp, %ebp
    push %ebx
    push %eax
    call kmain
    call kmain_returned
2:  cli
    hlt
    jmp 2b
