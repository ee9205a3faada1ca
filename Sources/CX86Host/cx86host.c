#define _GNU_SOURCE
#include "cx86host.h"

#include <cpuid.h>
#include <emmintrin.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>

/* Inline assembly that pushes must first step over the 128-byte red zone below RSP. */
#define SKIP_RED_ZONE "lea -128(%%rsp), %%rsp\n\t"
#define RESTORE_RED_ZONE "lea 128(%%rsp), %%rsp\n\t"

#define FLAG_INPUT_MASK 0x8D7ull /* CF PF AF ZF SF OF and bit 1 */

#define BITCOUNT(insn, mod)                                                                          \
    __asm__ volatile(SKIP_RED_ZONE "push %[fi]\n\tpopfq\n\t" insn " %" mod "[s], %" mod "[r]\n\t" \
                     "pushfq\n\tpop %[f]\n\t" RESTORE_RED_ZONE                                       \
                     : [r] "+r"(r), [f] "=&r"(f)                                                     \
                     : [s] "r"(source), [fi] "r"(fi)                                                 \
                     : "cc", "memory")

int cx86_bitcount(int op, int size, uint64_t source, uint64_t destination, uint64_t flags_in, uint64_t *result, uint64_t *flags_out) {
    uint64_t r = destination, f = 0, fi = (flags_in & FLAG_INPUT_MASK) | 2;
    switch (op * 16 + size) {
    case CX86_POPCNT * 16 + 2: BITCOUNT("popcntw", "w"); break;
    case CX86_POPCNT * 16 + 4: BITCOUNT("popcntl", "k"); break;
    case CX86_POPCNT * 16 + 8: BITCOUNT("popcntq", "q"); break;
    case CX86_LZCNT * 16 + 2: BITCOUNT("lzcntw", "w"); break;
    case CX86_LZCNT * 16 + 4: BITCOUNT("lzcntl", "k"); break;
    case CX86_LZCNT * 16 + 8: BITCOUNT("lzcntq", "q"); break;
    case CX86_TZCNT * 16 + 2: BITCOUNT("tzcntw", "w"); break;
    case CX86_TZCNT * 16 + 4: BITCOUNT("tzcntl", "k"); break;
    case CX86_TZCNT * 16 + 8: BITCOUNT("tzcntq", "q"); break;
    default: return -1;
    }
    *result = r;
    *flags_out = f;
    return 0;
}

const uint8_t cx86_sse_immediates[] = {0x00, 0x01, 0x04, 0x07, 0x0F, 0x1B, 0x39, 0x4E, 0x93, 0xB1, 0xE4, 0xFF};
const size_t cx86_sse_immediate_count = sizeof(cx86_sse_immediates);

#define IMM_SWITCH(STMT)                                                                           \
    switch (imm) {                                                                                 \
    case 0x00: STMT(0x00); break;                                                                  \
    case 0x01: STMT(0x01); break;                                                                  \
    case 0x04: STMT(0x04); break;                                                                  \
    case 0x07: STMT(0x07); break;                                                                  \
    case 0x0F: STMT(0x0F); break;                                                                  \
    case 0x1B: STMT(0x1B); break;                                                                  \
    case 0x39: STMT(0x39); break;                                                                  \
    case 0x4E: STMT(0x4E); break;                                                                  \
    case 0x93: STMT(0x93); break;                                                                  \
    case 0xB1: STMT(0xB1); break;                                                                  \
    case 0xE4: STMT(0xE4); break;                                                                  \
    case 0xFF: STMT(0xFF); break;                                                                  \
    default: return -1;                                                                            \
    }

