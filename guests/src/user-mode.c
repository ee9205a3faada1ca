/* user-mode: ring 3 and back, the way Linux runs its first process. The guest loads its
 * own GDT (kernel code/data, then user code32/data/code64 in the order SYSRET needs) and a
 * 64-bit TSS, enables SYSCALL (EFER.SCE, STAR, LSTAR, SFMASK), marks its identity map
 * user-accessible, and enters ring 3 with IRETQ. User code issues SYSCALL twice; the entry
 * stub records CS, SS, RCX, R11 and RFLAGS as the kernel sees them and returns with SYSRETQ
 * after the first. Then a user-mode #UD (ud2) must arrive on the TSS stack at CPL 0; its
 * handler returns to ring 0 (back_to_kernel).
 * Output: "user-mode syscall ok", "user-mode sysret ok", "user-mode exception ok". */
#include "idt.h"
#include "io.h"
#include "longmode.h"
#include "multiboot.h"
#include "print.h"
#include "serial.h"
#include "test.h"

const char test_name[] = "user-mode";

/* The kit's selectors stay valid (its IDT gates use SEL_CODE64 = 0x18). */
#define KERNEL_CS 0x18
#define KERNEL_SS 0x20 /* SYSCALL loads SS = STAR[47:32] + 8 */
#define USER_BASE 0x28 /* STAR[63:48]: SYSRET loads SS = base + 8, CS = base + 16 */
#define USER_SS (0x30 | 3)
#define USER_CS (0x38 | 3)
#define TSS_SEL 0x40

static uint64_t gdt[10] __attribute__((aligned(16)));
static struct __attribute__((packed)) { uint32_t r0; uint64_t rsp[3]; uint64_t r1; uint64_t ist[7]; uint64_t r2; uint16_t r3, iomap; } tss;
static uint8_t kernel_stack[8192] __attribute__((aligned(16)));
static uint8_t user_stack[4096] __attribute__((aligned(16)));

/* Written by the entry stub: one record per SYSCALL. */
struct syscall_record { uint64_t cs, ss, rcx, r11, rflags, nr, arg; };
volatile struct syscall_record records[2];
volatile uint64_t saved_kernel_rsp;
extern char user_entry[], user_after_first[], user_after_second[], syscall_entry[], back_to_kernel[];

/* enter_user(): saves the callee-saved registers and RSP, then IRETQ to user_entry.
 * The second SYSCALL (nr 2) returns here through `back_to_kernel`. */
uint64_t enter_user(uint64_t user_rsp);
__asm__(".text\n"
        ".globl enter_user\n"
        "enter_user:\n"
        "  push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
        "  mov %rsp, saved_kernel_rsp(%rip)\n"
        "  pushq $0x33\n"          /* SS */
        "  push %rdi\n"             /* RSP */
        "  pushq $0x202\n"          /* RFLAGS: IF on (nothing is unmasked at the PIC/LAPIC) */
        "  pushq $0x3b\n"           /* CS */
        "  lea user_entry(%rip), %rax\n"
        "  push %rax\n"
        "  iretq\n"
        /* Ring 3. */
        ".globl user_entry, user_after_first, user_after_second\n"
        "user_entry:\n"
        "  mov $1, %eax\n"
        "  mov $0x1111, %edi\n"
        "  syscall\n"
        "user_after_first:\n"
        "  mov %cs, %rdi\n"        /* CS as ring 3 sees it after SYSRETQ */
        "  mov $2, %eax\n"
        "  syscall\n"
        "user_after_second:\n"
        "  ud2\n"
        /* Ring 0 (LSTAR). RSP is still the user stack. */
        ".globl syscall_entry\n"
        "syscall_entry:\n"
        "  swapgs\n"                /* as Linux's entry_SYSCALL_64 starts */
        "  push %rax\n"

        "  imul $56, %rax, %rax\n"
        "  lea records-56(%rip), %rdx\n"
        "  add %rax, %rdx\n"
        "  mov %cs, %rax; mov %rax, 0(%rdx)\n"
        "  mov %ss, %rax; mov %rax, 8(%rdx)\n"
        "  mov %rcx, 16(%rdx)\n"
        "  mov %r11, 24(%rdx)\n"
        "  pushfq; pop %rax; mov %rax, 32(%rdx)\n"
        "  pop %rax\n"
        "  mov %rax, 40(%rdx)\n"
        "  mov %rdi, 48(%rdx)\n"
        "  cmp $2, %rax\n"
        "  je 1f\n"
        "  swapgs\n"
        "  sysretq\n"
        "1: lea user_after_second(%rip), %rcx\n"   /* back to ring 3 for the ud2 */
        "  swapgs\n"
        "  sysretq\n"
        ".globl back_to_kernel\n"
        "back_to_kernel:\n"
        "  mov saved_kernel_rsp(%rip), %rsp\n"
        "  pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
        "  mov $0, %eax\n"
        "  ret\n");

static volatile uint64_t ud_cs, ud_ip, ud_ss, ud_on_tss_stack;

