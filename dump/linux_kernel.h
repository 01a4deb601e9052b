/*
 * What a dump reads of a Linux guest kernel without its symbols: the values its
 * VMCOREINFO names (KernelInfo), and its virtual memory through its own page
 * tables (KernelReader), with no vCPU and no assumed direct-map base (KASLR).
 */
#ifndef MINIVM_DUMP_LINUX_KERNEL_H
#define MINIVM_DUMP_LINUX_KERNEL_H

#include "cpu.h"
#include "memory.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define LINUX_START_KERNEL_MAP 0xffffffff80000000ULL

/* The VMCOREINFO entries minivm uses, in the order of kernel_field_keys[]. */
typedef enum KernelField {
    KF_INIT_TOP_PGT, KF_PHYS_BASE, KF_PGTABLE_L5, KF_SME_MASK, KF_PAGESIZE,
    KF_MEM_SECTION, KF_MEM_SECTION_LEN, KF_MEM_SECTION_SIZE, KF_SECTION_MEM_MAP,
    KF_SECTION_SIZE_BITS, KF_MAX_PHYSMEM_BITS,
    KF_PAGE_SIZE, KF_PAGE_FLAGS, KF_PAGE_MAPPING, KF_PAGE_PRIVATE, KF_PAGE_MAPCOUNT,
    KF_PAGE_COMPOUND_HEAD, KF_PAGE_COMPOUND_ORDER, KF_PAGE_COMPOUND_DTOR, KF_FREE_AREA_LEN,
    KF_PG_LRU, KF_PG_PRIVATE, KF_PG_SWAPCACHE, KF_PG_SWAPBACKED, KF_PG_SLAB, KF_PG_HWPOISON,
    KF_PG_HEAD_MASK, KF_BUDDY_MAPCOUNT, KF_OFFLINE_MAPCOUNT, KF_HUGETLB_DTOR,
    KF__COUNT
} KernelField;

/* Values of VMCOREINFO entries: NUMBER() as signed decimal, SYMBOL() as hex. */
typedef struct KernelInfo {
    uint64_t value[KF__COUNT];
    uint64_t found;                 /* bit f: the text has entry f */
} KernelInfo;

/* The entry's name as VMCOREINFO spells it, e.g. "NUMBER(PG_lru)". */
const char *kernel_field_key(KernelField f);
void kernel_info_parse(KernelInfo *ki, const char *text, size_t len);

static inline bool kernel_info_has(const KernelInfo *ki, KernelField f)
{
    return (ki->found >> f) & 1;
}

/* Reads of kernel virtual addresses, translated by a walk of the kernel's own page
 * tables; the last translation is kept (one reader per thread). */
typedef struct KernelReader {
    const GuestReader *reader;
    X86CPUState cpu;                /* no vCPU: long mode, CR3 at the kernel's top table */
    uint64_t cached_va, cached_pa, cached_size;   /* cached_size 0: nothing cached */
} KernelReader;

/*
 * The kernel's top page table is at SYMBOL(init_top_pgt) - START_KERNEL_MAP +
 * NUMBER(phys_base). False, with a message, when an entry is missing, the guest's
 * memory is encrypted (NUMBER(sme_mask)), or those tables do not map
 * SYMBOL(init_top_pgt) to that very table.
 */
bool kernel_reader_init(KernelReader *kr, const GuestReader *r, const KernelInfo *ki,
                        GError **errp);
/* Copy [va, va + len); false when any of it is not mapped to RAM. */
bool kernel_read(KernelReader *kr, uint64_t va, void *buf, size_t len);

#endif
