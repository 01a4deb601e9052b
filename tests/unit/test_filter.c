/*
 * Unit tests for dump levels and the VMCOREINFO search, on a synthetic Linux kernel
 * in guest RAM (synth_kernel.h): makedumpfile's decision for each kind of page,
 * ranges that begin before the frames decided, garbage kept, the entries a level
 * needs, the note found among bad candidates, and a filtered kdump file.
 *
 * With MINIVM_FUZZ_SEED_DIR=DIR set, the guests built here are also written there as
 * inputs of the fuzz_pagefilter target (tests/fuzz/make_seeds.py).
 */
#include "dump/dump-internal.h"
#include "dump/page_filter.h"
#include "dump/vmcoreinfo_scan.h"
#include "memory.h"
#include "synth_kernel.h"
#include "unit_kdump.h"
#include "util.h"

#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define RAM (32ULL << 20)
#define FREE_BLOCK 2048                   /* order 10: frames 2048..3071 */
#define THP 3584                          /* anonymous, order 9 */
#define HUGETLB 5120                      /* order 9, the hugetlb destructor */
#define SLAB_COMPOUND 1020                /* order 2, kept */
#define UNMAPPED 1088                     /* 64 frames whose struct pages are not mapped */

/* The first data frames, one kind of page each. */
enum {
    P_CACHE, P_CACHE_PRIVATE, P_SWAPCACHE, P_ANON, P_SLAB_ANON, P_OFFLINE, P_HWPOISON,
    P_PLAIN, P_BAD_ORDER, P_HUGE_ORDER, P_HUGE_ORDER_NEXT, P_BAD_TAIL,
    P_BUDDY = 16,                         /* order 3: 16..23 */
    P_AFTER_BUDDY = 24,
    NKINDS = 32,
};

typedef struct Guest {
    GuestMemory *mem;
    GuestReader reader;
    SynthKernel k;
    uint64_t base;                        /* the frame of kind 0 */
} Guest;

static uint64_t bit(int n)
{
    return 1ULL << n;
}

static void write_seed(const Guest *g, unsigned level, const char *name);

static void add_kinds(Guest *g)
{
    SynthKernel *k = &g->k;
    uint64_t b = g->base;

    synth_set_page(k, b + P_CACHE, bit(SYNTH_PG_LRU), SYNTH_FILE_MAPPING, 0, -1);
    synth_set_page(k, b + P_CACHE_PRIVATE, bit(SYNTH_PG_LRU) | bit(SYNTH_PG_PRIVATE),
                   SYNTH_FILE_MAPPING, 0xffff9a0000abc000ULL, -1);
    synth_set_page(k, b + P_SWAPCACHE, bit(SYNTH_PG_SWAPBACKED) | bit(SYNTH_PG_SWAPCACHE),
                   SYNTH_FILE_MAPPING, 0, -1);
    synth_set_page(k, b + P_ANON, bit(SYNTH_PG_LRU) | bit(SYNTH_PG_SWAPBACKED),
                   SYNTH_ANON_MAPPING, 0, 0);
    synth_set_page(k, b + P_SLAB_ANON, bit(SYNTH_PG_SLAB), SYNTH_ANON_MAPPING, 0, 0);
    synth_set_page(k, b + P_OFFLINE, 0, 0, 0, SYNTH_OFFLINE);
    synth_set_page(k, b + P_HWPOISON, bit(SYNTH_PG_HWPOISON), 0, 0, -1);
    synth_set_page(k, b + P_PLAIN, 0, 0, 0, -1);
    synth_set_page(k, b + P_BAD_ORDER, 0, 0, 50, SYNTH_BUDDY);
    /* a head claiming order 40: taken as order 0, the next frame decides itself */
    synth_set_compound(k, b + P_HUGE_ORDER, 1, 0, 0, SYNTH_ANON_MAPPING);
    k->ram[k->struct_pages + (b + P_HUGE_ORDER_NEXT) * 64 + 17] = 40;
    synth_set_page(k, b + P_HUGE_ORDER_NEXT, 0, 0, 0, -1);
    synth_set_page(k, b + P_BAD_TAIL, 0, 0, 0, -1);
    memcpy(k->ram + k->struct_pages + (b + P_BAD_TAIL) * 64 + 8,
           &(uint64_t){ GUINT64_TO_LE(0xffff9a0000000011ULL) }, 8);
    synth_set_page(k, b + P_BUDDY, 0, 0, 3, SYNTH_BUDDY);
}

