/* Multiboot v1 header and 32-bit entry for guests whose main code is 64-bit.
 * Linked as ELF64 and converted to ELF32 with objcopy (multiboot loaders such as
 * QEMU's accept only ELF32). Switches to long mode and calls kmain64(magic, mbi). */
#include "entry_state.h"
#include "selectors.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003

    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .text32.entry, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    mov $boot_stack_top, %esp
    SAVE_ENTRY_STATE32
    lgdt boot_gdt_desc
    ljmp $SEL_CODE32, $1f
1:  mov $SEL_DATA, %ecx
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %fs
    mov %ecx, %gs
    mov %ecx, %ss
    mov %eax, %esi               /* arg0: multiboot magic */
    mov %ebx, %edx               /* arg1: multiboot information */
    jmp lm_enter32
