/*
 * Dump levels decided from the guest's struct pages, in makedumpfile 1.7.2's order
 * (docs/filtering.md). For each page frame the kernel has a struct page for:
 *   a compound tail    its head decides (its range covers the tail, or the tail is kept)
 *   a free block head  level 16: the block's 1 << page.private frames
 *   page cache         level 2 without PG_private, level 4 with or without
 *   user memory        level 8: anonymous pages, and hugetlb pages (compound destructor)
 *   poisoned, offline  every level that reads struct pages
 * and a compound head takes its whole compound page with it.
 */
#include "page_filter.h"
#include "linux_kernel.h"
#include "util.h"

#include <string.h>

#define PAGE_SHIFT 12
#define SECTION_PRESENT_WITH_MAP 3ULL     /* SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP */
#define SECTION_MAP_MASK (~0x1fULL)       /* the flag bits below the encoded map */
#define MAX_STRUCT_PAGE 512
#define MAX_COMPOUND_ORDER 18             /* 1 GiB pages, the largest x86_64 maps */
#define READS_STRUCT_PAGES 32             /* a requirement of every level that reads them */

/* The fields of a struct page the decision reads, and what their values mean. */
typedef struct PageRules {
    unsigned level;
    uint32_t size;                        /* SIZE(page) */
    uint32_t flags, mapping, private_, mapcount, compound_head, order, dtor;   /* offsets */
    bool has_mapping, has_mapcount, has_compound_head, has_order, has_dtor, has_swapbacked;
    uint64_t lru, private_flag, swapcache, swapbacked, slab, hwpoison, head;   /* 0: unknown */
    bool has_buddy, has_offline, has_hugetlb;
    int32_t buddy, offline;               /* _mapcount of a free block's head, of an offline page */
    unsigned hugetlb;                     /* compound_dtor of a hugetlb page */
    unsigned free_orders;                 /* LENGTH(zone.free_area) */
} PageRules;

/* SPARSEMEM_EXTREME: an array of roots, each a page of struct mem_section. */
typedef struct MemModel {
    uint64_t roots_va;                    /* SYMBOL(mem_section): the array of roots */
    uint64_t roots;                       /* LENGTH(mem_section) */
    uint64_t per_root;                    /* sections in one root */
    uint32_t section_size;                /* SIZE(mem_section) */
    uint32_t map_offset;                  /* OFFSET(mem_section.section_mem_map) */
    unsigned pfn_shift;                   /* frames per section, log2 */
} MemModel;

struct PageFilter {
    PageRules rules;
    MemModel model;
    KernelReader kernel;                  /* each cursor copies it (translation cache) */
};

struct PageFilterCursor {
    const PageFilter *f;
    KernelReader kernel;
    uint64_t section;                     /* the section whose map is cached */
    uint64_t map;                         /* its struct page address of frame 0, 0: none */
    uint8_t *pages;                       /* PAGE_FILTER_RUN struct pages */
    uint8_t *pair;                        /* a struct page and the next one */
};

/* ---- what a level needs of VMCOREINFO ---- */

static const struct {
    KernelField field;
    unsigned needed_by;                   /* dump level bits, or READS_STRUCT_PAGES */
} requirements[] = {
    { KF_INIT_TOP_PGT, READS_STRUCT_PAGES }, { KF_PHYS_BASE, READS_STRUCT_PAGES },
    { KF_MEM_SECTION, READS_STRUCT_PAGES }, { KF_MEM_SECTION_LEN, READS_STRUCT_PAGES },
    { KF_MEM_SECTION_SIZE, READS_STRUCT_PAGES }, { KF_SECTION_MEM_MAP, READS_STRUCT_PAGES },
    { KF_SECTION_SIZE_BITS, READS_STRUCT_PAGES }, { KF_PAGE_SIZE, READS_STRUCT_PAGES },
    { KF_PAGE_FLAGS, READS_STRUCT_PAGES },
    { KF_PG_LRU, DUMP_LEVEL_CACHE | DUMP_LEVEL_CACHE_PRIVATE },
    { KF_PG_SWAPCACHE, DUMP_LEVEL_CACHE | DUMP_LEVEL_CACHE_PRIVATE },
    { KF_PG_PRIVATE, DUMP_LEVEL_CACHE },
    { KF_PAGE_MAPPING, DUMP_LEVEL_CACHE | DUMP_LEVEL_CACHE_PRIVATE | DUMP_LEVEL_USER },
    { KF_BUDDY_MAPCOUNT, DUMP_LEVEL_FREE }, { KF_PAGE_MAPCOUNT, DUMP_LEVEL_FREE },
    { KF_PAGE_PRIVATE, DUMP_LEVEL_FREE }, { KF_FREE_AREA_LEN, DUMP_LEVEL_FREE },
};