static void add_ranges(Guest *g)
{
    SynthKernel *k = &g->k;

    synth_set_page(k, FREE_BLOCK, 0, 0, 10, SYNTH_BUDDY);
    synth_set_compound(k, THP, 9, 0, bit(SYNTH_PG_LRU) | bit(SYNTH_PG_SWAPBACKED),
                       SYNTH_ANON_MAPPING);
    synth_set_compound(k, HUGETLB, 9, SYNTH_HUGETLB_DTOR, 0, 0);
    synth_set_compound(k, SLAB_COMPOUND, 2, 0, bit(SYNTH_PG_SLAB), 0);
    /* page cache whose struct pages cannot be read: kept */
    for (uint64_t pfn = UNMAPPED; pfn < UNMAPPED + 64; pfn++) {
        synth_set_page(k, pfn, bit(SYNTH_PG_LRU), SYNTH_FILE_MAPPING, 0, -1);
    }
    synth_unmap_page(k, k->top, k->vmemmap + UNMAPPED * 64);
}

static void guest_init(Guest *g, bool hwpoison)
{
    g->mem = guest_memory_new(NULL, NULL);
    RamBlock *b = guest_memory_add(g->mem, "ram", 0, RAM, NULL);
    g_assert_nonnull(b);
    synth_kernel_init(&g->k, b->host, RAM, hwpoison);
    g->reader = (GuestReader){ .mem = g->mem };
    g->base = (synth_first_data_pfn(&g->k) + NKINDS - 1) / NKINDS * NKINDS;
    g_assert_cmpuint(g->base + NKINDS, <=, SLAB_COMPOUND);
    add_kinds(g);
    add_ranges(g);
}

static void guest_free(Guest *g)
{
    synth_kernel_free(&g->k);
    guest_memory_free(g->mem);
}

static PageFilter *filter_new(Guest *g, unsigned level)
{
    PageFilter *f = NULL;
    GError *err = NULL;

    g_assert_true(page_filter_new(level, g->k.vmcoreinfo->str, g->k.vmcoreinfo->len,
                                  &g->reader, &f, &err));
    g_assert_no_error(err);
    return f;
}

/* Decide frames first .. first + n - 1 in calls of at most `chunk` frames. */
static void decide(PageFilter *f, uint64_t first, size_t n, size_t chunk, bool *out)
{
    PageFilterCursor *c = page_filter_cursor_new(f);
    uint64_t *pfns = g_new(uint64_t, n);

    for (size_t i = 0; i < n; i++) {
        pfns[i] = first + i;
    }
    for (size_t i = 0; i < n; i += chunk) {
        page_filter_decide(c, pfns + i, MIN(chunk, n - i), out + i);
    }
    g_free(pfns);
    page_filter_cursor_free(c);
}

static bool excluded_at(Guest *g, unsigned level, uint64_t pfn)
{
    PageFilter *f = filter_new(g, level);
    bool out;

    decide(f, pfn, 1, 1, &out);
    page_filter_free(f);
    return out;
}

static void test_page_kinds(void)
{
    Guest g;
    static const struct {
        int kind;
        unsigned excluded_by;             /* the level bits that leave it out */
    } expect[] = {
        { P_CACHE, 2 | 4 }, { P_CACHE_PRIVATE, 4 }, { P_SWAPCACHE, 2 | 4 }, { P_ANON, 8 },
        { P_SLAB_ANON, 0 }, { P_OFFLINE, 31 }, { P_HWPOISON, 31 }, { P_PLAIN, 0 },
        { P_BAD_ORDER, 0 }, { P_HUGE_ORDER, 8 }, { P_HUGE_ORDER_NEXT, 0 }, { P_BAD_TAIL, 0 },
        { P_BUDDY, 16 }, { P_BUDDY + 7, 16 }, { P_AFTER_BUDDY, 0 },
    };

    guest_init(&g, true);
    write_seed(&g, 31, "synthetic-31");
    for (unsigned level = 1; level <= 16; level <<= 1) {
        for (size_t i = 0; i < G_N_ELEMENTS(expect); i++) {
            bool want = (expect[i].excluded_by & level) != 0;
            if (excluded_at(&g, level, g.base + expect[i].kind) != want) {
                g_error("level %u, kind %d: excluded should be %d", level, expect[i].kind,
                        want);
            }
        }
    }
    guest_free(&g);
}

