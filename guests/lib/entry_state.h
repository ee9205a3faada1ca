/* Assembly helper: records the control registers and flags a 32-bit entry was given,
 * for guests that print their entry state. Needs a stack; clobbers ecx only. */
#ifndef KIT_ENTRY_STATE_H
#define KIT_ENTRY_STATE_H

#ifdef __ASSEMBLER__
.macro SAVE_ENTRY_STATE32
    mov %cr0, %ecx
    mov %ecx, entry_cr0
    mov %cr4, %ecx
    mov %ecx, entry_cr4
    pushfl
    popl entry_eflags
.endm
#else
#include <stdint.h>
extern uint32_t entry_cr0, entry_cr4, entry_eflags;
#endif

#endif
