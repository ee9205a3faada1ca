/* assist: instructions an instruction-emulating KVM cannot run, each checked for the
 * architectural result, so the guest passes on real hardware and, with Skiff's emulation
 * assist, on hosts whose KVM emulates guest instructions:
 *   int3 delivers #BP to the IDT with RIP past the int3; ud2 delivers #UD;
 *   popcnt results and ZF against a software model, tzcnt of non-zero values (lzcnt and
 *   tzcnt of 0 are left out: without LZCNT/BMI1 they execute as bsr/bsf, and some emulating
 *   KVMs run them that way even when the CPUID the guest sees says otherwise);
 *   clac/stac toggle RFLAGS.AC when CPUID shows SMAP, else #UD;
 *   SSE (OSFXSR on): pxor, paddq, pshufd, movdqu load/store against software results;
 *   an instruction that starts 2 bytes before an unmapped page faults with #PF,
 *   CR2 = the unmapped page, error code with the instruction-fetch bit.
 * Output lines: "assist int3 ok", "assist bitcount ok", "assist clac <ok|ud>",
 * "assist sse ok", "assist ud2 ok", "assist fetch-fault ok". Deliberately uses instructions
 * `make check` forbids elsewhere, so it is excluded from that scan. */
#include "idt.h"
#include "io.h"
#include "longmode.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "assist";

static volatile uint64_t last_vector = ~0ull, last_error, last_cr2, bp_count, resume_at;

static void on_exception(struct isr_frame *f)
{
    last_vector = f->vector;
    last_error = f->error;
    if (f->vector == 3)
        bp_count++;
    if (f->vector == 14) {
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        last_cr2 = cr2;
    }
    if (resume_at) {
        f->ip = resume_at;
        resume_at = 0;
    }
}

static unsigned soft_popcnt(uint64_t v) { unsigned n = 0; while (v) { n += v & 1; v >>= 1; } return n; }
static unsigned soft_tzcnt(uint64_t v) { unsigned n = 0; for (int b = 0; b < 64 && !(v >> b & 1); b++) n++; return n; }

static void check_bitcount(void)
{
    static const uint64_t values[] = {0, 1, 0x8000000000000000ull, 0xffffffffffffffffull, 0x00f0f0f000000100ull, 0x1234567890abcdefull};
    for (unsigned i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint64_t v = values[i], p, fp;
        __asm__ volatile("popcnt %2, %0; pushfq; pop %1" : "=r"(p), "=r"(fp) : "r"(v) : "cc");
        if (p != soft_popcnt(v) || ((fp >> 6) & 1) != (v == 0))
            test_fail("popcnt of 0x%llx gave %llu, flags 0x%llx", (unsigned long long)v, (unsigned long long)p, (unsigned long long)fp);
        if (v != 0) {
            uint64_t t;
            __asm__ volatile("tzcnt %1, %0" : "=r"(t) : "r"(v) : "cc");
            if (t != soft_tzcnt(v))
                test_fail("tzcnt of 0x%llx gave %llu", (unsigned long long)v, (unsigned long long)t);
        }
    }
    kprintf("assist bitcount ok\n");
}

static int cpu_has_smap(void)
{
    uint32_t a = 7, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return (b >> 20) & 1;
}

static void check_clac(void)
{
    uint64_t before = 0, after = 0, faulted = 0;
    last_vector = ~0ull;
    /* On #UD the handler resumes at label 2 with faulted still 1. */
    __asm__ volatile("lea 2f(%%rip), %%rax; mov %%rax, %3; movq $1, %2\n"
                     "stac; pushfq; pop %0; clac; pushfq; pop %1; movq $0, %2\n"
                     "2:"
                     : "+r"(before), "+r"(after), "+m"(faulted), "=m"(resume_at) :: "rax", "cc", "memory");
    resume_at = 0;
    if (!faulted) {
        if (!((before >> 18) & 1) || ((after >> 18) & 1))
            test_fail("stac/clac left AC at %llu then %llu", (unsigned long long)(before >> 18 & 1), (unsigned long long)(after >> 18 & 1));
        kprintf("assist clac ok\n");
        return;
    }
    if (last_vector != 6 || cpu_has_smap())
        test_fail("stac/clac raised vector %llu with SMAP %d", (unsigned long long)last_vector, cpu_has_smap());
    kprintf("assist clac ud\n");
}

