/*
 * The kdump-compressed reader (makedumpfile's "diskdump" format; the 64-bit and
 * the packed i386 layouts; pages raw or in zlib, lzo, snappy or zstd), plain or
 * reassembled from flattened records (docs/formats.md, "kdump-compressed").
 * The 1st bitmap makes the memory map, the note area holds the vCPUs and
 * VMCOREINFO; pages are loaded in the order of the 2nd bitmap.
 */
#include "config.h"
#include "vmcore-internal.h"
#include "kdump_format.h"
#include "util.h"

#include "codec_libs.h"

#define DATA_WINDOW         (4u << 20)    /* page data read-ahead */
#define KDUMP_MAX_VERSION   6
#define KDUMP_NOTES_VERSION 4
#define PAGE_DESC_SIZE      24
#define PAGE_ZLIB           0x1u
#define PAGE_LZO            0x2u
#define PAGE_SNAPPY         0x4u
#define PAGE_ZSTD           0x20u

/* utsname.machine in disk_dump_header (include/kdump_format.h has the other fields). */
#define KDUMP_UTS_MACHINE (KDUMP_UTS_OFFSET + 4 * 65)

typedef struct KdumpHeader {
    const KdumpFields *layout;
    int32_t version;
    int32_t sub_hdr_size;
    uint32_t bitmap_blocks;
    uint64_t max_mapnr;
    uint64_t offset_note, size_note;
} KdumpHeader;

static bool sane_block_size(uint32_t bs)
{
    return bs >= GUEST_PAGE_SIZE && bs <= (1u << 20) && (bs & (bs - 1)) == 0;
}

/* Whether the header read with a layout describes a file: a sane block size, a
 * sub-header and bitmaps, all inside the file. */
static bool kdump_layout_fits(const VmcoreImage *img, const uint8_t *h, const KdumpFields *l)
{
    uint64_t bs = get32(h + l->block_size);
    uint64_t sub = get32(h + l->sub_hdr_size), bitmaps = get32(h + l->bitmap_blocks);

    return sane_block_size((uint32_t)bs) && sub >= 1 && bitmaps >= 2 &&
           (1 + sub + bitmaps) * bs <= img->size;
}

/*
 * The 32-bit layout (i386 dumps) or the 64-bit one: the one the header fits.
 * utsname.machine does not tell: qemu-system-x86_64 writes "x86_64" in the 32-bit
 * header of a 32-bit guest, whose max_mapnr (0x100000 when RAM reaches 4 GiB) then
 * lies where the 64-bit layout has block_size. It decides only when both fit.
 */
static bool kdump_pick_layout(VmcoreImage *img, const uint8_t *h, KdumpHeader *kh,
                              GError **errp)
{
    bool x86_64 = strncmp((const char *)h + KDUMP_UTS_MACHINE, "x86_64", 7) == 0;
    bool fits64 = kdump_layout_fits(img, h, &kdump_fields64);
    bool fits32 = kdump_layout_fits(img, h, &kdump_fields32);
    uint32_t bs64 = get32(h + kdump_fields64.block_size);
    uint32_t bs32 = get32(h + kdump_fields32.block_size);

    if (fits32 != fits64) {
        kh->layout = fits32 ? &kdump_fields32 : &kdump_fields64;
    } else if (!x86_64 && sane_block_size(bs32)) {     /* both or neither: by name */
        kh->layout = &kdump_fields32;
    } else if (sane_block_size(bs64)) {
        kh->layout = &kdump_fields64;
    } else {
        return vmcore_fail(img, errp, "kdump block_size %d is not a sane page size",
                           (int32_t)bs64);
    }
    img->kd.block_size = kh->layout == &kdump_fields32 ? bs32 : bs64;
    return true;
}

static bool kdump_read_header(VmcoreImage *img, KdumpHeader *kh, GError **errp)
{
    uint8_t h[KDUMP_HEADER64_SIZE] = { 0 };

    if (img->size < KDUMP_HEADER32_SIZE) {
        return vmcore_fail(img, errp, "truncated kdump header");
    }
    if (!vmcore_read_at(img, h, MIN(img->size, sizeof(h)), 0, errp) ||
        !kdump_pick_layout(img, h, kh, errp)) {
        return false;
    }
    const KdumpFields *l = kh->layout;
    kh->version = (int32_t)get32(h + 8);
    kh->sub_hdr_size = (int32_t)get32(h + l->sub_hdr_size);
    kh->bitmap_blocks = get32(h + l->bitmap_blocks);
    kh->max_mapnr = get32(h + l->max_mapnr);
    if (kh->version < 1 || kh->version > KDUMP_MAX_VERSION) {
        return vmcore_fail(img, errp, "unsupported kdump header_version %d", kh->version);
    }
    if (kh->version < KDUMP_NOTES_VERSION) {
        return vmcore_fail(img, errp, "kdump header_version %d has no note area (%d or later "
                           "needed)", kh->version, KDUMP_NOTES_VERSION);
    }
    return true;
}

