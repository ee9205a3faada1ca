/* QEMU fw_cfg, legacy I/O interface: selector 0x510 (16-bit write), data 0x511 (8-bit read). */
#ifndef KIT_FWCFG_H
#define KIT_FWCFG_H

#include <stdint.h>

#define FW_CFG_SELECTOR 0x510
#define FW_CFG_DATA 0x511
#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_ID 0x0001
#define FW_CFG_RAM_SIZE 0x0003
#define FW_CFG_NB_CPUS 0x0005

void fwcfg_select(uint16_t key);
void fwcfg_read(void *buf, uint32_t len);
/* 1 if the signature item reads "QEMU". */
int fwcfg_present(void);
uint16_t fwcfg_read_u16(uint16_t key);
uint32_t fwcfg_read_u32(uint16_t key);
uint64_t fwcfg_read_u64(uint16_t key);

#endif