/* dst op= src */
#define XX(name) __asm__ volatile(name " %[s], %[d]" : [d] "+x"(d) : [s] "x"(s))
/* dst = op(dst, src, imm) */
#define XXI_PSHUFD(i) __asm__ volatile("pshufd $" #i ", %[s], %[d]" : [d] "+x"(d) : [s] "x"(s))
#define XXI_PSHUFHW(i) __asm__ volatile("pshufhw $" #i ", %[s], %[d]" : [d] "+x"(d) : [s] "x"(s))
#define XXI_PSHUFLW(i) __asm__ volatile("pshuflw $" #i ", %[s], %[d]" : [d] "+x"(d) : [s] "x"(s))
#define XXI_PALIGNR(i) __asm__ volatile("palignr $" #i ", %[s], %[d]" : [d] "+x"(d) : [s] "x"(s))
#define XXI_SHUFPS(i) __asm__ volatile("shufps $" #i ", %[s], %[d]" : [d] "+x"(d) : [s] "x"(s))
#define XXI_PBLENDW(i) __asm__ volatile("pblendw $" #i ", %[s], %[d]" : [d] "+x"(d) : [s] "x"(s))
/* dst = shift(dst, imm) */
#define XI_PSRLD(i) __asm__ volatile("psrld $" #i ", %[d]" : [d] "+x"(d))
#define XI_PSLLD(i) __asm__ volatile("pslld $" #i ", %[d]" : [d] "+x"(d))
#define XI_PSRLQ(i) __asm__ volatile("psrlq $" #i ", %[d]" : [d] "+x"(d))
#define XI_PSLLQ(i) __asm__ volatile("psllq $" #i ", %[d]" : [d] "+x"(d))
#define XI_PSRLDQ(i) __asm__ volatile("psrldq $" #i ", %[d]" : [d] "+x"(d))
#define XI_PSLLDQ(i) __asm__ volatile("pslldq $" #i ", %[d]" : [d] "+x"(d))
#define XI_PSRAW(i) __asm__ volatile("psraw $" #i ", %[d]" : [d] "+x"(d))
#define GI_PEXTRW(i) __asm__ volatile("pextrw $" #i ", %[d], %k[g]" : [g] "=r"(g) : [d] "x"(d))
#define GI_PINSRW(i) __asm__ volatile("pinsrw $" #i ", %k[g], %[d]" : [d] "+x"(d) : [g] "r"(g))
/* flags = compare(dst, src) */
#define FLAGS(name)                                                                                           \
    __asm__ volatile(name " %[s], %[d]\n\t" SKIP_RED_ZONE "pushfq\n\tpop %[f]\n\t" RESTORE_RED_ZONE          \
                     : [f] "=r"(f) : [d] "x"(d), [s] "x"(s) : "cc", "memory")
#define PCMPISTRI(i)                                                                                          \
    __asm__ volatile("pcmpistri $" #i ", %[s], %[d]\n\t" SKIP_RED_ZONE "pushfq\n\tpop %[f]\n\t" RESTORE_RED_ZONE \
                     : [f] "=r"(f), "=c"(ecx) : [d] "x"(d), [s] "x"(s) : "cc", "memory")