static bool kdump_read_subheader(VmcoreImage *img, KdumpHeader *kh, GError **errp)
{
    const KdumpFields *l = kh->layout;
    uint32_t bs = img->kd.block_size;
    uint8_t sub[KDUMP_SUB_HEADER64_SIZE];

    if (kh->sub_hdr_size < 1 || (uint64_t)kh->sub_hdr_size * bs > VMCORE_MAX_NOTES + bs) {
        return vmcore_fail(img, errp, "kdump sub_hdr_size %d is absurd", kh->sub_hdr_size);
    }
    if (!range_fits(bs, l->sub_size, img->size)) {
        return vmcore_fail(img, errp, "the kdump sub-header lies past the end of the file");
    }
    if (!vmcore_read_at(img, sub, l->sub_size, bs, errp)) {
        return false;
    }
    img->kd.dump_level = get32(sub + l->dump_level);
    kh->offset_note = get64(sub + l->offset_note);
    kh->size_note = l->word == 8 ? get64(sub + l->size_note)
                                            : get32(sub + l->size_note);
    if (kh->version >= 6) {
        kh->max_mapnr = get64(sub + l->max_mapnr_64);
    }
    return true;
}

/* Header numbers against each other and the file size. */
static bool kdump_check_geometry(VmcoreImage *img, const KdumpHeader *kh, uint64_t *bitmap1,
                                 uint64_t *bitmap2, GError **errp)
{
    KdumpInfo *kd = &img->kd;
    uint64_t bs = kd->block_size;

    if (kh->max_mapnr == 0 || kh->max_mapnr > VMCORE_MAX_GPA / bs) {
        return vmcore_fail(img, errp, "kdump max_mapnr %" PRIu64 " is absurd (guest RAM must end "
                           "below 1 TiB)", kh->max_mapnr);
    }
    kd->max_mapnr = kh->max_mapnr;
    uint64_t half = (kh->bitmap_blocks / 2) * bs;
    if (half < align_up(kd->max_mapnr, 8) / 8) {
        return vmcore_fail(img, errp, "kdump bitmap_blocks %u is too small for max_mapnr %" PRIu64,
                           kh->bitmap_blocks, kd->max_mapnr);
    }
    *bitmap1 = (1 + (uint64_t)kh->sub_hdr_size) * bs;
    *bitmap2 = *bitmap1 + half;
    kd->desc_off = *bitmap1 + (uint64_t)kh->bitmap_blocks * bs;
    if (kd->desc_off > img->size) {
        return vmcore_fail(img, errp, "the kdump bitmaps lie past the end of the file");
    }
    return true;
}

static uint64_t bitmap_next(const uint64_t *bm, uint64_t nbits, uint64_t pos, bool set)
{
    while (pos < nbits) {
        uint64_t w = set ? bm[pos / 64] : ~bm[pos / 64];
        w &= ~0ULL << (pos % 64);
        if (w) {
            return MIN(nbits, (pos & ~63ULL) + (uint64_t)__builtin_ctzll(w));
        }
        pos = (pos & ~63ULL) + 64;
    }
    return nbits;
}

static uint64_t bitmap_last(const uint64_t *bm, uint64_t nbits)
{
    for (uint64_t w = align_up(nbits, 64) / 64; w-- > 0;) {
        if (bm[w]) {
            return w * 64 + 63 - (uint64_t)__builtin_clzll(bm[w]);
        }
    }
    return nbits;
}

static uint64_t *bitmap_read(VmcoreImage *img, uint64_t off, GError **errp)
{
    uint64_t nbits = img->kd.max_mapnr, words = align_up(nbits, 64) / 64;
    uint64_t *bm = g_new0(uint64_t, words);
    uint64_t bytes = MIN(words * 8, img->size - off);

    if (!vmcore_read_at(img, bm, bytes, off, errp)) {
        g_free(bm);
        return NULL;
    }
    if (nbits % 64) {
        bm[words - 1] &= (1ULL << (nbits % 64)) - 1;
    }
    return bm;
}

