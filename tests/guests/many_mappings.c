/*
 * A -kernel test guest for paging=true dumps with PN_XNUM: it adds 70000 virtual
 * mappings, every other 4 KiB page from 0x8000000000 up, all of the same
 * physical page (so no two merge), by writing its own user-accessible page
 * tables from ring 3. Needs -m 64M or more. Prints "many-mappings ready".
 */
#include "demo_abi.h"

#define MAPPINGS 70000
#define TABLES_GPA 0x1000000ULL      /* PDPT, PD, then the page tables */
#define DATA_GPA 0x1800000ULL        /* the one physical page every mapping shows */
#define BASE_VA 0x8000000000ULL      /* PML4 slot 1 */

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

__attribute__((noreturn)) void guest_start(uint64_t cpu, const struct minivm_boot_info *info)
{
    if (cpu == 0) {
        volatile uint64_t *pml4 = (volatile uint64_t *)MINIVM_PML4_GPA;
        volatile uint64_t *pdpt = (volatile uint64_t *)TABLES_GPA;
        volatile uint64_t *pd = (volatile uint64_t *)(TABLES_GPA + 0x1000);
        volatile uint64_t *pt = (volatile uint64_t *)(TABLES_GPA + 0x2000);
        char *data = (char *)DATA_GPA;
        const char msg[] = "MINIVM-MANY-MAPPINGS";

        for (unsigned i = 0; i < sizeof(msg); i++) {
            data[i] = msg[i];
        }
        for (uint64_t i = 0; i < 2 * MAPPINGS; i += 2) {
            pt[i] = DATA_GPA | 0x7;
        }
        for (uint64_t t = 0; t < (2 * MAPPINGS + 511) / 512; t++) {
            pd[t] = (TABLES_GPA + 0x2000 + t * 0x1000) | 0x7;
        }
        pdpt[0] = (TABLES_GPA + 0x1000) | 0x7;
        pml4[1] = TABLES_GPA | 0x7;
        puts_serial("many-mappings ready\n");
    }
    for (;;) {
        outb(MINIVM_PORT_IDLE, 0);
    }
}
