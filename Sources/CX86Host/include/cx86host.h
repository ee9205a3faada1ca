/* Test oracles for the x86 emulator: operations executed natively on the host CPU, compiled by
 * the C compiler from its own assembly (not from the emulator's encoder), so their results are
 * an independent reference. Only for tests; the emulator itself does not use this module. */
#ifndef CX86HOST_H
#define CX86HOST_H

#include <stddef.h>
#include <stdint.h>

/* Bit-count operations for cx86_bitcount. */
enum {
    CX86_POPCNT = 0,
    CX86_LZCNT = 1,
    CX86_TZCNT = 2,
};

/* Runs POPCNT/LZCNT/TZCNT with operand size `size` (2, 4 or 8 bytes) on `source`. The destination
 * register starts as `destination`, RFLAGS as `flags_in` (arithmetic flags and bit 1 only).
 * Returns the full destination register afterwards and stores RFLAGS in *flags_out.
 * Returns 0, or -1 for a bad op or size. */
int cx86_bitcount(int op, int size, uint64_t source, uint64_t destination, uint64_t flags_in, uint64_t *result, uint64_t *flags_out);

/* SSE operations for cx86_sse. "X" forms take two XMM operands (dst op= src); "I" forms an imm8
 * from cx86_sse_immediates; "G" forms a general-purpose register. */
enum {
    CX86_PXOR, CX86_POR, CX86_PAND, CX86_PANDN,
    CX86_PADDB, CX86_PADDW, CX86_PADDD, CX86_PADDQ,
    CX86_PSUBB, CX86_PSUBW, CX86_PSUBD, CX86_PSUBQ,
    CX86_PUNPCKLBW, CX86_PUNPCKLWD, CX86_PUNPCKLDQ, CX86_PUNPCKLQDQ,
    CX86_PUNPCKHBW, CX86_PUNPCKHWD, CX86_PUNPCKHDQ, CX86_PUNPCKHQDQ,
    CX86_PSHUFB, CX86_PCMPEQB, CX86_PCMPEQD, CX86_PCMPGTB, CX86_PMINUB, CX86_PMAXUB,
    CX86_PMULUDQ, CX86_PMADDWD, CX86_PSADBW, CX86_PACKUSWB,
    CX86_PSRLW_X, CX86_PSRLD_X, CX86_PSRLQ_X, CX86_PSLLD_X, CX86_PSRAD_X,
    CX86_MOVDQA, CX86_ADDPS, CX86_MULPD, CX86_XORPS, CX86_UNPCKLPS,
    /* imm8 forms */
    CX86_PSHUFD_I, CX86_PSHUFHW_I, CX86_PSHUFLW_I, CX86_PALIGNR_I, CX86_SHUFPS_I, CX86_PBLENDW_I,
    CX86_PSRLD_I, CX86_PSLLD_I, CX86_PSRLQ_I, CX86_PSLLQ_I, CX86_PSRLDQ_I, CX86_PSLLDQ_I, CX86_PSRAW_I,
    /* general-purpose register forms */
    CX86_PMOVMSKB_G, CX86_MOVD_TO_XMM_G, CX86_MOVQ_TO_XMM_G, CX86_MOVD_FROM_XMM_G, CX86_MOVQ_FROM_XMM_G,
    CX86_PEXTRW_GI, CX86_PINSRW_GI,
    /* flag-setting forms */
    CX86_PTEST, CX86_COMISS, CX86_UCOMISD, CX86_PCMPISTRI_I,
    CX86_SSE_OP_COUNT
};

/* The immediates the "I" forms support. */
extern const uint8_t cx86_sse_immediates[];
extern const size_t cx86_sse_immediate_count;

/* Runs SSE operation `op` natively with MXCSR 0x1F80: `dst` and `src` are 16-byte operands, `gpr`
 * an input general-purpose value (RCX for PCMPISTRI is an output). Writes the XMM result to
 * dst_out, the general-purpose result to *gpr_out and RFLAGS to *flags_out.
 * Returns 0, or -1 for an unknown op or immediate. */
int cx86_sse(int op, const uint8_t dst[16], const uint8_t src[16], uint64_t gpr, uint8_t imm,
             uint8_t dst_out[16], uint64_t *gpr_out, uint64_t *flags_out);

/* Runs `length` bytes of code (an instruction whose memory operand, if any, is [rdi]) natively with
 * RDI = `rdi`, catching SIGSEGV and SIGBUS. Returns 0 if it ran, else the signal number, or -1 if
 * the code could not be placed. For probing which forms fault on misaligned operands. */
int cx86_probe(const uint8_t *code, size_t length, void *rdi);

/* Runs a whole program natively: `code` is mapped executable and called at offset 0 with
 * RDI = `rdi` and RSI = `registers` (272 bytes the program may load and store XMM state and RAX
 * through). Returns 0, or -1 if the code could not be placed (at most 8 KiB). */
int cx86_run_program(const uint8_t *code, size_t length, uint8_t *registers, void *rdi);

/* CPUID vendor string ("AuthenticAMD", "GenuineIntel") into out[13]. */
void cx86_vendor(char out[13]);

#endif