/* Dumped pages must be present; counts the dumped pages and the present ones a dump
 * level left out. */
static bool kdump_check_bitmaps(VmcoreImage *img, const uint64_t *b1, GError **errp)
{
    const uint64_t *b2 = img->kd.bitmap2;
    uint64_t words = align_up(img->kd.max_mapnr, 64) / 64, count = 0, present = 0;

    for (uint64_t w = 0; w < words; w++) {
        if (b2[w] & ~b1[w]) {
            uint64_t pfn = w * 64 + (uint64_t)__builtin_ctzll(b2[w] & ~b1[w]);
            return vmcore_fail(img, errp, "PFN 0x%" PRIx64 " is dumped (2nd bitmap) but not "
                               "present (1st bitmap): the bitmaps disagree", pfn);
        }
        count += (uint64_t)__builtin_popcountll(b2[w]);
        present += (uint64_t)__builtin_popcountll(b1[w]);
    }
    img->kd.ndumpable = count;
    img->kd.nexcluded = present - count;
    return true;
}

/* Runs of present pages (1st bitmap) are the RAM blocks. */
static bool kdump_build_map(VmcoreImage *img, const uint64_t *b1, GError **errp)
{
    uint64_t nbits = img->kd.max_mapnr, bs = img->kd.block_size;

    for (uint64_t pfn = bitmap_next(b1, nbits, 0, true); pfn < nbits;) {
        uint64_t end = bitmap_next(b1, nbits, pfn, false);
        vmcore_map_add(img, pfn * bs, end * bs);
        pfn = bitmap_next(b1, nbits, end, true);
    }
    if (!img->blocks->len) {
        return vmcore_fail(img, errp, "the kdump 1st bitmap has no page present");
    }
    return true;
}

typedef struct PageDesc {
    uint64_t offset;
    uint32_t size;
    uint32_t flags;
} PageDesc;

static PageDesc page_desc(const uint8_t *p)
{
    return (PageDesc){ get64(p), get32(p + 8), get32(p + 12) };
}

static bool desc_check(const VmcoreImage *img, const PageDesc *d, uint64_t pfn, GError **errp)
{
    const KdumpInfo *kd = &img->kd;
    const uint32_t known = PAGE_ZLIB | PAGE_LZO | PAGE_SNAPPY | PAGE_ZSTD;

    if (d->offset < kd->data_off) {
        return vmcore_fail(img, errp, "the page descriptor of PFN 0x%" PRIx64 " points into the "
                           "headers or descriptors (offset 0x%" PRIx64 "): the bitmaps disagree "
                           "with the descriptors", pfn, d->offset);
    }
    if (!range_fits(d->offset, d->size, img->size)) {
        return vmcore_fail(img, errp, "the page descriptor of PFN 0x%" PRIx64 " points outside "
                           "the file (offset 0x%" PRIx64 ", size %u)", pfn, d->offset, d->size);
    }
    if ((d->flags & ~known) || (d->flags & (d->flags - 1))) {
        return vmcore_fail(img, errp, "the page of PFN 0x%" PRIx64 " has unknown compression "
                           "flags 0x%x", pfn, d->flags);
    }
    if (d->size == 0 || d->size > kd->block_size || (!d->flags && d->size != kd->block_size)) {
        return vmcore_fail(img, errp, "the page of PFN 0x%" PRIx64 " has size %u (block size "
                           "%u%s)", pfn, d->size, kd->block_size, d->flags ? "" : ", stored raw");
    }
    return true;
}

static bool desc_read_check(VmcoreImage *img, uint64_t index, uint64_t pfn, GError **errp)
{
    uint8_t raw[PAGE_DESC_SIZE];

    if (!vmcore_read_at(img, raw, sizeof(raw), img->kd.desc_off + index * PAGE_DESC_SIZE, errp)) {
        return false;
    }
    PageDesc d = page_desc(raw);
    return desc_check(img, &d, pfn, errp);
}