/* Plausible values; anything else is not a kernel this filter understands. */
static const struct {
    KernelField field;
    int64_t min, max;
} limits[] = {
    { KF_PAGESIZE, 4096, 4096 }, { KF_PAGE_SIZE, 16, MAX_STRUCT_PAGE },
    { KF_MEM_SECTION_SIZE, 8, 4096 }, { KF_SECTION_MEM_MAP, 0, 4088 },
    { KF_SECTION_SIZE_BITS, 16, 40 }, { KF_MAX_PHYSMEM_BITS, 16, 63 },
    { KF_MEM_SECTION_LEN, 1, 1 << 24 }, { KF_FREE_AREA_LEN, 1, 20 },
    { KF_PG_LRU, 0, 63 }, { KF_PG_PRIVATE, 0, 63 }, { KF_PG_SWAPCACHE, 0, 63 },
    { KF_PG_SWAPBACKED, 0, 63 }, { KF_PG_SLAB, 0, 63 }, { KF_PG_HWPOISON, 0, 63 },
    { KF_BUDDY_MAPCOUNT, INT32_MIN, INT32_MAX }, { KF_OFFLINE_MAPCOUNT, INT32_MIN, INT32_MAX },
    { KF_HUGETLB_DTOR, 0, 255 },
};

/* Fields of struct page (page[1] for the compound ones) and their widths. */
static const struct {
    KernelField field;
    unsigned width;
} page_fields[] = {
    { KF_PAGE_FLAGS, 8 }, { KF_PAGE_MAPPING, 8 }, { KF_PAGE_PRIVATE, 8 },
    { KF_PAGE_MAPCOUNT, 4 }, { KF_PAGE_COMPOUND_HEAD, 8 }, { KF_PAGE_COMPOUND_ORDER, 1 },
    { KF_PAGE_COMPOUND_DTOR, 1 },
};

static bool reads_struct_pages(unsigned level, const KernelInfo *ki)
{
    return (level & ~DUMP_LEVEL_ZERO) || (level && kernel_info_has(ki, KF_PG_HWPOISON));
}

static bool check_entries(unsigned level, const KernelInfo *ki, GError **errp)
{
    g_autoptr(GString) missing = g_string_new(NULL);

    for (size_t i = 0; i < G_N_ELEMENTS(requirements); i++) {
        if ((requirements[i].needed_by & (level | READS_STRUCT_PAGES)) &&
            !kernel_info_has(ki, requirements[i].field)) {
            g_string_append_printf(missing, "%s%s", missing->len ? ", " : "",
                                   kernel_field_key(requirements[i].field));
        }
    }
    if (missing->len) {
        error_setg(errp, "dump-level %u needs VMCOREINFO entries that the guest's lacks: %s",
                   level, missing->str);
        return false;
    }
    return true;
}

static bool check_values(const KernelInfo *ki, GError **errp)
{
    int64_t page_size = (int64_t)ki->value[KF_PAGE_SIZE];

    for (size_t i = 0; i < G_N_ELEMENTS(limits); i++) {
        int64_t v = (int64_t)ki->value[limits[i].field];
        if (kernel_info_has(ki, limits[i].field) && (v < limits[i].min || v > limits[i].max)) {
            error_setg(errp, "the guest's VMCOREINFO has %s=%" PRId64 ", outside %" PRId64
                       "..%" PRId64, kernel_field_key(limits[i].field), v, limits[i].min,
                       limits[i].max);
            return false;
        }
    }
    for (size_t i = 0; i < G_N_ELEMENTS(page_fields); i++) {
        uint64_t off = ki->value[page_fields[i].field];
        if (kernel_info_has(ki, page_fields[i].field) &&
            (off > MAX_STRUCT_PAGE || (int64_t)off + page_fields[i].width > page_size)) {
            error_setg(errp, "the guest's VMCOREINFO has %s=%" PRId64 " beyond SIZE(page)=%"
                       PRId64, kernel_field_key(page_fields[i].field), (int64_t)off, page_size);
            return false;
        }
    }
    if (ki->value[KF_SECTION_MEM_MAP] + 8 > ki->value[KF_MEM_SECTION_SIZE]) {
        error_setg(errp, "the guest's VMCOREINFO puts OFFSET(mem_section.section_mem_map) "
                   "beyond SIZE(mem_section)");
        return false;
    }
    return true;
}

