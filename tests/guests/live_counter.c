/*
 * A -kernel test guest for live dumps: every vCPU rewrites its own region of RAM
 * in passes, without pause, each pass storing the pass number into every 8-byte
 * word in address order (rep stosq). The registers say where each vCPU is:
 *
 *   R8  region start        R9  words in the region      RAX pass number
 *   RDI next word to store  RCX words left in the pass   RIP which instruction
 *
 * so one instant of the guest has, for each vCPU, a single cut: words below it
 * hold RAX and words from it on hold RAX - 1, where the cut is RDI at
 * live_store, the region start at live_fill and the region end anywhere else
 * (tests/functional/livecheck.py). Regions: vCPU i works in RAM block i % nblocks
 * (from 4 MiB up), which it shares evenly with the other vCPUs of that block, in page
 * aligned parts; the last 2 MiB of the first block (the tail) stay untouched until
 * `live_trigger` is set, then vCPU 0 also writes one word
 * of every tail page on each pass; `live_trigger` 2 shuts the guest down. Prints
 * "live-counter ready" when running.
 */
#include "demo_abi.h"

#define TAIL_SIZE (2ULL << 20)

volatile uint64_t live_trigger;

/* live_run(start, words, trigger or NULL, tail_start, tail_end): never returns. */
__attribute__((noreturn)) void live_run(uint64_t start, uint64_t words,
                                        volatile uint64_t *trigger, uint64_t tail_start,
                                        uint64_t tail_end);

__asm__(
    ".text\n"
    ".globl live_run\n"
    "live_run:\n"
    "    mov %r8, %r14\n"             /* tail end */
    "    mov %rdi, %r8\n"             /* region start */
    "    mov %rsi, %r9\n"             /* words */
    "    mov %rdx, %r12\n"            /* trigger, or 0 */
    "    mov %rcx, %r13\n"            /* tail start */
    "    cld\n"
    "    xor %eax, %eax\n"            /* pass 0: the region is all zero */
    "live_loop:\n"
    "    test %r12, %r12\n"
    "    jz 2f\n"
    "    cmpq $0, (%r12)\n"
    "    je 2f\n"
    "    cmpq $2, (%r12)\n"
    "    jne 3f\n"
    "    out %al, $0xf4\n"            /* MINIVM_PORT_EXIT */
    "3:  mov %r13, %r10\n"
    "1:  movq $0x4c494154, (%r10)\n"  /* "TAIL" */
    "    add $4096, %r10\n"
    "    cmp %r14, %r10\n"
    "    jb 1b\n"
    "2:  mov %r8, %rdi\n"
    "    inc %rax\n"
    ".globl live_fill\n"
    "live_fill:\n"
    "    mov %r9, %rcx\n"
    ".globl live_store\n"
    "live_store:\n"
    "    rep stosq\n"
    "    jmp live_loop\n");

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static void puts_serial(const char *s)
{
    while (*s) {
        outb(0x3f8, (uint8_t)*s++);
    }
}

static void lock(volatile uint64_t *l)
{
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {
        __asm__ volatile("pause");
    }
}

__attribute__((noreturn)) void guest_start(uint64_t cpu, const struct minivm_boot_info *info)
{
    volatile uint64_t *hb = (volatile uint64_t *)info->heartbeat_gpa;
    uint32_t nb = info->nblocks, b = (uint32_t)cpu % nb, k = (uint32_t)cpu / nb;
    uint32_t n = (info->ncpus - b + nb - 1) / nb;             /* the vCPUs in block b */
    uint64_t tail = info->blocks[0].start + info->blocks[0].size - TAIL_SIZE;
    uint64_t start = info->blocks[b].start, end = start + info->blocks[b].size;
    if (start < MINIVM_FILL_START_GPA) {
        start = MINIVM_FILL_START_GPA;
    }
    if (b == 0) {
        end = tail;
    }
    uint64_t pages = (end - start) >> 12;
    uint64_t lo = start + ((pages * k / n) << 12), hi = start + ((pages * (k + 1) / n) << 12);

    lock(&hb[0]);
    hb[1]++;
    if (hb[1] == info->ncpus) {
        puts_serial("live-counter ready\n");
    }
    __atomic_store_n(&hb[0], 0, __ATOMIC_RELEASE);
    live_run(lo, (hi - lo) / 8, cpu == 0 ? &live_trigger : 0, tail, tail + TAIL_SIZE);
}