/* The descriptor table must fit, and its ends must look like descriptors. */
static bool kdump_check_descs(VmcoreImage *img, GError **errp)
{
    KdumpInfo *kd = &img->kd;
    uint64_t n = kd->ndumpable;

    if (!range_fits(kd->desc_off, n * PAGE_DESC_SIZE, img->size)) {
        return vmcore_fail(img, errp, "the 2nd bitmap counts %" PRIu64 " dumped pages, but their "
                           "descriptors would run past the end of the file: the bitmaps disagree "
                           "with the descriptor area", n);
    }
    kd->data_off = kd->desc_off + n * PAGE_DESC_SIZE;
    if (n == 0) {
        return true;
    }
    uint64_t first = bitmap_next(kd->bitmap2, kd->max_mapnr, 0, true);
    return desc_read_check(img, 0, first, errp) &&
           desc_read_check(img, n - 1, bitmap_last(kd->bitmap2, kd->max_mapnr), errp);
}

static bool kdump_read_bitmaps(VmcoreImage *img, uint64_t off1, uint64_t off2, GError **errp)
{
    g_autofree uint64_t *b1 = bitmap_read(img, off1, errp);

    if (!b1) {
        return false;
    }
    img->kd.bitmap2 = bitmap_read(img, off2, errp);
    return img->kd.bitmap2 && kdump_check_bitmaps(img, b1, errp) &&
           kdump_build_map(img, b1, errp);
}

bool vmcore_kdump_open(VmcoreImage *img, GError **errp)
{
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
    KdumpHeader kh = { 0 };
    uint64_t off1 = 0, off2 = 0;

    img->format = VMCORE_KDUMP;
    return kdump_read_header(img, &kh, errp) && kdump_read_subheader(img, &kh, errp) &&
           kdump_check_geometry(img, &kh, &off1, &off2, errp) &&
           vmcore_notes_read(img, kh.offset_note, kh.size_note, "the kdump note area", keep,
                             errp) &&
           vmcore_cpus_finish(img, errp) && kdump_read_bitmaps(img, off1, off2, errp) &&
           kdump_check_descs(img, errp);
}

/* Page data comes through a read-ahead window; references behind it (the
 * shared zero page) are read on their own and do not move the window. */
typedef struct PageReader {
    uint8_t *window;
    uint64_t win_off, win_len;
    uint8_t *scratch;
    uint64_t zero_off;      /* a raw page known to be all zero, or ALL_ONES */
    uint64_t min_off;       /* lowest data offset referenced */
#if CONFIG_ZSTD
    ZSTD_DCtx *zstd;
#endif
} PageReader;

static const uint8_t *page_data(VmcoreImage *img, PageReader *pr, const PageDesc *d,
                                GError **errp)
{
    if (d->offset >= pr->win_off && d->offset + d->size <= pr->win_off + pr->win_len) {
        return pr->window + (d->offset - pr->win_off);
    }
    if (d->offset < pr->win_off) {
        return vmcore_read_at(img, pr->scratch, d->size, d->offset, errp) ? pr->scratch : NULL;
    }
    uint64_t len = MIN(DATA_WINDOW, img->size - d->offset);
    if (!vmcore_read_at(img, pr->window, len, d->offset, errp)) {
        return NULL;
    }
    pr->win_off = d->offset;
    pr->win_len = len;
    return pr->window;
}

static bool page_decompress(PageReader *pr, const PageDesc *d, const uint8_t *src, uint8_t *dst,
                            uint32_t bs, const char **why)
{
    switch (d->flags) {
    case PAGE_ZLIB: {
        uLongf n = bs;
        return uncompress(dst, &n, src, d->size) == Z_OK && n == bs;
    }
#if CONFIG_LZO
    case PAGE_LZO: {
        lzo_uint n = bs;
        return lzo1x_decompress_safe(src, d->size, dst, &n, NULL) == LZO_E_OK && n == bs;
    }
#endif
#if CONFIG_SNAPPY
    case PAGE_SNAPPY: {
        size_t n = 0;
        return snappy_uncompressed_length((const char *)src, d->size, &n) == SNAPPY_OK &&
               n == bs && snappy_uncompress((const char *)src, d->size, (char *)dst, &n) ==
               SNAPPY_OK && n == bs;
    }
#endif
#if CONFIG_ZSTD
    case PAGE_ZSTD: {
        size_t n = ZSTD_decompressDCtx(pr->zstd, dst, bs, src, d->size);
        return !ZSTD_isError(n) && n == bs;
    }
#endif
    default:
        *why = "support for this compression is not built in";
        return false;
    }
}