/* ---- setup ---- */

static uint64_t flag_mask(const KernelInfo *ki, KernelField f)
{
    return kernel_info_has(ki, f) ? 1ULL << ki->value[f] : 0;
}

static void setup_rules(PageRules *r, unsigned level, const KernelInfo *ki)
{
    const uint64_t *v = ki->value;

    r->level = level;
    r->size = (uint32_t)v[KF_PAGE_SIZE];
    r->flags = (uint32_t)v[KF_PAGE_FLAGS];
    r->mapping = (uint32_t)v[KF_PAGE_MAPPING];
    r->private_ = (uint32_t)v[KF_PAGE_PRIVATE];
    r->mapcount = (uint32_t)v[KF_PAGE_MAPCOUNT];
    r->compound_head = (uint32_t)v[KF_PAGE_COMPOUND_HEAD];
    r->order = (uint32_t)v[KF_PAGE_COMPOUND_ORDER];
    r->dtor = (uint32_t)v[KF_PAGE_COMPOUND_DTOR];
    r->has_mapping = kernel_info_has(ki, KF_PAGE_MAPPING);
    r->has_mapcount = kernel_info_has(ki, KF_PAGE_MAPCOUNT);
    r->has_compound_head = kernel_info_has(ki, KF_PAGE_COMPOUND_HEAD);
    r->has_order = kernel_info_has(ki, KF_PAGE_COMPOUND_ORDER);
    r->has_dtor = kernel_info_has(ki, KF_PAGE_COMPOUND_DTOR);
    r->has_swapbacked = kernel_info_has(ki, KF_PG_SWAPBACKED);
    r->lru = flag_mask(ki, KF_PG_LRU);
    r->private_flag = flag_mask(ki, KF_PG_PRIVATE);
    r->swapcache = flag_mask(ki, KF_PG_SWAPCACHE);
    r->swapbacked = flag_mask(ki, KF_PG_SWAPBACKED);
    r->slab = flag_mask(ki, KF_PG_SLAB);
    r->hwpoison = flag_mask(ki, KF_PG_HWPOISON);
    r->head = kernel_info_has(ki, KF_PG_HEAD_MASK) ? v[KF_PG_HEAD_MASK] : 0;
    r->has_buddy = kernel_info_has(ki, KF_BUDDY_MAPCOUNT) && r->has_mapcount &&
                   kernel_info_has(ki, KF_PAGE_PRIVATE) && kernel_info_has(ki, KF_FREE_AREA_LEN);
    r->has_offline = kernel_info_has(ki, KF_OFFLINE_MAPCOUNT) && r->has_mapcount;
    r->has_hugetlb = kernel_info_has(ki, KF_HUGETLB_DTOR) && r->has_dtor;
    r->buddy = (int32_t)v[KF_BUDDY_MAPCOUNT];
    r->offline = (int32_t)v[KF_OFFLINE_MAPCOUNT];
    r->hugetlb = (unsigned)v[KF_HUGETLB_DTOR];
    r->free_orders = (unsigned)v[KF_FREE_AREA_LEN];
}

/* The section layout; only SPARSEMEM_EXTREME (every x86_64 distribution kernel). */
static bool setup_model(MemModel *m, const KernelInfo *ki, GError **errp)
{
    const uint64_t *v = ki->value;

    m->roots_va = v[KF_MEM_SECTION];
    m->roots = v[KF_MEM_SECTION_LEN];
    m->section_size = (uint32_t)v[KF_MEM_SECTION_SIZE];
    m->per_root = 4096 / m->section_size;
    m->map_offset = (uint32_t)v[KF_SECTION_MEM_MAP];
    m->pfn_shift = (unsigned)v[KF_SECTION_SIZE_BITS] - PAGE_SHIFT;
    if (kernel_info_has(ki, KF_MAX_PHYSMEM_BITS)) {
        int64_t bits = (int64_t)v[KF_MAX_PHYSMEM_BITS] - (int64_t)v[KF_SECTION_SIZE_BITS];
        uint64_t sections = bits >= 0 ? 1ULL << bits : 0;
        if (m->roots != (sections + m->per_root - 1) / m->per_root) {
            error_setg(errp, "the guest kernel's memory model is not SPARSEMEM_EXTREME "
                       "(LENGTH(mem_section) %" PRIu64 "), which dump-level needs", m->roots);
            return false;
        }
    }
    return true;
}

