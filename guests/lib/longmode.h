/* Long-mode page tables built by lib/longmode.S: PML4 -> one PDPT -> four page
 * directories identity-mapping 0-4 GiB with 2 MiB pages (present, writable). */
#ifndef KIT_LONGMODE_H
#define KIT_LONGMODE_H

#include <stdint.h>

extern uint64_t lm_pml4[512];
extern uint64_t lm_pdpt[512];
extern uint64_t lm_pd[4 * 512];

/* Entered from the assembly with (arg0, arg1) as the 32-bit entry passed them in esi/edx
 * (or as the 64-bit entry passed them in rdi/rsi). */
void kmain64(uint64_t arg0, uint64_t arg1);

#endif
