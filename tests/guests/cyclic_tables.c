/*
 * A -kernel test guest whose page tables loop: it points PML4 slots 2..511 back
 * at the PML4 itself (from ring 3: the tables are user-accessible). A paging
 * dump must end with a clear error instead of walking forever.
 */
#include "demo_abi.h"

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

__attribute__((noreturn)) void guest_start(uint64_t cpu, const struct minivm_boot_info *info)
{
    if (cpu == 0) {
        volatile uint64_t *pml4 = (volatile uint64_t *)MINIVM_PML4_GPA;
        for (int i = 2; i < 512; i++) {
            pml4[i] = MINIVM_PML4_GPA | 0x7;
        }
        for (const char *s = "cyclic-tables ready\n"; *s; s++) {
            outb(0x3f8, (uint8_t)*s);
        }
    }
    for (;;) {
        outb(MINIVM_PORT_IDLE, 0);
    }
}