static void on_ud(struct isr_frame *f)
{
    uint64_t rsp;
    __asm__ volatile("mov %%rsp, %0" : "=r"(rsp));
    ud_cs = f->cs;
    ud_ip = f->ip;
    ud_ss = f->ss;
    ud_on_tss_stack = rsp > (uint64_t)(uintptr_t)kernel_stack && rsp <= (uint64_t)(uintptr_t)kernel_stack + sizeof kernel_stack;
    /* Leave ring 3 for good: continue in ring 0 where enter_user returns. */
    f->ip = (uint64_t)(uintptr_t)back_to_kernel;
    f->cs = KERNEL_CS;
    f->ss = KERNEL_SS;
    f->flags = 0x2;
}


void kmain64(uint64_t magic, uint64_t mbi)
{
    (void)mbi;
    serial_init();
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC)
        test_fail("bad multiboot magic 0x%llx", (unsigned long long)magic);
    idt_init();
    idt_set_handler(6, on_ud);

    gdt[1] = 0x00cf9a000000ffffull; /* 0x08 kit code32 */
    gdt[2] = 0x00cf92000000ffffull; /* 0x10 kit data */
    gdt[3] = 0x00af9a000000ffffull; /* 0x18 kernel code64 */
    gdt[4] = 0x00cf92000000ffffull; /* 0x20 kernel data */
    gdt[5] = 0x00cffa000000ffffull; /* 0x28 user code32 */
    gdt[6] = 0x00cff2000000ffffull; /* 0x30 user data */
    gdt[7] = 0x00affa000000ffffull; /* 0x38 user code64 */
    uint64_t t = (uint64_t)(uintptr_t)&tss, limit = sizeof tss - 1;
    gdt[8] = (limit & 0xffff) | (t & 0xffffff) << 16 | 0x89ull << 40 | ((limit >> 16) & 0xf) << 48 | ((t >> 24) & 0xff) << 56;
    gdt[9] = t >> 32;
    tss.rsp[0] = (uint64_t)(uintptr_t)kernel_stack + sizeof kernel_stack;
    tss.iomap = sizeof tss;
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } desc = {sizeof gdt - 1, (uint64_t)(uintptr_t)gdt};
    __asm__ volatile("lgdt %0\n"
                     "pushq $0x18; lea 1f(%%rip), %%rax; push %%rax; lretq\n"
                     "1: mov $0x20, %%eax; mov %%eax, %%ds; mov %%eax, %%es; mov %%eax, %%ss\n"
                     "xor %%eax, %%eax; mov %%eax, %%fs; mov %%eax, %%gs\n"
                     "mov $0x40, %%eax; ltr %%ax"
                     :: "m"(desc) : "rax", "memory");

    /* The identity map becomes user-accessible (U/S at every level). */
    lm_pml4[0] |= 4;
    for (int i = 0; i < 4; i++)
        lm_pdpt[i] |= 4;
    for (int i = 0; i < 4 * 512; i++)
        lm_pd[i] |= 4;
    __asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");

    wrmsr(0xc0000080, rdmsr(0xc0000080) | 1);                 /* EFER.SCE */
    wrmsr(0xc0000081, (uint64_t)USER_BASE << 48 | (uint64_t)KERNEL_CS << 32); /* STAR */
    wrmsr(0xc0000082, (uint64_t)(uintptr_t)syscall_entry);    /* LSTAR */
    wrmsr(0xc0000084, 0x47700);                               /* SFMASK: TF DF IF IOPL AC NT */

    kprintf("user-mode: entering ring 3\n");
    enter_user((uint64_t)(uintptr_t)user_stack + sizeof user_stack);

    const volatile struct syscall_record *first = &records[0], *second = &records[1];
    if (first->cs != KERNEL_CS || first->ss != KERNEL_SS)
        test_fail("SYSCALL entered with CS 0x%llx SS 0x%llx (want 0x18, 0x20)", (unsigned long long)first->cs, (unsigned long long)first->ss);
    if (first->rcx != (uint64_t)(uintptr_t)user_after_first || first->nr != 1 || first->arg != 0x1111)
        test_fail("SYSCALL saved RCX 0x%llx (want 0x%llx), nr %llu, arg 0x%llx", (unsigned long long)first->rcx,
                  (unsigned long long)(uintptr_t)user_after_first, (unsigned long long)first->nr, (unsigned long long)first->arg);
    if ((first->r11 & 0x200) == 0 || (first->rflags & 0x200) != 0)
        test_fail("SYSCALL flags: R11 0x%llx (IF expected), RFLAGS 0x%llx (IF masked)", (unsigned long long)first->r11, (unsigned long long)first->rflags);
    kprintf("user-mode syscall ok\n");
    if (second->arg != USER_CS)
        test_fail("after SYSRETQ ring 3 saw CS 0x%llx (want 0x%x)", (unsigned long long)second->arg, USER_CS);
    if (second->cs != KERNEL_CS || second->rcx != (uint64_t)(uintptr_t)user_after_second)
        test_fail("second SYSCALL: CS 0x%llx RCX 0x%llx", (unsigned long long)second->cs, (unsigned long long)second->rcx);
    kprintf("user-mode sysret ok\n");
    if (ud_cs != USER_CS || ud_ss != USER_SS || ud_ip != (uint64_t)(uintptr_t)user_after_second || !ud_on_tss_stack)
        test_fail("#UD from ring 3: CS 0x%llx SS 0x%llx RIP 0x%llx on the TSS stack %llu", (unsigned long long)ud_cs,
                  (unsigned long long)ud_ss, (unsigned long long)ud_ip, (unsigned long long)ud_on_tss_stack);
    kprintf("user-mode exception ok\n");
    test_pass();
}
