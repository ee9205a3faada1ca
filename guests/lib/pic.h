/* 8259A PIC pair and 8254 PIT. */
#ifndef KIT_PIC_H
#define KIT_PIC_H

#include <stdint.h>

#define PIT_HZ 1193182u

/* Reinitialises both PICs with vector bases base1 (IRQ0-7) and base2 (IRQ8-15);
 * leaves every IRQ masked. */
void pic_remap(uint8_t base1, uint8_t base2);
void pic_mask_all(void);
/* Unmasks one IRQ (and the cascade IRQ2 for IRQ8-15). */
void pic_unmask(unsigned irq);
void pic_eoi(unsigned irq);
/* PIT channel 0, mode 2 (rate generator), lobyte/hibyte, at about `hz` interrupts a second. */
void pit_start_periodic(uint32_t hz);

#endif
