/* A synthetic Linux x86_64 kernel in guest RAM: see synth_kernel.h. */
#include "synth_kernel.h"

#include <string.h>

#define START_KERNEL_MAP 0xffffffff80000000ULL
#define TEXT_VA 0xffffffff9a000000ULL      /* KASLR: a text mapping 416 MiB up */
#define DIRECT_MAP 0xffff9a4000000000ULL   /* KASLR: page_offset_base */
#define VMEMMAP 0xffffd1c000000000ULL      /* KASLR: vmemmap_base */
#define PAGE_SIZE_STRUCT 64
#define SECTION_BITS 27
#define ROOTS 2048                         /* 2^(46 - 27) sections, 256 a root */
#define TABLES 0x1000                      /* page tables from here up */
#define ROOTS_PA 0x40000                   /* mem_section: 16 KiB of root pointers */
#define SECTIONS_PA 0x44000                /* root 0: 256 struct mem_section */
#define NOTE_PA 0x45000
#define STRUCT_PAGES_PA 0x46000
#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
#define PTE_PS 0x80ULL
#define ADDR_MASK 0x000ffffffffff000ULL

static void put64(SynthKernel *k, uint64_t pa, uint64_t v)
{
    g_assert_cmpuint(pa + 8, <=, k->ram_size);
    v = GUINT64_TO_LE(v);
    memcpy(k->ram + pa, &v, 8);
}

static uint64_t get64(const SynthKernel *k, uint64_t pa)
{
    uint64_t v;

    memcpy(&v, k->ram + pa, 8);
    return GUINT64_FROM_LE(v);
}

uint64_t synth_new_table(SynthKernel *k)
{
    uint64_t pa = k->next_table;

    k->next_table += SYNTH_PAGE;
    g_assert_cmpuint(k->next_table, <=, ROOTS_PA);
    memset(k->ram + pa, 0, SYNTH_PAGE);
    return pa;
}

/* The entry for va at `level` (4: PML4 .. 1: PT) under top, tables added on the way. */
static uint64_t entry_addr(SynthKernel *k, uint64_t top, uint64_t va, int level)
{
    uint64_t table = top;

    for (int l = 4; l > level; l--) {
        uint64_t e = table + ((va >> (12 + 9 * (l - 1))) & 511) * 8;
        if (!(get64(k, e) & PTE_P)) {
            put64(k, e, synth_new_table(k) | PTE_P | PTE_RW);
        }
        table = get64(k, e) & ADDR_MASK;
    }
    return table + ((va >> (12 + 9 * (level - 1))) & 511) * 8;
}

void synth_map_page(SynthKernel *k, uint64_t top, uint64_t va, uint64_t pa)
{
    put64(k, entry_addr(k, top, va, 1), pa | PTE_P | PTE_RW);
}

void synth_unmap_page(SynthKernel *k, uint64_t top, uint64_t va)
{
    put64(k, entry_addr(k, top, va, 1), 0);
}

static void map_direct(SynthKernel *k)
{
    for (uint64_t pa = 0; pa < k->ram_size; pa += 2 << 20) {
        put64(k, entry_addr(k, k->top, DIRECT_MAP + pa, 2), pa | PTE_P | PTE_RW | PTE_PS);
    }
}

static void map_struct_pages(SynthKernel *k)
{
    uint64_t bytes = k->ram_size / SYNTH_PAGE * PAGE_SIZE_STRUCT;

    for (uint64_t off = 0; off < bytes; off += SYNTH_PAGE) {
        synth_map_page(k, k->top, VMEMMAP + off, STRUCT_PAGES_PA + off);
    }
}

static void write_sections(SynthKernel *k)
{
    put64(k, ROOTS_PA, DIRECT_MAP + SECTIONS_PA);
    put64(k, SECTIONS_PA, VMEMMAP | 3);            /* present, has a memory map */
}

