/* bzimage-mini protected-mode kernel head, loaded at 1 MiB (pref_address 0x100000).
 *   +0x000 startup_32: 32-bit boot protocol entry (code32_start): protected mode,
 *          paging off, esi = zero page. Enters long mode -> kmain64(zero page, 32).
 *   +0x200 startup_64: 64-bit boot protocol entry: long mode, identity-mapped,
 *          rsi = zero page. Switches to the kit's page tables -> kmain64(zero page, 64).
 * Both clear .bss first (bzImage loaders copy only the file, not init_size). */
#include "entry_state.h"
#include "selectors.h"

    .section .head, "ax"
    .code32
    .global startup_32
startup_32:
    cli
    cld
    mov $_bss_start, %edi
    mov $_bss_end, %ecx
    sub %edi, %ecx
    add $3, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl
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
    mov $32, %edx
    jmp lm_enter32               /* esi = zero page */

    .org 0x200
    .code64
    .global startup_64
startup_64:
    cli
    cld
    mov $_bss_start, %edi
    mov $_bss_end, %ecx
    sub %edi, %ecx
    add $3, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl
    mov %cr0, %rax
    mov %eax, entry_cr0
    mov %cr4, %rax
    mov %eax, entry_cr4
    mov $0xc0000080, %ecx
    rdmsr
    mov %eax, entry_efer
    mov %rsi, %rdi               /* arg0: zero page */
    mov $64, %esi                /* arg1: which entry */
    jmp lm_enter64

    /* kernel_info (boot protocol 2.15), referenced by kernel_info_offset */
    .balign 16
    .global kernel_info
kernel_info:
    .ascii "LToP"
    .long kernel_info_end - kernel_info  /* size */
    .long kernel_info_end - kernel_info  /* size_total */
    .long 0                              /* setup_type_max */
kernel_info_end:

    .section .data
    .balign 4
    .global entry_efer
entry_efer: .long 0