static void check_sse(void)
{
    uint64_t cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    cr4 |= (1u << 9) | (1u << 10); /* OSFXSR, OSXMMEXCPT */
    __asm__ volatile("mov %0, %%cr4" ::"r"(cr4));
    uint64_t cr0;
    __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
    cr0 &= ~(1ull << 2); /* EM off */
    cr0 |= (1ull << 1);  /* MP on */
    __asm__ volatile("mov %0, %%cr0" ::"r"(cr0));
    static uint64_t a[2] __attribute__((aligned(16))) = {0x0123456789abcdefull, 0xfedcba9876543210ull};
    static uint64_t b[2] __attribute__((aligned(16))) = {0x1111111111111111ull, 0x0f0f0f0f0f0f0f0full};
    static uint64_t out[2] __attribute__((aligned(16)));
    __asm__ volatile("movdqu %1, %%xmm0; movdqu %2, %%xmm1; pxor %%xmm1, %%xmm0; paddq %%xmm1, %%xmm0; pshufd $0x4e, %%xmm0, %%xmm0; movdqu %%xmm0, %0"
                     : "=m"(out) : "m"(a), "m"(b) : "memory"); /* no SSE codegen here (-mgeneral-regs-only), so xmm needs no clobber */
    uint64_t lo = (a[0] ^ b[0]) + b[0], hi = (a[1] ^ b[1]) + b[1];
    if (out[0] != hi || out[1] != lo)
        test_fail("sse result 0x%llx 0x%llx, expected 0x%llx 0x%llx", (unsigned long long)out[0], (unsigned long long)out[1],
                  (unsigned long long)hi, (unsigned long long)lo);
    kprintf("assist sse ok\n");
}

static uint64_t code_pt[512] __attribute__((aligned(4096)));
static uint8_t code_page[4096] __attribute__((aligned(4096)));
#define CODE_VA 0x40000000ull /* 1 GiB: PML4[0] PDPT[1]; we take over PD for it */
static uint64_t code_pd[512] __attribute__((aligned(4096)));

static void check_fetch_fault(void)
{
    /* Map one 4 KiB page at CODE_VA; the page after it stays unmapped. */
    code_pt[0] = (uint64_t)(uintptr_t)code_page | 3;
    code_pd[0] = (uint64_t)(uintptr_t)code_pt | 3;
    uint64_t saved = lm_pdpt[1];
    lm_pdpt[1] = (uint64_t)(uintptr_t)code_pd | 3;
    __asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
    /* popcnt rax, rax (f3 48 0f b8 c0) with its first two bytes on the mapped page. */
    static const uint8_t insn[] = {0xf3, 0x48, 0x0f, 0xb8, 0xc0};
    for (unsigned i = 0; i < 4096; i++)
        code_page[i] = 0x90;
    code_page[4094] = insn[0];
    code_page[4095] = insn[1];
    last_vector = ~0ull;
    /* With EFER.NXE on, a fetch fault sets the I/D bit (bit 4) of the error code. */
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0xc0000080));
    lo |= 1u << 11;
    __asm__ volatile("wrmsr" ::"a"(lo), "d"(hi), "c"(0xc0000080));
    /* Call into the page; the #PF handler resumes at label 4. */
    __asm__ volatile("lea 4f(%%rip), %%rax; mov %%rax, %0; call *%1; 4:"
                     : "=m"(resume_at) : "r"(CODE_VA + 4094) : "rax", "memory");
    lm_pdpt[1] = saved;
    __asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
    if (last_vector != 14 || last_cr2 != CODE_VA + 4096 || !(last_error & (1u << 4)))
        test_fail("fetch across into an unmapped page: vector %llu cr2 0x%llx error 0x%llx", (unsigned long long)last_vector,
                  (unsigned long long)last_cr2, (unsigned long long)last_error);
    kprintf("assist fetch-fault ok\n");
}

void kmain64(uint64_t magic, uint64_t mbi)
{
    (void)mbi;
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%llx", (unsigned long long)magic);
    idt_init();
    idt_set_handler(3, on_exception);
    idt_set_handler(6, on_exception);
    idt_set_handler(14, on_exception);

    __asm__ volatile("int3");
    if (bp_count != 1 || last_vector != 3)
        test_fail("int3 gave %llu breakpoints, last vector %llu", (unsigned long long)bp_count, (unsigned long long)last_vector);
    kprintf("assist int3 ok\n");

    check_bitcount();
    check_clac();
    check_sse();

    last_vector = ~0ull;
    __asm__ volatile("lea 3f(%%rip), %%rax; mov %%rax, %0; ud2; 3:" : "=m"(resume_at) :: "rax", "memory");
    if (last_vector != 6)
        test_fail("ud2 raised vector %llu", (unsigned long long)last_vector);
    kprintf("assist ud2 ok\n");

    check_fetch_fault();
    test_pass();
}
