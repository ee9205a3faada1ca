/* Multiboot v1 header and 32-bit entry for ELF32 guests.
 * Entry state (multiboot spec): protected mode, paging off, eax = 0x2BADB002,
 * ebx = physical address of the multiboot information structure.
 * Calls kmain(magic, mbi) on the kit's own GDT and stack. */
#include "selectors.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* bit 0: page-align modules, bit 1: memory information */

    .section .multiboot, "a"
    .balign 4
multiboot_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

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