/* Ranges: a free block, a transparent huge page and a hugetlb page, met from their
 * head or from the middle (a later batch); a compound page that is kept keeps its
 * tails; frames whose struct pages cannot be read are kept. */
static void test_ranges(void)
{
    static const struct {
        uint64_t first, n;
        unsigned level;
        bool excluded;
    } runs[] = {
        { FREE_BLOCK, 1024, 16, true }, { FREE_BLOCK + 700, 300, 16, true },
        { FREE_BLOCK + 1023, 1, 16, true }, { FREE_BLOCK + 1, 1023, 8, false },
        { THP, 512, 8, true }, { THP + 300, 212, 8, true }, { THP + 511, 1, 31, true },
        { THP + 1, 300, 16, false }, { HUGETLB + 5, 507, 8, true },
        { HUGETLB + 100, 1, 4, false }, { SLAB_COMPOUND, 4, 31, false },
        { SLAB_COMPOUND + 2, 2, 31, false }, { UNMAPPED, 64, 31, false },
        { UNMAPPED - 1, 1, 31, true },
    };
    Guest g;

    guest_init(&g, false);
    synth_set_page(&g.k, UNMAPPED - 1, bit(SYNTH_PG_LRU), SYNTH_FILE_MAPPING, 0, -1);
    write_seed(&g, 24, "synthetic-ranges");
    for (size_t i = 0; i < G_N_ELEMENTS(runs); i++) {
        PageFilter *f = filter_new(&g, runs[i].level);
        g_autofree bool *out = g_new(bool, runs[i].n);
        decide(f, runs[i].first, runs[i].n, PAGE_FILTER_RUN, out);
        for (uint64_t j = 0; j < runs[i].n; j++) {
            if (out[j] != runs[i].excluded) {
                g_error("run %zu: frame %#" PRIx64 " excluded %d", i, runs[i].first + j, out[j]);
            }
        }
        page_filter_free(f);
    }
    g_assert_false(excluded_at(&g, 31, FREE_BLOCK + 1024));
    g_assert_false(excluded_at(&g, 31, THP + 512));
    guest_free(&g);
}

/* The same decisions however the frames are split into calls (threads take batches). */
static void test_splits(void)
{
    Guest g;
    uint64_t n = RAM / SYNTH_PAGE;
    g_autofree bool *whole = g_new(bool, n);
    g_autofree bool *split = g_new(bool, n);
    static const size_t chunks[] = { 1, 7, 100, 256, 333, 4096 };

    guest_init(&g, true);
    PageFilter *f = filter_new(&g, 31);
    decide(f, 0, n, n, whole);
    for (size_t i = 0; i < G_N_ELEMENTS(chunks); i++) {
        decide(f, 0, n, chunks[i], split);
        g_assert_cmpmem(whole, n, split, n);
    }
    uint64_t count = 0;
    for (uint64_t i = 0; i < n; i++) {
        count += whole[i];
    }
    /* 16 frames of the kinds, the order-3 block, 1024 + 512 + 512 in ranges */
    g_assert_cmpuint(count, ==, 6 + 8 + 1024 + 512 + 512 + 1);
    page_filter_free(f);
    guest_free(&g);
}

/* Replace (or with value NULL remove) the line of `key` in VMCOREINFO text. */
static void set_entry(GString *text, const char *key, const char *value)
{
    g_autofree char *prefix = g_strconcat(key, "=", NULL);
    const char *at = strstr(text->str, prefix);

    g_assert_nonnull(at);
    gssize pos = at - text->str;
    gssize end = strchr(at, '\n') - text->str + 1;
    g_string_erase(text, pos, end - pos);
    if (value) {
        g_autofree char *line = g_strconcat(prefix, value, "\n", NULL);
        g_string_insert(text, pos, line);
    }
}

static void expect_error(Guest *g, unsigned level, const char *text, const char *message)
{
    PageFilter *f = NULL;
    GError *err = NULL;

    g_assert_false(page_filter_new(level, text, text ? strlen(text) : 0, &g->reader, &f, &err));
    g_assert_null(f);
    g_assert_nonnull(err);
    if (!strstr(err->message, message)) {
        g_error("level %u: \"%s\" lacks \"%s\"", level, err->message, message);
    }
    g_error_free(err);
}