int cx86_sse(int op, const uint8_t dst[16], const uint8_t src[16], uint64_t gpr, uint8_t imm,
             uint8_t dst_out[16], uint64_t *gpr_out, uint64_t *flags_out) {
    __m128i d = _mm_loadu_si128((const __m128i *)dst);
    __m128i s = _mm_loadu_si128((const __m128i *)src);
    uint64_t g = gpr, f = 0;
    uint32_t ecx = 0;
    switch (op) {
    case CX86_PXOR: XX("pxor"); break;
    case CX86_POR: XX("por"); break;
    case CX86_PAND: XX("pand"); break;
    case CX86_PANDN: XX("pandn"); break;
    case CX86_PADDB: XX("paddb"); break;
    case CX86_PADDW: XX("paddw"); break;
    case CX86_PADDD: XX("paddd"); break;
    case CX86_PADDQ: XX("paddq"); break;
    case CX86_PSUBB: XX("psubb"); break;
    case CX86_PSUBW: XX("psubw"); break;
    case CX86_PSUBD: XX("psubd"); break;
    case CX86_PSUBQ: XX("psubq"); break;
    case CX86_PUNPCKLBW: XX("punpcklbw"); break;
    case CX86_PUNPCKLWD: XX("punpcklwd"); break;
    case CX86_PUNPCKLDQ: XX("punpckldq"); break;
    case CX86_PUNPCKLQDQ: XX("punpcklqdq"); break;
    case CX86_PUNPCKHBW: XX("punpckhbw"); break;
    case CX86_PUNPCKHWD: XX("punpckhwd"); break;
    case CX86_PUNPCKHDQ: XX("punpckhdq"); break;
    case CX86_PUNPCKHQDQ: XX("punpckhqdq"); break;
    case CX86_PSHUFB: XX("pshufb"); break;
    case CX86_PCMPEQB: XX("pcmpeqb"); break;
    case CX86_PCMPEQD: XX("pcmpeqd"); break;
    case CX86_PCMPGTB: XX("pcmpgtb"); break;
    case CX86_PMINUB: XX("pminub"); break;
    case CX86_PMAXUB: XX("pmaxub"); break;
    case CX86_PMULUDQ: XX("pmuludq"); break;
    case CX86_PMADDWD: XX("pmaddwd"); break;
    case CX86_PSADBW: XX("psadbw"); break;
    case CX86_PACKUSWB: XX("packuswb"); break;
    case CX86_PSRLW_X: XX("psrlw"); break;
    case CX86_PSRLD_X: XX("psrld"); break;
    case CX86_PSRLQ_X: XX("psrlq"); break;
    case CX86_PSLLD_X: XX("pslld"); break;
    case CX86_PSRAD_X: XX("psrad"); break;
    case CX86_MOVDQA: XX("movdqa"); break;
    case CX86_ADDPS: XX("addps"); break;
    case CX86_MULPD: XX("mulpd"); break;
    case CX86_XORPS: XX("xorps"); break;
    case CX86_UNPCKLPS: XX("unpcklps"); break;
    case CX86_PSHUFD_I: IMM_SWITCH(XXI_PSHUFD); break;
    case CX86_PSHUFHW_I: IMM_SWITCH(XXI_PSHUFHW); break;
    case CX86_PSHUFLW_I: IMM_SWITCH(XXI_PSHUFLW); break;
    case CX86_PALIGNR_I: IMM_SWITCH(XXI_PALIGNR); break;
    case CX86_SHUFPS_I: IMM_SWITCH(XXI_SHUFPS); break;
    case CX86_PBLENDW_I: IMM_SWITCH(XXI_PBLENDW); break;
    case CX86_PSRLD_I: IMM_SWITCH(XI_PSRLD); break;
    case CX86_PSLLD_I: IMM_SWITCH(XI_PSLLD); break;
    case CX86_PSRLQ_I: IMM_SWITCH(XI_PSRLQ); break;
    case CX86_PSLLQ_I: IMM_SWITCH(XI_PSLLQ); break;
    case CX86_PSRLDQ_I: IMM_SWITCH(XI_PSRLDQ); break;
    case CX86_PSLLDQ_I: IMM_SWITCH(XI_PSLLDQ); break;
    case CX86_PSRAW_I: IMM_SWITCH(XI_PSRAW); break;
    case CX86_PMOVMSKB_G: __asm__ volatile("pmovmskb %[d], %k[g]" : [g] "=r"(g) : [d] "x"(d)); break;
    case CX86_MOVD_TO_XMM_G: __asm__ volatile("movd %k[g], %[d]" : [d] "=x"(d) : [g] "r"(g)); break;
    case CX86_MOVQ_TO_XMM_G: __asm__ volatile("movq %[g], %[d]" : [d] "=x"(d) : [g] "r"(g)); break;
    case CX86_MOVD_FROM_XMM_G: __asm__ volatile("movd %[d], %k[g]" : [g] "=r"(g) : [d] "x"(d)); break;
    case CX86_MOVQ_FROM_XMM_G: __asm__ volatile("movq %[d], %[g]" : [g] "=r"(g) : [d] "x"(d)); break;
    case CX86_PEXTRW_GI: IMM_SWITCH(GI_PEXTRW); break;
    case CX86_PINSRW_GI: IMM_SWITCH(GI_PINSRW); break;
    case CX86_PTEST: FLAGS("ptest"); break;
    case CX86_COMISS: FLAGS("comiss"); break;
    case CX86_UCOMISD: FLAGS("ucomisd"); break;
    case CX86_PCMPISTRI_I: IMM_SWITCH(PCMPISTRI); g = ecx; break;
    default: return -1;
    }
    _mm_storeu_si128((__m128i *)dst_out, d);
    *gpr_out = g;
    *flags_out = f;
    return 0;
}

static __thread sigjmp_buf probe_jump;
static __thread volatile sig_atomic_t probe_active;

static void probe_handler(int signo) {
    if (probe_active) {
        probe_active = 0;
        siglongjmp(probe_jump, signo);
    }
    signal(signo, SIG_DFL);
    raise(signo);
}

int cx86_probe(const uint8_t *code, size_t length, void *rdi) {
    if (length == 0 || length > 4000) return -1;
    uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return -1;
    memcpy(page, code, length);
    page[length] = 0xC3; /* ret */
    if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0) {
        munmap(page, 4096);
        return -1;
    }
    struct sigaction action, old_segv, old_bus;
    memset(&action, 0, sizeof action);
    action.sa_handler = probe_handler;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &old_segv);
    sigaction(SIGBUS, &action, &old_bus);
    int result = sigsetjmp(probe_jump, 1);
    if (result == 0) {
        probe_active = 1;
        ((void (*)(void *))page)(rdi);
        probe_active = 0;
    }
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    munmap(page, 4096);
    return result;
}

int cx86_run_program(const uint8_t *code, size_t length, uint8_t *registers, void *rdi) {
    if (length == 0 || length > 8192) return -1;
    uint8_t *pages = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pages == MAP_FAILED) return -1;
    memcpy(pages, code, length);
    if (mprotect(pages, 8192, PROT_READ | PROT_EXEC) != 0) {
        munmap(pages, 8192);
        return -1;
    }
    ((void (*)(void *, void *))pages)(rdi, registers);
    munmap(pages, 8192);
    return 0;
}

void cx86_vendor(char out[13]) {
    unsigned int a = 0, b = 0, c = 0, d = 0;
    __get_cpuid(0, &a, &b, &c, &d);
    memcpy(out, &b, 4);
    memcpy(out + 4, &d, 4);
    memcpy(out + 8, &c, 4);
    out[12] = 0;
}
