/* Real-mode half of reboot-bios: the path of Linux's machine_real_restart(MRR_BIOS)
 * (arch/x86/kernel/reboot.c, arch/x86/realmode/rm/reboot.S), condensed.
 *
 * reboot_through_bios (32-bit, paging off, flat segments) loads the real-mode IDT (limit
 * 0x3ff at 0) and a GDT whose 16-bit code segment starts at REBOOT_RM_BASE, where the C half
 * copied reboot_rm_start..reboot_rm_end, and jumps there. That code loads 16-bit data
 * segments, clears CR0.PE, reloads CS with a real-mode segment, zeroes the data segments and
 * far-jumps to the reset vector F000:FFF0, as Linux does when its BIOS method runs. */
#define REBOOT_RM_BASE 0x70000

    .section .text
    .code32
    .global reboot_through_bios
reboot_through_bios:
    cli
    lidtl rm_idt_desc
    lgdtl rm_gdt_desc
    ljmpl $0x08, $0

    .section .data
    .balign 8
rm_gdt:
    .quad 0
    .quad 0x00009b070000ffff    /* 0x08: 16-bit code, base 0x70000, limit 0xffff */
    .quad 0x000093000000ffff    /* 0x10: 16-bit data, base 0, limit 0xffff */
rm_gdt_end:
    .balign 8
rm_gdt_desc:
    .word rm_gdt_end - rm_gdt - 1
    .long rm_gdt
    .balign 8
rm_idt_desc:
    .word 0x3ff
    .long 0

    .section .text16.reboot, "ax"
    .code16
    .global reboot_rm_start, reboot_rm_end
reboot_rm_start:                /* 16-bit protected mode, CS base REBOOT_RM_BASE */
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %fs
    mov %ax, %gs
    mov %ax, %ss
    mov %cr0, %eax
    andl $0x7ffffffe, %eax      /* protection and paging off */
    mov %eax, %cr0
    ljmpw $(REBOOT_RM_BASE >> 4), $(1f - reboot_rm_start)
1:  xor %ax, %ax                /* real mode */
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %fs
    mov %ax, %gs
    mov %ax, %ss
    mov $0x1000, %sp
    ljmpw $0xf000, $0xfff0      /* the reset vector: the BIOS reboots from here */
reboot_rm_end:
