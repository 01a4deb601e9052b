/*
 * A synthetic Linux x86_64 kernel in a buffer of guest RAM, for the page filter and
 * VMCOREINFO search tests (and the fuzz seeds they write): 4-level page tables with
 * a KASLR-like text mapping of init_top_pgt, a direct map of all RAM in 2 MiB pages,
 * a vmemmap of struct pages (64 bytes, 6.1's offsets) in 4 KiB pages,
 * SPARSEMEM_EXTREME sections, and the kernel's VMCOREINFO note in a page of its own.
 */
#ifndef MINIVM_TESTS_SYNTH_KERNEL_H
#define MINIVM_TESTS_SYNTH_KERNEL_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define SYNTH_PAGE 4096
#define SYNTH_PG_LRU 4
#define SYNTH_PG_PRIVATE 13
#define SYNTH_PG_SWAPCACHE 10
#define SYNTH_PG_SWAPBACKED 19
#define SYNTH_PG_SLAB 9
#define SYNTH_PG_HWPOISON 23
#define SYNTH_PG_HEAD (1ULL << 16)
#define SYNTH_BUDDY (-129)
#define SYNTH_OFFLINE (-257)
#define SYNTH_HUGETLB_DTOR 2
#define SYNTH_ANON_MAPPING 0xffff9a0001234001ULL   /* an anon_vma, tagged */
#define SYNTH_FILE_MAPPING 0xffff9a0001234800ULL   /* an address_space */

typedef struct SynthKernel {
    uint8_t *ram;
    uint64_t ram_size;
    uint64_t next_table;          /* bump allocator of page-table pages (physical) */
    uint64_t top;                 /* init_top_pgt (physical) */
    uint64_t top_va;              /* SYMBOL(init_top_pgt) */
    int64_t phys_base;
    uint64_t vmemmap;             /* struct page address of frame 0 */
    uint64_t struct_pages;        /* physical address of frame 0's struct page */
    uint64_t note;                /* physical address of the VMCOREINFO note */
    GString *vmcoreinfo;          /* the note's text */
} SynthKernel;

/* A kernel in ram (ram_size: a multiple of 2 MiB, 2 to 64 MiB; zeroed by the caller).
 * hwpoison: whether the kernel reports NUMBER(PG_hwpoison). */
void synth_kernel_init(SynthKernel *k, uint8_t *ram, uint64_t ram_size, bool hwpoison);
/* Write the VMCOREINFO note (after changing k->vmcoreinfo, again). */
void synth_kernel_write_note(SynthKernel *k, uint64_t gpa);
void synth_kernel_free(SynthKernel *k);

/* The first frame free for data: above the kernel's own structures. */
uint64_t synth_first_data_pfn(const SynthKernel *k);

/* Fields of frame pfn's struct page. */
void synth_set_page(SynthKernel *k, uint64_t pfn, uint64_t flags, uint64_t mapping,
                    uint64_t private_, int32_t mapcount);
/* A compound page of 1 << order frames from head: PG_head plus `flags` on the head,
 * the order and destructor in page[1], compound_head on every tail. */
void synth_set_compound(SynthKernel *k, uint64_t head, unsigned order, unsigned dtor,
                        uint64_t flags, uint64_t mapping);
/* Map va to pa (4 KiB) in the tables rooted at `top`, adding tables as needed. */
void synth_map_page(SynthKernel *k, uint64_t top, uint64_t va, uint64_t pa);
/* Remove the 4 KiB mapping of va under `top` (it must be mapped with 4 KiB pages). */
void synth_unmap_page(SynthKernel *k, uint64_t top, uint64_t va);
/* A fresh, empty top-level table. */
uint64_t synth_new_table(SynthKernel *k);

#endif
