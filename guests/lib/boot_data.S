/* The kit's GDT and the boot stack, shared by every entry path (32- and 64-bit). */
#include "selectors.h"

    .section .data
    .balign 16
    .global boot_gdt, boot_gdt_desc
boot_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff /* SEL_CODE32 */
    .quad 0x00cf92000000ffff /* SEL_DATA */
    .quad 0x00af9a000000ffff /* SEL_CODE64 */
boot_gdt_end:
    .balign 8
boot_gdt_desc:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
    .long 0 /* upper half of the base for a 64-bit lgdt */

    /* Entry state recorded by SAVE_ENTRY_STATE32 (lib/entry_state.h). */
    .balign 4
    .global entry_cr0, entry_cr4, entry_eflags
entry_cr0: .long 0
entry_cr4: .long 0
entry_eflags: .long 0

    .section .bss
    .balign 16
    .global boot_stack, boot_stack_top
boot_stack:
    .skip BOOT_STACK_SIZE
boot_stack_top:
