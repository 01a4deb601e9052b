/* x86_64 vCPU architectural state, independent of the accelerator. */
#ifndef MINIVM_CPU_H
#define MINIVM_CPU_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Segment flags use QEMU's layout (bits of the descriptor's high dword):
 * type 8..11, S 12, DPL 13..14, P 15, AVL 20, L 21, D/B 22, G 23. */
#define SEG_FLAG_TYPE_SHIFT 8
#define SEG_FLAG_S   (1u << 12)
#define SEG_FLAG_DPL_SHIFT 13
#define SEG_FLAG_P   (1u << 15)
#define SEG_FLAG_AVL (1u << 20)
#define SEG_FLAG_L   (1u << 21)
#define SEG_FLAG_DB  (1u << 22)
#define SEG_FLAG_G   (1u << 23)

typedef struct X86Segment {
    uint32_t selector;
    uint32_t limit;
    uint32_t flags;
    uint64_t base;
} X86Segment;

typedef struct X86Table {
    uint64_t base;
    uint32_t limit;
} X86Table;

enum { R_EAX, R_ECX, R_EDX, R_EBX, R_ESP, R_EBP, R_ESI, R_EDI,
       R_R8, R_R9, R_R10, R_R11, R_R12, R_R13, R_R14, R_R15 };

#define EFER_SCE (1ULL << 0)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define EFER_NXE (1ULL << 11)
#define CR0_PE   (1ULL << 0)
#define CR0_PG   (1ULL << 31)
#define CR4_PAE  (1ULL << 5)
#define CR4_LA57 (1ULL << 12)

typedef struct X86CPUState {
    uint64_t regs[16];   /* in x86 encoding order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15 */
    uint64_t rip;
    uint64_t rflags;
    X86Segment es, cs, ss, ds, fs, gs, ldt, tr;
    X86Table gdt, idt;
    uint64_t cr[5];      /* cr0, (cr1 unused), cr2, cr3, cr4 */
    uint64_t cr8;
    uint64_t efer;
    uint64_t apic_base;
    uint64_t kernel_gs_base;
} X86CPUState;

static inline bool x86_cpu_long_mode(const X86CPUState *s)
{
    return (s->efer & EFER_LMA) != 0;
}

static inline unsigned x86_cpu_cpl(const X86CPUState *s)
{
    return (s->cs.flags >> SEG_FLAG_DPL_SHIFT) & 3;
}

/* Append the "info registers" text for one CPU, in QEMU's layout. */
void x86_cpu_format_registers(const X86CPUState *s, GString *out);

/* Translate a guest-virtual address with the CPU's page tables, read through `r`.
 * Returns false when not mapped (or on a page-table read outside RAM). */
struct GuestReader;
bool x86_cpu_translate(const X86CPUState *s, const struct GuestReader *r,
                       uint64_t vaddr, uint64_t *paddr, uint64_t *page_size);
/* Copy guest-virtual memory through the CPU's page tables; false when any of it
 * is not mapped to RAM. */
bool x86_cpu_read_virt(const X86CPUState *s, const struct GuestReader *r, uint64_t vaddr,
                       void *buf, size_t len);

#endif
