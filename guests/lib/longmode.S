/* Switches to 64-bit long mode with a 4 GiB identity map and calls kmain64(arg0, arg1).
 *
 * lm_enter32 (jump to it, 32-bit protected mode, paging off, interrupts off,
 *            flat segments): esi = arg0, edx = arg1 (zero-extended).
 * lm_enter64 (jump to it, already in 64-bit mode on some identity map, e.g. the Linux
 *            64-bit boot protocol): rdi = arg0, rsi = arg1. Builds the kit's own tables
 *            and switches CR3, so everything below 4 GiB is reachable whatever the
 *            loader mapped.
 * Both load the kit's GDT, flat data segments and the boot stack. The tables live in
 * .bss and are zeroed here, so this works even when the loader did not clear .bss. */
#include "selectors.h"

#define EFER_MSR 0xc0000080
#define EFER_LME (1 << 8)
#define CR4_PAE (1 << 5)
#define CR0_PG_PE 0x80000001

    .section .bss
    .balign 4096
    .global lm_pml4, lm_pdpt, lm_pd
lm_pml4: .skip 4096
lm_pdpt: .skip 4096
lm_pd:   .skip 4 * 4096

    .section .text32, "ax"
    .code32
    .global lm_enter32
lm_enter32:
    mov %edx, %ebp               /* keep arg1 across rdmsr/wrmsr */
    mov $lm_pml4, %edi
    xor %eax, %eax
    mov $(6 * 4096 / 4), %ecx
    rep stosl
    movl $(lm_pdpt + 3), lm_pml4
    movl $(lm_pd + 0x0003), lm_pdpt
    movl $(lm_pd + 0x1003), lm_pdpt + 8
    movl $(lm_pd + 0x2003), lm_pdpt + 16
    movl $(lm_pd + 0x3003), lm_pdpt + 24
    mov $lm_pd, %edi
    mov $0x83, %eax              /* present, writable, 2 MiB page */
    mov $2048, %ecx
1:  mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    dec %ecx
    jnz 1b
    mov %cr4, %eax
    or $CR4_PAE, %eax
    mov %eax, %cr4
    mov $lm_pml4, %eax
    mov %eax, %cr3
    mov $EFER_MSR, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    or $CR0_PG_PE, %eax
    mov %eax, %cr0
    lgdt boot_gdt_desc
    ljmp $SEL_CODE64, $lm_long32

    .section .text
    .code64
lm_long32:
    mov %esi, %edi               /* arg0 */
    mov %ebp, %esi               /* arg1 */
    jmp lm_common64

    .global lm_enter64
lm_enter64:
    cli
    cld
    mov $boot_stack_top, %esp    /* the lretq below needs a stack; none is promised */
    mov %rdi, %r8
    mov %rsi, %r9
    mov $lm_pml4, %edi
    xor %eax, %eax
    mov $(6 * 4096 / 4), %ecx
    rep stosl
    movq $(lm_pdpt + 3), lm_pml4
    movq $(lm_pd + 0x0003), lm_pdpt
    movq $(lm_pd + 0x1003), lm_pdpt + 8
    movq $(lm_pd + 0x2003), lm_pdpt + 16
    movq $(lm_pd + 0x3003), lm_pdpt + 24
    mov $lm_pd, %edi
    mov $0x83, %rax
    mov $2048, %ecx
1:  mov %rax, (%rdi)
    add $0x200000, %rax
    add $8, %rdi
    dec %ecx
    jnz 1b
    mov $lm_pml4, %eax
    mov %rax, %cr3
    lgdt boot_gdt_desc
    pushq $SEL_CODE64
    pushq $2f
    lretq
2:  mov %r8, %rdi
    mov %r9, %rsi

lm_common64:
    mov $SEL_DATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    mov $boot_stack_top, %rsp
    xor %ebp, %ebp
    call kmain64
    call kmain_returned
3:  cli
    hlt
    jmp 3b
