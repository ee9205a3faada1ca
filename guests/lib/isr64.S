/* 64-bit interrupt stubs: each pushes a dummy error code (unless the CPU pushed one)
 * and its vector, then isr_common saves the caller-saved registers and calls
 * isr_dispatch(frame) on a 16-byte aligned stack. */
    .altmacro
    .section .text
    .code64

.macro isr_stub v
isr_stub_\v:
    .if (\v == 8) || ((\v >= 10) && (\v <= 14)) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
    .else
    pushq $0
    .endif
    pushq $\v
    jmp isr_common
.endm

.set vec, 0
.rept 256
    isr_stub %vec
    .set vec, vec + 1
.endr

isr_common:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    mov %rsp, %rdi
    cld
    call isr_dispatch
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    add $16, %rsp
    iretq

    .section .rodata
    .balign 8
    .global isr_stub_table
isr_stub_table:
.macro isr_addr v
    .quad isr_stub_\v
.endm
.set vec, 0
.rept 256
    isr_addr %vec
    .set vec, vec + 1
.endr
