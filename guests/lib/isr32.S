/* 32-bit interrupt stubs: each pushes a dummy error code (unless the CPU pushed one)
 * and its vector, then isr_common saves the registers and calls isr_dispatch(frame). */
    .altmacro
    .section .text
    .code32

.macro isr_stub v
isr_stub_\v:
    .if (\v == 8) || ((\v >= 10) && (\v <= 14)) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
    .else
    pushl $0
    .endif
    pushl $\v
    jmp isr_common
.endm

.set vec, 0
.rept 256
    isr_stub %vec
    .set vec, vec + 1
.endr

isr_common:
    pushal
    cld
    push %esp
    call isr_dispatch
    add $4, %esp
    popal
    add $8, %esp
    iret

    .section .rodata
    .balign 4
    .global isr_stub_table
isr_stub_table:
.macro isr_addr v
    .long isr_stub_\v
.endm
.set vec, 0
.rept 256
    isr_addr %vec
    .set vec, vec + 1
.endr