static void describe(SynthKernel *k, bool hwpoison)
{
    g_string_printf(k->vmcoreinfo,
        "OSRELEASE=6.1.0-synthetic\nPAGESIZE=4096\n"
        "SYMBOL(init_uts_ns)=ffffffff9b7f9b60\nSYMBOL(mem_section)=%" G_GINT64_MODIFIER "x\n"
        "LENGTH(mem_section)=%d\nSIZE(mem_section)=16\nOFFSET(mem_section.section_mem_map)=0\n"
        "NUMBER(SECTION_SIZE_BITS)=%d\nNUMBER(MAX_PHYSMEM_BITS)=46\nSIZE(page)=%d\n"
        "OFFSET(page.flags)=0\nOFFSET(page._refcount)=52\nOFFSET(page.mapping)=24\n"
        "OFFSET(page.lru)=8\nOFFSET(page._mapcount)=48\nOFFSET(page.private)=40\n"
        "OFFSET(page.compound_dtor)=16\nOFFSET(page.compound_order)=17\n"
        "OFFSET(page.compound_head)=8\nLENGTH(zone.free_area)=11\n"
        "NUMBER(PG_lru)=%d\nNUMBER(PG_private)=%d\nNUMBER(PG_swapcache)=%d\n"
        "NUMBER(PG_swapbacked)=%d\nNUMBER(PG_slab)=%d\nNUMBER(PG_head_mask)=%" G_GUINT64_FORMAT "\n"
        "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=%d\nNUMBER(HUGETLB_PAGE_DTOR)=%d\n"
        "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=%d\nNUMBER(phys_base)=%" G_GINT64_FORMAT "\n"
        "SYMBOL(init_top_pgt)=%" G_GINT64_MODIFIER "x\nNUMBER(pgtable_l5_enabled)=0\n"
        "KERNELOFFSET=1a000000\nNUMBER(sme_mask)=0\n",
        (guint64)(DIRECT_MAP + ROOTS_PA), ROOTS, SECTION_BITS, PAGE_SIZE_STRUCT, SYNTH_PG_LRU,
        SYNTH_PG_PRIVATE, SYNTH_PG_SWAPCACHE, SYNTH_PG_SWAPBACKED, SYNTH_PG_SLAB,
        (guint64)SYNTH_PG_HEAD, SYNTH_BUDDY, SYNTH_HUGETLB_DTOR, SYNTH_OFFLINE, (gint64)k->phys_base,
        (guint64)k->top_va);
    if (hwpoison) {
        g_string_append_printf(k->vmcoreinfo, "NUMBER(PG_hwpoison)=%d\n", SYNTH_PG_HWPOISON);
    }
}

void synth_kernel_write_note(SynthKernel *k, uint64_t gpa)
{
    uint32_t hdr[3] = { GUINT32_TO_LE(11), GUINT32_TO_LE((uint32_t)k->vmcoreinfo->len), 0 };

    g_assert_cmpuint(gpa + 24 + k->vmcoreinfo->len, <=, k->ram_size);
    memcpy(k->ram + gpa, hdr, sizeof(hdr));
    memcpy(k->ram + gpa + 12, "VMCOREINFO\0", 12);
    memcpy(k->ram + gpa + 24, k->vmcoreinfo->str, k->vmcoreinfo->len);
}

void synth_kernel_init(SynthKernel *k, uint8_t *ram, uint64_t ram_size, bool hwpoison)
{
    g_assert_cmpuint(ram_size % (2 << 20), ==, 0);
    g_assert_cmpuint(ram_size, <=, 64 << 20);
    *k = (SynthKernel){ .ram = ram, .ram_size = ram_size, .next_table = TABLES,
                        .vmemmap = VMEMMAP, .struct_pages = STRUCT_PAGES_PA, .note = NOTE_PA,
                        .vmcoreinfo = g_string_new(NULL) };
    k->top = synth_new_table(k);
    k->top_va = TEXT_VA + 0x1610000;
    k->phys_base = (int64_t)k->top - (int64_t)(k->top_va - START_KERNEL_MAP);
    synth_map_page(k, k->top, k->top_va, k->top);
    map_direct(k);
    map_struct_pages(k);
    write_sections(k);
    describe(k, hwpoison);
    synth_kernel_write_note(k, NOTE_PA);
}

void synth_kernel_free(SynthKernel *k)
{
    g_string_free(k->vmcoreinfo, TRUE);
}

uint64_t synth_first_data_pfn(const SynthKernel *k)
{
    uint64_t end = STRUCT_PAGES_PA + k->ram_size / SYNTH_PAGE * PAGE_SIZE_STRUCT;

    return (end + SYNTH_PAGE - 1) / SYNTH_PAGE;
}

static uint64_t struct_page_pa(const SynthKernel *k, uint64_t pfn)
{
    g_assert_cmpuint(pfn, <, k->ram_size / SYNTH_PAGE);
    return STRUCT_PAGES_PA + pfn * PAGE_SIZE_STRUCT;
}

void synth_set_page(SynthKernel *k, uint64_t pfn, uint64_t flags, uint64_t mapping,
                    uint64_t private_, int32_t mapcount)
{
    uint64_t sp = struct_page_pa(k, pfn);
    uint32_t mc = GUINT32_TO_LE((uint32_t)mapcount);

    put64(k, sp, flags);
    put64(k, sp + 24, mapping);
    put64(k, sp + 40, private_);
    memcpy(k->ram + sp + 48, &mc, 4);
}

void synth_set_compound(SynthKernel *k, uint64_t head, unsigned order, unsigned dtor,
                        uint64_t flags, uint64_t mapping)
{
    synth_set_page(k, head, flags | SYNTH_PG_HEAD, mapping, 0, -1);
    k->ram[struct_page_pa(k, head + 1) + 16] = (uint8_t)dtor;
    k->ram[struct_page_pa(k, head + 1) + 17] = (uint8_t)order;
    for (uint64_t pfn = head + 1; pfn < head + (1ULL << order); pfn++) {
        put64(k, struct_page_pa(k, pfn) + 8, (VMEMMAP + head * PAGE_SIZE_STRUCT) | 1);
    }
}
