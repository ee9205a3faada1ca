/* PVH entry: the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (type 18, name "Xen") and the
 * 32-bit entry it names. Entry state (PVH ABI): 32-bit protected mode, paging off,
 * ebx = physical address of struct hvm_start_info, no usable stack.
 * ELF32 build: calls kmain(start_info) in 32-bit mode. ELF64 build (assembled with
 * -m64): the note's descriptor is 8 bytes like Linux's, and the entry switches to long
 * mode and calls kmain64(start_info, 0). */
#include "entry_state.h"
#include "selectors.h"

    .section .note.Xen, "a"
    .balign 4
    .long 4                      /* namesz: "Xen\0" */
#ifdef __x86_64__
    .long 8                      /* descsz */
#else
    .long 4
#endif
    .long 18                     /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
#ifdef __x86_64__
    .quad pvh_start
#else
    .long pvh_start
#endif
    .balign 4

#ifdef __x86_64__
    .section .text32.entry, "ax"
#else
    .section .text.entry, "ax"
#endif
    .code32
    .global pvh_start, _start
_start:
pvh_start:
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
    mov $boot_stack_top, %esp
    xor %ebp, %ebp
#ifdef __x86_64__
    mov %ebx, %esi
    xor %edx, %edx
    jmp lm_enter32
#else
    push %ebx
    call kmain
    call kmain_returned
2:  cli
    hlt
    jmp 2b
#endif
