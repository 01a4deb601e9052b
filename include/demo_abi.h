/*
 * The contract between minivm's x86_64 loader and the guests it starts
 * (the built-in demo guest and -kernel ELF executables).
 *
 * Every vCPU starts in 64-bit ring 3 with an identity map of guest RAM (2 MiB
 * pages, user-accessible), RDI = vCPU index, RSI = the guest-physical address
 * of struct minivm_boot_info, RSP = the top of its own stack. Port I/O is
 * allowed by RFLAGS.IOPL = 3 and, because the virtualization layer on these
 * machines reports IOPL 0 to the guest and checks the TSS, by an all-zero I/O
 * permission bitmap in the TSS as well.
 */
#ifndef MINIVM_DEMO_ABI_H
#define MINIVM_DEMO_ABI_H

#include <stdint.h>

#define MINIVM_BOOT_INFO_GPA   0x1000ULL
#define MINIVM_GDT_GPA         0x2000ULL
#define MINIVM_HEARTBEAT_GPA   0x3000ULL   /* u64 lock, then one u64 counter per vCPU at +64 */
#define MINIVM_PML4_GPA        0x8000ULL   /* PML4, PDPT, then the page directories */
#define MINIVM_STACKS_GPA      0x100000ULL /* MINIVM_STACK_SIZE per vCPU */
#define MINIVM_STACK_SIZE      0x4000ULL
#define MINIVM_MAX_CPUS        64
#define MINIVM_GUEST_LOAD_GPA  0x200000ULL /* where the demo guest is linked */
#define MINIVM_FILL_START_GPA  0x400000ULL /* the demo guest fills RAM from here up */
#define MINIVM_BOOT_MAGIC      0x6f6f62766d696e6dULL /* "mnimvboo" */
#define MINIVM_DEMO_SEED       0x6d696e69766d3031ULL
#define MINIVM_MAX_BOOT_BLOCKS 8

/* Port I/O understood by minivm (besides the 16550 UART at 0x3f8). */
#define MINIVM_PORT_IDLE       0x0cf0      /* any write: the vCPU thread sleeps ~1 ms */
#define MINIVM_PORT_EXIT       0x00f4      /* any write: guest shutdown */

struct minivm_boot_block {
    uint64_t start;
    uint64_t size;
};

struct minivm_boot_info {
    uint64_t magic;
    uint64_t seed;
    uint32_t ncpus;
    uint32_t nblocks;
    uint64_t heartbeat_gpa;
    struct minivm_boot_block blocks[MINIVM_MAX_BOOT_BLOCKS];
};

#endif