bool page_filter_new(unsigned level, const char *vmcoreinfo, size_t len, const GuestReader *r,
                     PageFilter **out, GError **errp)
{
    KernelInfo ki;

    *out = NULL;
    if (!vmcoreinfo) {
        if (level & ~DUMP_LEVEL_ZERO) {
            error_setg(errp, "dump-level %u needs the guest kernel's VMCOREINFO: the guest "
                       "published none, and none was found in its memory", level);
            return false;
        }
        return true;
    }
    kernel_info_parse(&ki, vmcoreinfo, len);
    if (!reads_struct_pages(level, &ki)) {
        return true;
    }
    if (!check_entries(level, &ki, errp)) {
        return false;
    }
    PageFilter *f = g_new0(PageFilter, 1);
    if (!check_values(&ki, errp) || !setup_model(&f->model, &ki, errp) ||
        !kernel_reader_init(&f->kernel, r, &ki, errp)) {
        g_prefix_error(errp, "dump-level %u: ", level);
        g_free(f);
        return false;
    }
    setup_rules(&f->rules, level, &ki);
    *out = f;
    return true;
}

void page_filter_free(PageFilter *f)
{
    g_free(f);
}

PageFilterCursor *page_filter_cursor_new(const PageFilter *f)
{
    PageFilterCursor *c = g_new0(PageFilterCursor, 1);

    c->f = f;
    c->kernel = f->kernel;
    c->section = UINT64_MAX;
    c->pages = g_malloc((size_t)PAGE_FILTER_RUN * f->rules.size);
    c->pair = g_malloc(2 * (size_t)f->rules.size);
    return c;
}

void page_filter_cursor_free(PageFilterCursor *c)
{
    if (c) {
        g_free(c->pages);
        g_free(c->pair);
        g_free(c);
    }
}

/* ---- struct pages ---- */

static uint64_t le64_at(const uint8_t *p, uint32_t off)
{
    uint64_t v;

    memcpy(&v, p + off, sizeof(v));
    return GUINT64_FROM_LE(v);
}

static int32_t le32_at(const uint8_t *p, uint32_t off)
{
    uint32_t v;

    memcpy(&v, p + off, sizeof(v));
    return (int32_t)GUINT32_FROM_LE(v);
}

/* The encoded memory map of section nr (struct page address of frame 0), 0 when the
 * kernel has none there or it cannot be read. */
static uint64_t section_map(PageFilterCursor *c, uint64_t nr)
{
    const MemModel *m = &c->f->model;
    uint64_t root, map;

    if (nr / m->per_root >= m->roots ||
        !kernel_read(&c->kernel, m->roots_va + nr / m->per_root * 8, &root, 8) || !root) {
        return 0;
    }
    root = GUINT64_FROM_LE(root);
    if (!kernel_read(&c->kernel, root + nr % m->per_root * m->section_size + m->map_offset,
                     &map, 8)) {
        return 0;
    }
    map = GUINT64_FROM_LE(map);
    return (map & SECTION_PRESENT_WITH_MAP) == SECTION_PRESENT_WITH_MAP ? map & SECTION_MAP_MASK
                                                                          : 0;
}

/* The address of frame pfn's struct page, 0 when there is none. */
static uint64_t struct_page_va(PageFilterCursor *c, uint64_t pfn)
{
    uint64_t nr = pfn >> c->f->model.pfn_shift;

    if (nr != c->section) {
        c->section = nr;
        c->map = section_map(c, nr);
    }
    return c->map ? c->map + pfn * c->f->rules.size : 0;
}