static void test_requirements(void)
{
    Guest g;
    PageFilter *f = NULL;

    guest_init(&g, false);
    GString *t = g.k.vmcoreinfo;
    /* no VMCOREINFO: zero pages only */
    expect_error(&g, 2, NULL, "needs the guest kernel's VMCOREINFO");
    g_assert_true(page_filter_new(1, NULL, 0, &g.reader, &f, NULL) && !f);
    /* level 1 reads struct pages only on kernels with PG_hwpoison */
    g_assert_true(page_filter_new(1, t->str, t->len, &g.reader, &f, NULL) && !f);
    g_assert_true(page_filter_new(0, t->str, t->len, &g.reader, &f, NULL) && !f);
    set_entry(t, "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)", NULL);
    set_entry(t, "OFFSET(page._mapcount)", NULL);
    expect_error(&g, 31, t->str, "lacks: NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE), "
                 "OFFSET(page._mapcount)");
    g_assert_true(page_filter_new(14, t->str, t->len, &g.reader, &f, NULL) && f);
    page_filter_free(f);
    set_entry(t, "NUMBER(PG_lru)", NULL);
    expect_error(&g, 2, t->str, "lacks: NUMBER(PG_lru)");
    guest_free(&g);

    static const struct {
        const char *key, *value, *message;
    } bad[] = {
        { "SIZE(page)", "8", "SIZE(page)=8, outside 16..512" },
        { "OFFSET(page.private)", "60", "OFFSET(page.private)=60 beyond SIZE(page)=64" },
        { "NUMBER(sme_mask)", "140737488355328", "encrypted" },
        { "NUMBER(phys_base)", "4096", "do not map themselves" },
        { "LENGTH(mem_section)", "64", "not SPARSEMEM_EXTREME" },
        { "NUMBER(PG_lru)", "64", "NUMBER(PG_lru)=64" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        guest_init(&g, false);
        set_entry(g.k.vmcoreinfo, bad[i].key, bad[i].value);
        expect_error(&g, 31, g.k.vmcoreinfo->str, bad[i].message);
        guest_free(&g);
    }
}

/* ---- the VMCOREINFO search ---- */

static X86CPUState kernel_cpu(uint64_t cr3)
{
    X86CPUState cpu = { .efer = EFER_LMA | EFER_LME };

    cpu.cr[0] = CR0_PE | CR0_PG;
    cpu.cr[3] = cr3;
    cpu.cr[4] = CR4_PAE;
    return cpu;
}


static uint64_t search(Guest *g, const X86CPUState *cpu, uint64_t hint)
{
    uint64_t gpa = 0;
    GBytes *note = vmcoreinfo_search(&g->reader, cpu, hint, &gpa);

    if (!note) {
        return UINT64_MAX;
    }
    gsize len;
    const uint8_t *data = g_bytes_get_data(note, &len);
    g_assert_cmpuint(len, ==, 24 + ((g->k.vmcoreinfo->len + 3) & ~3u));
    g_assert_cmpmem(data + 24, g->k.vmcoreinfo->len, g->k.vmcoreinfo->str,
                    g->k.vmcoreinfo->len);
    g_bytes_unref(note);
    return gpa;
}

/* A note whose text lies or whose page tables do not map themselves is passed over;
 * so is one that does not start a page. */
static void test_search_rejects(void)
{
    Guest g;

    guest_init(&g, false);
    g_autoptr(GString) good = g_string_new(g.k.vmcoreinfo->str);
    g.k.vmcoreinfo->str[0] = 'X';                      /* XSRELEASE= */
    synth_kernel_write_note(&g.k, 0x30000);
    g_string_assign(g.k.vmcoreinfo, good->str);
    set_entry(g.k.vmcoreinfo, "NUMBER(phys_base)", "0");
    synth_kernel_write_note(&g.k, 0x31000);
    g_string_assign(g.k.vmcoreinfo, good->str);
    set_entry(g.k.vmcoreinfo, "PAGESIZE", "65536");
    synth_kernel_write_note(&g.k, 0x32000);
    g_string_assign(g.k.vmcoreinfo, good->str);
    synth_kernel_write_note(&g.k, 0x33008);
    g_assert_cmpuint(search(&g, NULL, UINT64_MAX), ==, g.k.note);
    GBytes *unaligned = vmcoreinfo_note_at(&g.reader, 0x33008);   /* valid, but no page start */
    g_assert_nonnull(unaligned);
    g_bytes_unref(unaligned);
    /* none at all */
    memset(g.k.ram + g.k.note, 0, 24);
    g_assert_cmpuint(search(&g, NULL, UINT64_MAX), ==, UINT64_MAX);
    guest_free(&g);
}

/* Of several valid notes: the first the vCPU's page tables run, else the first. */
static void test_search_chooses(void)
{
    Guest g;

    guest_init(&g, false);
    X86CPUState cpu = kernel_cpu(g.k.top);
    synth_kernel_write_note(&g.k, 0x34000);
    g_assert_cmpuint(search(&g, NULL, UINT64_MAX), ==, 0x34000);
    g_assert_cmpuint(search(&g, &cpu, UINT64_MAX), ==, 0x34000);
    g_assert_cmpuint(search(&g, &cpu, g.k.note), ==, g.k.note);

    /* a stale copy at 0x34000 names tables of its own, which the vCPU does not use */
    uint64_t stale = synth_new_table(&g.k);
    uint64_t stale_va = g.k.top_va + 0x200000;
    synth_map_page(&g.k, stale, stale_va, stale);
    g_autoptr(GString) good = g_string_new(g.k.vmcoreinfo->str);
    g_autofree char *va = g_strdup_printf("%" G_GINT64_MODIFIER "x", (guint64)stale_va);
    g_autofree char *base = g_strdup_printf("%" G_GINT64_FORMAT,
                                            (gint64)(stale - (stale_va - 0xffffffff80000000ULL)));
    set_entry(g.k.vmcoreinfo, "SYMBOL(init_top_pgt)", va);
    set_entry(g.k.vmcoreinfo, "NUMBER(phys_base)", base);
    synth_kernel_write_note(&g.k, 0x34000);
    GBytes *note = vmcoreinfo_note_at(&g.reader, 0x34000);
    g_assert_nonnull(note);
    g_bytes_unref(note);
    g_string_assign(g.k.vmcoreinfo, good->str);
    g_assert_cmpuint(search(&g, &cpu, UINT64_MAX), ==, g.k.note);
    g_assert_cmpuint(search(&g, &cpu, 0x34000), ==, g.k.note);
    guest_free(&g);
}

/* ---- a filtered kdump file ---- */

static char *write_kdump(Guest *g, PageFilter *f, guint threads)
{
    X86CPUState cpu = kernel_cpu(g->k.top);
    DumpRange range = { .gpa = 0, .size = RAM, .host = g->k.ram, .anonymous = true };
    GArray *ranges = g_array_new(FALSE, FALSE, sizeof(DumpRange));
    DumpJob job = { .format = DUMP_FORMAT_KDUMP_RAW_ZLIB, .ranges = ranges, .ncpus = 1,
                    .cpus = &cpu, .threads = threads, .dedup = true, .reader = g->reader,
                    .filter = f, .has_dump_level = true, .dump_level = 31 };

    g_array_append_val(ranges, range);
    cpu.cs.flags = SEG_FLAG_L | SEG_FLAG_P;
    char *path = unit_write_kdump(&job, RAM);
    g_array_free(ranges, TRUE);
    return path;
}

static uint64_t le_at(const uint8_t *p, size_t off, unsigned size)
{
    uint64_t v = 0;

    memcpy(&v, p + off, size);
    return GUINT64_FROM_LE(v);
}

/* Frame pfn as a raw kdump-zlib file holds it; false when the 2nd bitmap leaves it out.
 * Descriptors are those of the dumped frames, in frame order. */
static bool kdump_page(const uint8_t *f, gsize len, uint64_t pfn, uint8_t *page)
{
    uint64_t bs = le_at(f, 428, 4), sub = le_at(f, 432, 4), half = le_at(f, 436, 4) / 2 * bs;
    const uint8_t *bitmap2 = f + (1 + sub) * bs + half;
    uint64_t index = 0;

    if (!(bitmap2[pfn / 8] >> (pfn % 8) & 1)) {
        return false;
    }
    for (uint64_t p = 0; p < pfn; p++) {
        index += bitmap2[p / 8] >> (p % 8) & 1;
    }
    const uint8_t *desc = f + (1 + sub) * bs + 2 * half + index * 24;
    uint64_t off = le_at(desc, 0, 8), size = le_at(desc, 8, 4);
    uLongf n = SYNTH_PAGE;
    g_assert_cmpuint(off + size, <=, len);
    if (le_at(desc, 12, 4) == 0) {
        memcpy(page, f + off, SYNTH_PAGE);
    } else {
        g_assert_cmpint(uncompress(page, &n, f + off, size), ==, Z_OK);
    }
    return true;
}

/* Excluded frames are not in the file, every other one is as RAM holds it; the sub-header has the level; any number of threads, the same bytes. */
static void test_kdump_file(void)
{
    Guest g;
    uint64_t n = RAM / SYNTH_PAGE;
    g_autofree bool *excluded = g_new(bool, n);

    guest_init(&g, true);
    for (uint64_t pfn = synth_first_data_pfn(&g.k) + NKINDS; pfn < n; pfn++) {
        memset(g.k.ram + pfn * SYNTH_PAGE, (int)(pfn % 251) + 1, 64);
    }
    PageFilter *f = filter_new(&g, 31);
    decide(f, 0, n, n, excluded);
    g_autofree char *path = write_kdump(&g, f, 1);
    g_autofree char *path3 = write_kdump(&g, f, 3);
    gchar *a, *b;
    gsize alen, blen;
    g_assert_true(g_file_get_contents(path, &a, &alen, NULL));
    g_assert_true(g_file_get_contents(path3, &b, &blen, NULL));
    g_assert_cmpmem(a, alen, b, blen);
    uint32_t level;
    memcpy(&level, a + SYNTH_PAGE + 8, 4);
    g_assert_cmpuint(GUINT32_FROM_LE(level), ==, 31);

    uint64_t left_out = 0;
    for (uint64_t pfn = 0; pfn < n; pfn++) {
        uint8_t page[SYNTH_PAGE];
        g_assert_cmpint(kdump_page((const uint8_t *)a, alen, pfn, page), ==, !excluded[pfn]);
        if (!excluded[pfn]) {
            g_assert_cmpmem(page, SYNTH_PAGE, g.k.ram + pfn * SYNTH_PAGE, SYNTH_PAGE);
        }
        left_out += excluded[pfn];
    }
    g_assert_cmpuint(left_out, >, 2000);
    g_free(a);
    g_free(b);
    unlink(path);
    unlink(path3);
    page_filter_free(f);
    guest_free(&g);
}

/* ---- fuzz seeds ---- */

/*
 * fuzz_pagefilter's input: level, flags (bit 0: a vCPU on the kernel's tables),
 * the VMCOREINFO text's length (16 bits) and text, then pages of RAM as records of
 * a 16-bit frame number and 4096 bytes; the RAM is FUZZ_RAM (tests/fuzz).
 */
static void write_seed(const Guest *g, unsigned level, const char *name)
{
    const char *dir = g_getenv("MINIVM_FUZZ_SEED_DIR");
    const uint64_t fuzz_ram = 1 << 20;          /* the kernel's structures lie below */

    if (!dir) {
        return;
    }
    g_autoptr(GByteArray) seed = g_byte_array_new();
    uint8_t head[4] = { (uint8_t)level, 1, (uint8_t)g->k.vmcoreinfo->len,
                        (uint8_t)(g->k.vmcoreinfo->len >> 8) };
    g_byte_array_append(seed, head, sizeof(head));
    g_byte_array_append(seed, (const guint8 *)g->k.vmcoreinfo->str, (guint)g->k.vmcoreinfo->len);
    for (uint16_t pfn = 0; pfn < fuzz_ram / SYNTH_PAGE; pfn++) {
        const uint8_t *page = g->k.ram + (size_t)pfn * SYNTH_PAGE;
        if (!buffer_is_zero(page, SYNTH_PAGE)) {
            uint8_t rec[2] = { (uint8_t)pfn, (uint8_t)(pfn >> 8) };
            g_byte_array_append(seed, rec, 2);
            g_byte_array_append(seed, page, SYNTH_PAGE);
        }
    }
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_assert_true(g_file_set_contents(path, (const char *)seed->data, seed->len, NULL));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/filter/page-kinds", test_page_kinds);
    g_test_add_func("/filter/ranges", test_ranges);
    g_test_add_func("/filter/splits", test_splits);
    g_test_add_func("/filter/requirements", test_requirements);
    g_test_add_func("/filter/search-rejects", test_search_rejects);
    g_test_add_func("/filter/search-chooses", test_search_chooses);
    g_test_add_func("/filter/kdump-file", test_kdump_file);
    return g_test_run();
}
