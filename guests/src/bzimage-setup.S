/* bzimage-mini real-mode part: boot sector, Linux setup header (protocol 2.15) and a
 * small real-mode entry for BIOS-based loaders (QEMU -kernel): it builds a zero page
 * (setup header copy + BIOS E820 map), enables A20, enters protected mode with the
 * boot protocol's GDT (__BOOT_CS 0x10, __BOOT_DS 0x18) and jumps to code32_start with
 * esi = zero page. Direct-boot VMMs skip all this and use the 32-bit or 64-bit entry. */

#define ZP 0x1000                 /* zero page offset in the setup segment */
#define E820_MAX 128

    .section .bzsetup.header, "a"
    .code16
    .org 0x1f1
setup_sects:      .byte _bz_setup_sects
root_flags:       .word 0
syssize:          .long _bz_syssize
ram_size:         .word 0
vid_mode:         .word 0xffff
root_dev:         .word 0
boot_flag:        .word 0xaa55
    .org 0x200
jump:             .byte 0xeb, 0x26c - 0x202   /* short jmp to start_of_setup at 0x26c */
header:           .ascii "HdrS"
version:          .word 0x020f
realmode_swtch:   .long 0
start_sys_seg:    .word 0x1000
kernel_version:   .word kernel_version_string - 0x200
type_of_loader:   .byte 0
loadflags:        .byte 0x01               /* LOADED_HIGH */
setup_move_size:  .word 0x8000
code32_start:     .long 0x100000
ramdisk_image:    .long 0
ramdisk_size:     .long 0
bootsect_kludge:  .long 0
heap_end_ptr:     .word 0
ext_loader_ver:   .byte 0
ext_loader_type:  .byte 0
cmd_line_ptr:     .long 0
initrd_addr_max:  .long 0x7fffffff
kernel_alignment: .long 0x200000
relocatable:      .byte 0
min_alignment:    .byte 21
xloadflags:       .word 0x0001             /* XLF_KERNEL_64: 64-bit entry at +0x200 */
cmdline_size:     .long 2047
hardware_subarch: .long 0
hardware_subarch_data: .quad 0
payload_offset:   .long 0
payload_length:   .long 0
setup_data:       .quad 0
pref_address:     .quad 0x100000
init_size:        .long _bz_init_size
handover_offset:  .long 0
kernel_info_offset: .long kernel_info - 0x100000
    .org 0x26c

    .section .text16.setup, "ax"
    .code16
start_of_setup:
    cli
    cld
    mov %cs, %ax
    sub $0x20, %ax               /* cs = setup segment + 0x20 at entry */
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0xe000, %sp
    push %ax
    push $1f
    lret                         /* continue with cs = setup segment */
1:
    /* zero page: zero it, copy the setup header (0x1f1..0x26b) */
    mov $ZP, %di
    xor %ax, %ax
    mov $2048, %cx
    rep stosw
    mov $0x1f1, %si
    mov $(ZP + 0x1f1), %di
    mov $(0x26c - 0x1f1), %cx
    rep movsb
    /* BIOS E820 map into the zero page's e820_table */
    mov $(ZP + 0x2d0), %di
    xor %ebx, %ebx
    xor %bp, %bp
2:  mov $0xe820, %eax
    mov $20, %ecx
    mov $0x534d4150, %edx        /* "SMAP" */
    int $0x15
    jc 3f
    cmp $0x534d4150, %eax
    jne 3f
    inc %bp
    add $20, %di
    test %ebx, %ebx
    jz 3f
    cmp $E820_MAX, %bp
    jb 2b
3:  mov %bp, %ax
    mov %al, ZP + 0x1e8          /* e820_entries */
    /* fast A20 */
    in $0x92, %al
    or $0x02, %al
    and $0xfe, %al
    out %al, $0x92
    /* linear addresses: gdt base, zero page (esi), far pointer to code32_start */
    xor %ebx, %ebx
    mov %ds, %bx
    shl $4, %ebx
    lea boot_gdt16(%ebx), %eax
    mov %eax, boot_gdtr + 2
    lea ZP(%ebx), %esi
    mov code32_start, %eax
    mov %eax, far_ptr
    movw $0x10, far_ptr + 4
    cli
    lgdtl boot_gdtr
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    mov $0x18, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    ljmpl *%cs:far_ptr

    /* no .balign in this section: it must start exactly at 0x26c, the jump target */
boot_gdt16:
    .quad 0
    .quad 0
    .quad 0x00cf9a000000ffff     /* 0x10 __BOOT_CS */
    .quad 0x00cf92000000ffff     /* 0x18 __BOOT_DS */
boot_gdtr:
    .word 31
    .long 0
far_ptr:
    .long 0
    .word 0
kernel_version_string:
    .asciz "bzimage-mini (Skiff guest kit)"