/* Read the struct pages of frames pfn .. pfn + n - 1 (one section) into buf. */
static bool read_struct_pages(PageFilterCursor *c, uint64_t pfn, size_t n, uint8_t *buf)
{
    uint64_t va = struct_page_va(c, pfn);

    return va && kernel_read(&c->kernel, va, buf, n * c->f->rules.size);
}

/* Frame pfn's struct page into c->pair, and the next one after it; returns the
 * next one, NULL when it cannot be read; false when pfn's cannot. */
static bool read_pair(PageFilterCursor *c, uint64_t pfn, const uint8_t **next)
{
    uint32_t size = c->f->rules.size;

    if (!read_struct_pages(c, pfn, 1, c->pair)) {
        return false;
    }
    *next = read_struct_pages(c, pfn + 1, 1, c->pair + size) ? c->pair + size : NULL;
    return true;
}

/* ---- the decision ---- */

static bool is_tail(const PageRules *r, const uint8_t *page)
{
    return r->has_compound_head && (le64_at(page, r->compound_head) & 1);
}

/* The order of a compound head (0 for other pages, or when it makes no sense) and its
 * destructor (-1 when unknown), from page[1]. */
static unsigned compound_order(const PageRules *r, uint64_t flags, const uint8_t *next,
                               uint64_t pfn, int *dtor)
{
    *dtor = -1;
    if (!(flags & r->head) || !next) {
        return 0;
    }
    unsigned order = r->has_order ? next[r->order] : 0;
    *dtor = r->has_dtor ? next[r->dtor] : -1;
    return order > MAX_COMPOUND_ORDER || (pfn & ((1ULL << order) - 1)) ? 0 : order;
}

static bool is_cache(const PageRules *r, uint64_t flags)
{
    return (flags & r->lru) ||
           ((!r->has_swapbacked || (flags & r->swapbacked)) && (flags & r->swapcache));
}

/* A free block: 1 << page.private frames, when that order is one the allocator has
 * and pfn is aligned to it; else 0, keep it. */
static uint64_t free_block_span(const PageRules *r, const uint8_t *page, uint64_t pfn)
{
    uint64_t order = le64_at(page, r->private_);

    return order < r->free_orders && !(pfn & ((1ULL << order) - 1)) ? 1ULL << order : 0;
}

/*
 * How many frames from pfn the dump leaves out because of frame pfn's struct page
 * (next: the one after it, or NULL): 0 keeps it; a tail is decided by its head.
 */
static uint64_t excluded_span(const PageRules *r, const uint8_t *page, const uint8_t *next,
                              uint64_t pfn)
{
    if (is_tail(r, page)) {
        return 0;
    }
    uint64_t flags = le64_at(page, r->flags);
    int dtor;
    uint64_t span = 1ULL << compound_order(r, flags, next, pfn, &dtor);
    bool slab = (flags & r->slab) != 0;
    int32_t mapcount = r->has_mapcount ? le32_at(page, r->mapcount) : 0;
    bool anon = r->has_mapping && (le64_at(page, r->mapping) & 1) && !slab;
    bool cache = is_cache(r, flags) && !anon;

    if ((r->level & DUMP_LEVEL_FREE) && r->has_buddy && !slab && mapcount == r->buddy) {
        return free_block_span(r, page, pfn);
    }
    if (((r->level & DUMP_LEVEL_CACHE) && cache && !(flags & r->private_flag)) ||
        ((r->level & DUMP_LEVEL_CACHE_PRIVATE) && cache) ||
        ((r->level & DUMP_LEVEL_USER) && (anon || (r->has_hugetlb && dtor == (int)r->hugetlb))) ||
        (flags & r->hwpoison) || (r->has_offline && !slab && mapcount == r->offline)) {
        return span;
    }
    return 0;
}

/* The end of the range that frame `head` begins (head itself when none). */
static uint64_t range_end(PageFilterCursor *c, uint64_t head)
{
    const uint8_t *next;

    return read_pair(c, head, &next) ? head + excluded_span(&c->f->rules, c->pair, next, head)
                                     : head;
}

/* A tail of a compound page: where its head's range ends, when the head is where
 * page.compound_head says and lies within the largest compound page before pfn. */
