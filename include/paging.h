/* Guest page-table walks: every mapping of a vCPU's address space, in bounded memory. */
#ifndef MINIVM_PAGING_H
#define MINIVM_PAGING_H

#include "cpu.h"
#include "memory.h"

/* A maximal run that is contiguous both virtually and physically and lies
 * wholly inside one RAM block (ram = true) or wholly outside RAM. */
typedef struct GuestMapping {
    uint64_t vaddr;
    uint64_t paddr;
    uint64_t size;
    bool ram;
} GuestMapping;

/* Return false to stop the walk (with *errp set). */
typedef bool (*GuestMappingFn)(void *opaque, const GuestMapping *m, GError **errp);

/* Walk the page tables of `cpu` (x86_64 4- and 5-level, 1 GiB and 2 MiB pages;
 * i386 2-level with 4 MiB pages and PAE), read through `reader`, calling fn for
 * each mapping in ascending virtual order. Corrupt or cyclic tables end with an error. */
bool x86_walk_mappings(const X86CPUState *cpu, const GuestReader *reader, GuestMappingFn fn,
                       void *opaque, GError **errp);

#endif
