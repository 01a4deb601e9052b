/*
 * x86 page-table walker for paging=true dumps. One recursive descent; leaves
 * are split at RAM block boundaries and merged with the previous run when
 * both virtual and physical addresses continue it. Only the pending run is
 * kept, so memory does not grow with the number of mappings. The number of
 * page-table pages visited is capped, so aliased or cyclic tables cannot make
 * the walk run forever.
 */
#include "paging.h"
#include "util.h"

#include <string.h>

#define PTE_P   0x1ULL
#define PTE_PS  0x80ULL
#define ADDR_MASK 0x000ffffffffff000ULL

typedef struct Walk {
    const GuestReader *reader;
    const GuestMemory *mem;
    GuestMappingFn fn;
    void *opaque;
    GError **errp;
    bool failed;
    bool wide;                /* 8-byte entries (long mode, PAE) */
    bool pse;                 /* CR4.PSE for 32-bit paging */
    int va_bits;              /* 48 or 57 in long mode, else 32 */
    GuestMapping pending;
    bool have_pending;
    uint64_t visits, max_visits;
} Walk;

static int ram_block_at(const GuestMemory *mem, uint64_t pa, uint64_t *limit)
{
    uint64_t next = UINT64_MAX;

    for (guint i = 0; i < guest_memory_count(mem); i++) {
        RamBlock *b = guest_memory_block(mem, i);
        if (pa >= b->gpa && pa - b->gpa < b->size) {
            *limit = b->gpa + b->size;
            return (int)i;
        }
        if (b->gpa > pa) {
            next = MIN(next, b->gpa);
        }
    }
    *limit = next;
    return -1;
}

static void flush(Walk *w)
{
    if (w->have_pending && !w->failed && !w->fn(w->opaque, &w->pending, w->errp)) {
        w->failed = true;
    }
    w->have_pending = false;
}

static void add_run(Walk *w, uint64_t va, uint64_t pa, uint64_t size, int block)
{
    GuestMapping *p = &w->pending;
    bool ram = block >= 0;

    if (w->have_pending && p->vaddr + p->size == va && p->paddr + p->size == pa &&
        p->ram == ram) {
        uint64_t limit;
        if (ram_block_at(w->mem, p->paddr, &limit) == block) {
            p->size += size;
            return;
        }
    }
    flush(w);
    *p = (GuestMapping){ va, pa, size, ram };
    w->have_pending = true;
}

static void leaf(Walk *w, uint64_t va, uint64_t pa, uint64_t size)
{
    while (size && !w->failed) {
        uint64_t limit;
        int block = ram_block_at(w->mem, pa, &limit);
        uint64_t n = MIN(size, limit - pa);
        add_run(w, va, pa, n, block);
        va += n;
        pa += n;
        size -= n;
    }
}

static uint64_t canonical(const Walk *w, uint64_t va)
{
    if (w->va_bits < 64 && (va >> (w->va_bits - 1)) & 1) {
        va |= ~0ULL << w->va_bits;
    }
    return va;
}

/* level: 1 = the table of 4 KiB pages. shift: address bits below this level's index. */
static void walk_table(Walk *w, uint64_t table, int level, uint64_t va_base, unsigned entries)
{
    unsigned esize = w->wide ? 8 : 4;
    int shift = w->wide ? 12 + 9 * (level - 1) : 12 + 10 * (level - 1);
    uint8_t t[4096];

    if (w->failed || !guest_reader_read(w->reader, table, t, (uint64_t)entries * esize)) {
        return;
    }
    if (++w->visits > w->max_visits) {
        error_setg(w->errp, "dump: the guest page tables are corrupt or cyclic "
                   "(more than %" PRIu64 " tables visited)", w->max_visits);
        w->failed = true;
        return;
    }
    for (unsigned i = 0; i < entries && !w->failed; i++) {
        uint64_t e = 0;
        memcpy(&e, t + (size_t)i * esize, esize);
        if (!(e & PTE_P)) {
            continue;
        }
        uint64_t va = canonical(w, va_base | ((uint64_t)i << shift));
        bool large = (e & PTE_PS) && (w->wide ? (level == 2 || level == 3) : (level == 2 && w->pse));
        if (level == 1 || large) {
            uint64_t size = 1ULL << shift;
            uint64_t pa = w->wide ? (e & ADDR_MASK & ~(size - 1))
                                  : large ? ((e & 0xffc00000ULL) | ((e & 0x1fe000ULL) << 19))
                                          : (e & 0xfffff000ULL);
            leaf(w, va, pa, size);
        } else {
            walk_table(w, w->wide ? (e & ADDR_MASK) : (e & 0xfffff000ULL), level - 1, va,
                       w->wide ? 512 : 1024);
        }
    }
}

/* PAE: a 4-entry PDPT whose entries have no PS bit. */
static void walk_pae(Walk *w, uint64_t cr3)
{
    uint64_t pdpt[4];

    if (!guest_reader_read(w->reader, cr3 & 0xffffffe0ULL, pdpt, sizeof(pdpt))) {
        return;
    }
    for (unsigned i = 0; i < 4 && !w->failed; i++) {
        if (pdpt[i] & PTE_P) {
            walk_table(w, pdpt[i] & ADDR_MASK, 2, (uint64_t)i << 30, 512);
        }
    }
}

bool x86_walk_mappings(const X86CPUState *cpu, const GuestReader *reader, GuestMappingFn fn,
                       void *opaque, GError **errp)
{
    const GuestMemory *mem = reader->mem;
    Walk w = { .reader = reader, .mem = mem, .fn = fn, .opaque = opaque, .errp = errp };

    /* a sane set of tables has at most one table per RAM page, each reached a few times */
    w.max_visits = guest_memory_total(mem) / 4096 * 4 + 4096;
    if (x86_cpu_long_mode(cpu)) {
        w.wide = true;
        w.va_bits = (cpu->cr[4] & CR4_LA57) ? 57 : 48;
        walk_table(&w, cpu->cr[3] & ADDR_MASK, (cpu->cr[4] & CR4_LA57) ? 5 : 4, 0, 512);
    } else if (cpu->cr[4] & CR4_PAE) {
        w.wide = true;
        w.va_bits = 64;
        walk_pae(&w, cpu->cr[3]);
    } else {
        w.va_bits = 64;
        w.pse = (cpu->cr[4] & 0x10) != 0;
        walk_table(&w, cpu->cr[3] & 0xfffff000ULL, 2, 0, 1024);
    }
    flush(&w);
    return !w.failed;
}