static uint64_t head_range_end(PageFilterCursor *c, uint64_t pfn, uint64_t compound_head)
{
    uint64_t size = c->f->rules.size;
    uint64_t map = struct_page_va(c, pfn) - pfn * size;
    uint64_t head_va = compound_head - 1;
    uint64_t head = (head_va - map) / size;

    if ((head_va - map) % size || head >= pfn || pfn - head >= 1ULL << MAX_COMPOUND_ORDER ||
        struct_page_va(c, head) != head_va) {
        return pfn;
    }
    return range_end(c, head);
}

/* A free block whose head is aligned below pfn and covers it: where it ends (pfn when
 * none does); the lowest head first, as makedumpfile's scan in frame order meets them. */
static uint64_t free_block_end(PageFilterCursor *c, uint64_t pfn)
{
    const PageRules *r = &c->f->rules;
    bool free_blocks = (r->level & DUMP_LEVEL_FREE) && r->has_buddy;
    uint64_t last = pfn;

    for (unsigned order = free_blocks ? r->free_orders : 0; order-- > 1;) {
        uint64_t head = pfn & ~((1ULL << order) - 1);
        if (head == pfn || head == last) {
            continue;
        }
        last = head;
        uint64_t end = range_end(c, head);
        if (end > pfn) {
            return end;
        }
    }
    return pfn;
}

/* Where a range that began before pfn and covers it ends (pfn when none does): that of
 * the head of the compound page pfn is a tail of, or of a free block around it. */
static uint64_t range_before(PageFilterCursor *c, uint64_t pfn)
{
    const PageRules *r = &c->f->rules;
    uint64_t end = pfn;

    if (read_struct_pages(c, pfn, 1, c->pair) && is_tail(r, c->pair)) {
        end = head_range_end(c, pfn, le64_at(c->pair, r->compound_head));
    }
    return MAX(end, free_block_end(c, pfn));
}

/* The page after the run's page i: in the run, or read when a head needs it. */
static const uint8_t *page_after(PageFilterCursor *c, const uint8_t *page, size_t i, size_t n,
                                 uint64_t pfn)
{
    const PageRules *r = &c->f->rules;
    const uint8_t *next;

    if (i + 1 < n) {
        return page + r->size;
    }
    if (!(le64_at(page, r->flags) & r->head) || !read_pair(c, pfn + 1, &next)) {
        return NULL;
    }
    return c->pair;
}

/* Read the run's struct pages; when that fails, each one alone (readable[i]). */
static void read_run(PageFilterCursor *c, uint64_t pfn, size_t n, bool *readable)
{
    uint32_t size = c->f->rules.size;
    bool all = read_struct_pages(c, pfn, n, c->pages);

    for (size_t i = 0; i < n; i++) {
        readable[i] = all || read_struct_pages(c, pfn + i, 1, c->pages + i * size);
    }
}

/* Decide frames pfn .. pfn + n - 1 (one section), *end: the first frame after the
 * range being left out. */
static void decide_run(PageFilterCursor *c, uint64_t pfn, size_t n, uint64_t *end,
                       bool *excluded)
{
    const PageRules *r = &c->f->rules;
    bool readable[PAGE_FILTER_RUN];

    read_run(c, pfn, n, readable);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *page = c->pages + i * r->size;
        excluded[i] = pfn + i < *end;
        if (excluded[i] || !readable[i]) {
            continue;
        }
        uint64_t span = excluded_span(r, page, page_after(c, page, i, n, pfn + i), pfn + i);
        if (span) {
            excluded[i] = true;
            *end = pfn + i + span;
        }
    }
}

/* How many of pfns[0..n) follow pfns[0] frame by frame in its section, at most a run. */
static size_t run_length(const PageFilterCursor *c, const uint64_t *pfns, size_t n)
{
    unsigned shift = c->f->model.pfn_shift;
    size_t len = 1;

    while (len < n && len < PAGE_FILTER_RUN && pfns[len] == pfns[0] + len &&
           pfns[len] >> shift == pfns[0] >> shift) {
        len++;
    }
    return len;
}

void page_filter_decide(PageFilterCursor *c, const uint64_t *pfns, size_t n, bool *excluded)
{
    uint64_t end = 0;

    for (size_t i = 0; i < n;) {
        size_t len = run_length(c, pfns + i, n - i);
        if (i == 0 || pfns[i] != pfns[i - 1] + 1) {
            end = range_before(c, pfns[i]);
        }
        decide_run(c, pfns[i], len, &end, excluded + i);
        i += len;
    }
}
