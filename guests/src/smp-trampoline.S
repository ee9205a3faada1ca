/* AP start-up code for the smp guest.
 *
 * smp_trampoline_start..smp_trampoline_end is copied by the BSP to SMP_TRAMPOLINE_BASE
 * (0x70000, page aligned, SIPI vector 0x70), a page the VMM leaves free. An AP starts
 * there in real mode with CS = 0x7000, IP = 0; it loads the kit's GDT (through a GDT
 * pointer inside the copied page), sets CR0.PE and far-jumps to ap_entry32 in the kernel
 * image. ap_entry32 takes a CPU number (1, 2, ... in arrival order) with lock xadd,
 * switches to its own 4 KiB stack and calls ap_main(cpu). */
#include "selectors.h"

#define SMP_MAX_CPUS 32
#define AP_STACK_SIZE 4096

    .section .text16.trampoline, "ax"
    .code16
    .global smp_trampoline_start, smp_trampoline_end
smp_trampoline_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl tramp_gdt_desc - smp_trampoline_start
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $SEL_CODE32, $ap_entry32
    .balign 8
tramp_gdt_desc:
    .word 31
    .long boot_gdt
smp_trampoline_end:

    .section .text
    .code32
ap_entry32:
    mov $SEL_DATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %fs
    mov %eax, %gs
    mov %eax, %ss
    mov $1, %eax
    lock xaddl %eax, ap_next_index
    inc %eax                     /* CPU number: 1 for the first AP */
    cmp $SMP_MAX_CPUS, %eax
    jae 2f
    mov %eax, %ecx
    shl $12, %ecx                /* * AP_STACK_SIZE */
    add $ap_stacks, %ecx         /* top of this CPU's stack */
    mov %ecx, %esp
    xor %ebp, %ebp
    push %eax
    call ap_main
2:  cli
    hlt
    jmp 2b

    .section .data
    .balign 4
ap_next_index:
    .long 0

    .section .bss
    .balign 4096
ap_stacks:
    .skip SMP_MAX_CPUS * AP_STACK_SIZE
