#include "fwcfg.h"
#include "io.h"

void fwcfg_select(uint16_t key) { outw(FW_CFG_SELECTOR, key); }

void fwcfg_read(void *buf, uint32_t len)
{
    uint8_t *p = buf;
    for (uint32_t i = 0; i < len; i++)
        p[i] = inb(FW_CFG_DATA);
}

int fwcfg_present(void)
{
    char sig[4];
    fwcfg_select(FW_CFG_SIGNATURE);
    fwcfg_read(sig, 4);
    return sig[0] == 'Q' && sig[1] == 'E' && sig[2] == 'M' && sig[3] == 'U';
}

/* Items are little-endian; assemble byte by byte. */
static uint64_t read_le(uint16_t key, unsigned n)
{
    uint8_t b[8];
    uint64_t v = 0;
    fwcfg_select(key);
    fwcfg_read(b, n);
    for (unsigned i = n; i > 0; i--)
        v = (v << 8) | b[i - 1];
    return v;
}

uint16_t fwcfg_read_u16(uint16_t key) { return (uint16_t)read_le(key, 2); }
uint32_t fwcfg_read_u32(uint16_t key) { return (uint32_t)read_le(key, 4); }
uint64_t fwcfg_read_u64(uint16_t key) { return read_le(key, 8); }
