/* Segment selectors of the kit's boot GDT (lib/boot_data.S). Usable from C and assembly. */
#ifndef KIT_SELECTORS_H
#define KIT_SELECTORS_H

#define SEL_CODE32 0x08 /* flat 4 GiB 32-bit code */
#define SEL_DATA 0x10   /* flat 4 GiB data */
#define SEL_CODE64 0x18 /* 64-bit code */

#define BOOT_STACK_SIZE 16384

#endif