static bool page_load(VmcoreImage *img, PageReader *pr, GuestMemory *mem, uint64_t pfn,
                      const PageDesc *d, GError **errp)
{
    uint32_t bs = img->kd.block_size;
    uint8_t *dst = guest_memory_ptr(mem, pfn * bs, bs);
    const char *why = "corrupt data or wrong size";

    if (!desc_check(img, d, pfn, errp)) {
        return false;
    }
    if (!dst) {
        return vmcore_fail(img, errp, "guest RAM does not cover PFN 0x%" PRIx64, pfn);
    }
    pr->min_off = MIN(pr->min_off, d->offset);
    if (!d->flags && d->offset == pr->zero_off) {
        return true;                            /* guest RAM starts zeroed */
    }
    const uint8_t *src = page_data(img, pr, d, errp);
    if (!src) {
        return false;
    }
    if (!d->flags) {
        if (buffer_is_zero(src, bs)) {
            pr->zero_off = d->offset;
        } else {
            memcpy(dst, src, bs);
        }
        return true;
    }
    if (!page_decompress(pr, d, src, dst, bs, &why)) {
        return vmcore_fail(img, errp, "the page of PFN 0x%" PRIx64 " (flags 0x%x) does not "
                           "decompress to %u bytes: %s", pfn, d->flags, bs, why);
    }
    return true;
}

/* Descriptors are read 1 MiB at a time, in the order of the 2nd bitmap. */
static bool kdump_load_pages(VmcoreImage *img, PageReader *pr, GuestMemory *mem, GError **errp)
{
    const KdumpInfo *kd = &img->kd;
    const uint64_t per_batch = IO_BATCH / PAGE_DESC_SIZE;
    g_autofree uint8_t *descs = g_malloc(per_batch * PAGE_DESC_SIZE);
    uint64_t pfn = bitmap_next(kd->bitmap2, kd->max_mapnr, 0, true);

    for (uint64_t idx = 0; idx < kd->ndumpable;) {
        uint64_t n = MIN(per_batch, kd->ndumpable - idx);
        if (!vmcore_read_at(img, descs, n * PAGE_DESC_SIZE, kd->desc_off + idx * PAGE_DESC_SIZE,
                      errp)) {
            return false;
        }
        for (uint64_t j = 0; j < n; j++, idx++) {
            PageDesc d = page_desc(descs + j * PAGE_DESC_SIZE);
            if (!page_load(img, pr, mem, pfn, &d, errp)) {
                return false;
            }
            pfn = bitmap_next(kd->bitmap2, kd->max_mapnr, pfn + 1, true);
        }
    }
    return true;
}

/* Writers put page data right after the descriptor table, optionally led by one
 * shared zero page; anything else means the bitmap miscounts them. A file filtered
 * by a dump level above 1 may leave room before its data (minivm reserves a
 * descriptor for every present page), but data inside the table is still wrong. */
static bool kdump_check_data_start(VmcoreImage *img, const PageReader *pr, GError **errp)
{
    const KdumpInfo *kd = &img->kd;
    bool exact = pr->min_off == kd->data_off || pr->min_off == kd->data_off + kd->block_size;

    if (kd->ndumpable && !exact && !(kd->dump_level > 1 && pr->min_off > kd->data_off)) {
        return vmcore_fail(img, errp, "page data starts at 0x%" PRIx64 ", not where the "
                           "descriptor table ends (0x%" PRIx64 "): the bitmaps disagree with the "
                           "descriptors", pr->min_off, kd->data_off);
    }
    return true;
}

bool vmcore_kdump_load(VmcoreImage *img, GuestMemory *mem, GError **errp)
{
    PageReader pr = { .zero_off = ALL_ONES, .min_off = ALL_ONES };
    bool ok;

#if CONFIG_LZO
    if (lzo_init() != LZO_E_OK) {
        return vmcore_fail(img, errp, "cannot initialise lzo");
    }
#endif
#if CONFIG_ZSTD
    pr.zstd = ZSTD_createDCtx();
    if (!pr.zstd) {
        return vmcore_fail(img, errp, "cannot create a zstd context");
    }
#endif
    pr.window = g_malloc(DATA_WINDOW);
    pr.scratch = g_malloc(img->kd.block_size);
    ok = kdump_load_pages(img, &pr, mem, errp) && kdump_check_data_start(img, &pr, errp);
#if CONFIG_ZSTD
    ZSTD_freeDCtx(pr.zstd);
#endif
    g_free(pr.window);
    g_free(pr.scratch);
    return ok;
}
