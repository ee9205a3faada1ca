/* 32-bit interrupt stubs: each pushes a dummy error code (unless the CPU pushed one)
 * and its vector, then isr_common saves the registers and calls isr_dispatch(frame).
 *
 * No iret: KVM's instruction emulator implements iret only for real mode, and a KVM
 * that emulates 32-bit guest code (nested or page-table-based KVMs) fails on it with
 * an emulation error. The return path instead rebuilds the frame as [eflags][eip]
 * and returns with popfl; ret. If the interrupted code had IF set, the saved flags
 * are restored with IF clear and `sti` is executed right before `ret`: the sti
 * interrupt shadow keeps the next interrupt out until ret has completed, so the
 * stack cannot grow. This only works for same-privilege (ring 0) interrupts, which
 * is all the kit uses. */
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
    add $8, %esp            /* vector, error code: [esp] = eip, cs, eflags */
    push %eax
    mov 4(%esp), %eax       /* eip */
    xchg %eax, 12(%esp)     /* eflags slot <- eip, eax <- eflags */
    mov %eax, 8(%esp)       /* cs slot <- eflags */
    pop %eax
    add $4, %esp            /* [esp] = eflags, eip */
    btrl $9, (%esp)         /* clear IF in the saved flags; CF = old IF */
    jc 1f
    popfl
    ret
1:  popfl
    sti
    ret

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
