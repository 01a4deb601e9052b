/* Unit tests of the kdump-compressed reader (system/vmcore_kdump.c): a tiny
 * kdump writer, the files it writes (raw and flattened, every compression
 * built in), and bad kdump files. */
#include "test_vmcore.h"

#include "codec_libs.h"

/* ---- a tiny kdump-compressed writer ---- */

#define KD_MAPNR 64u
#define KD_NOT_DUMPED 25u

static bool kd_present(uint64_t pfn)
{
    return pfn < 16 || (pfn >= 20 && pfn < 40) || (pfn >= 48 && pfn < KD_MAPNR);
}

static bool kd_dumped(uint64_t pfn)
{
    return kd_present(pfn) && pfn != KD_NOT_DUMPED;
}

typedef struct KdumpGeometry {
    uint64_t bitmap1, bitmap2, desc, data;
    uint32_t sub_blocks, bitmap_blocks, ndumped;
} KdumpGeometry;

static size_t compress_page(uint32_t flags, const uint8_t *in, size_t in_len, uint8_t *out,
                            size_t cap)
{
    switch (flags) {
    case 0x1: {
        uLongf n = cap;
        g_assert_cmpint(compress2(out, &n, in, in_len, 1), ==, Z_OK);
        return n;
    }
#if CONFIG_LZO
    case 0x2: {
        lzo_uint n = cap;
        g_autofree void *work = g_malloc(LZO1X_1_MEM_COMPRESS);
        g_assert_cmpint(lzo1x_1_compress(in, in_len, out, &n, work), ==, LZO_E_OK);
        return n;
    }
#endif
#if CONFIG_SNAPPY
    case 0x4: {
        size_t n = cap;
        g_assert_cmpint(snappy_compress((const char *)in, in_len, (char *)out, &n), ==,
                        SNAPPY_OK);
        return n;
    }
#endif
#if CONFIG_ZSTD
    case 0x20:
        return ZSTD_compress(out, cap, in, in_len, 1);
#endif
    default:
        return in_len + 1;   /* store raw */
    }
}

static void kd_bitmaps(GByteArray *b, const KdumpGeometry *g)
{
    for (uint64_t pfn = 0; pfn < KD_MAPNR; pfn++) {
        if (kd_present(pfn)) {
            b->data[g->bitmap1 + pfn / 8] |= 1u << (pfn % 8);
        }
        if (kd_dumped(pfn)) {
            b->data[g->bitmap2 + pfn / 8] |= 1u << (pfn % 8);
        }
    }
}

static void kd_headers(GByteArray *b, const KdumpSpec *s, const KdumpGeometry *g,
                       const GByteArray *notes)
{
    uint8_t *h = b->data, *sub = b->data + PAGE;
    unsigned st = s->i386 ? 412 : 424;

    memcpy(h, "KDUMP   ", 8);
    put32(h + 8, (uint32_t)s->version);
    strcpy((char *)h + 12 + 4 * 65, s->i386 && !s->qemu_x86_64 ? "i686" : "x86_64");
    put32(h + st, s->flags);
    put32(h + st + 4, PAGE);
    put32(h + st + 8, g->sub_blocks);
    put32(h + st + 12, g->bitmap_blocks);
    put32(h + st + 16, s->qemu_x86_64 ? 0x100000 : KD_MAPNR);
    put32(h + st + 36, NCPUS);
    uint64_t note_off = PAGE + (s->i386 ? 80 : 104);
    put64(sub + (s->i386 ? 32 : 48), note_off);
    if (s->i386) {
        put32(sub + 40, notes->len);
        put64(sub + 72, KD_MAPNR);
    } else {
        put64(sub + 56, notes->len);
        put64(sub + 96, KD_MAPNR);
    }
    memcpy(b->data + note_off, notes->data, notes->len);
}

static void kd_add_desc(GByteArray *b, uint64_t at, uint64_t off, uint32_t size, uint32_t flags)
{
    put64(b->data + at, off);
    put32(b->data + at + 8, size);
    put32(b->data + at + 12, flags);
}

/* The shared zero page, then every other dumped page, compressed when it shrinks. */
static void kd_pages(GByteArray *b, const KdumpSpec *s, const KdumpGeometry *g)
{
    uint8_t page[PAGE], out[2 * PAGE];
    uint64_t desc = g->desc;

    append_zeros(b, PAGE);
    for (uint64_t pfn = 0; pfn < KD_MAPNR; pfn++) {
        if (!kd_dumped(pfn)) {
            continue;
        }
        page_fill(pfn, page);
        if (page_is_zero_pfn(pfn)) {
            kd_add_desc(b, desc, g->data, PAGE, 0);
        } else {
            size_t len = pfn == s->short_pfn ? PAGE / 2 : PAGE;
            size_t n = compress_page(s->flags, page, len, out, sizeof(out));
            bool raw = n >= PAGE;
            kd_add_desc(b, desc, b->len, raw ? PAGE : (uint32_t)n, raw ? 0 : s->flags);
            g_byte_array_append(b, raw ? page : out, raw ? PAGE : (guint)n);
        }
        desc += 24;
    }
}

GByteArray *kdump_build(const KdumpSpec *s)
{
    g_autoptr(GByteArray) notes = make_notes(s->i386 ? CPU_I386 : CPU_X86_64,
                                             s->i386 ? 432 : 440);
    GByteArray *b = g_byte_array_new();
    KdumpGeometry g = { 0 };

    g.sub_blocks = (uint32_t)((s->i386 ? 80 : 104) + notes->len + PAGE - 1) / PAGE;
    g.bitmap_blocks = 2;
    g.bitmap1 = (1 + g.sub_blocks) * PAGE;
    g.bitmap2 = g.bitmap1 + PAGE;
    g.desc = g.bitmap2 + PAGE;
    for (uint64_t pfn = 0; pfn < KD_MAPNR; pfn++) {
        g.ndumped += kd_dumped(pfn);
    }
    g.data = g.desc + 24 * g.ndumped;
    append_zeros(b, g.data);
    kd_headers(b, s, &g, notes);
    kd_bitmaps(b, &g);
    kd_pages(b, s, &g);
    return b;
}

/* ---- files that read back ---- */

static void check_kdump_memory(const GuestMemory *mem)
{
    for (uint64_t pfn = 0; pfn < KD_MAPNR; pfn++) {
        if (kd_present(pfn)) {
            check_page(mem, pfn * PAGE, !kd_dumped(pfn) || page_is_zero_pfn(pfn));
        }
    }
}

static void run_kdump(const char *name, const KdumpSpec *s, bool flattened)
{
    g_autoptr(GByteArray) logical = kdump_build(s);
    g_autoptr(GByteArray) file = flattened ? flatten(logical) : g_byte_array_ref(logical);
    g_autofree char *path = write_file(name, file);
    const VmcoreBlock want[] = { { 0, 16 * PAGE }, { 20 * PAGE, 20 * PAGE },
                                 { 48 * PAGE, 16 * PAGE } };
    VmcoreImage *img = open_ok(path);

    check_blocks(img, want, G_N_ELEMENTS(want));
    check_cpus(img, s->i386 ? CPU_I386 : CPU_X86_64, s->i386 ? 432 : 440);
    check_note(img);
    GuestMemory *mem = load_ok(img);
    check_kdump_memory(mem);
    guest_memory_free(mem);
    vmcore_close(img);
}

void test_kdump_case(gconstpointer data)
{
    const KdumpCase *c = data;
    KdumpSpec s = { c->i386, c->flags, 6, UINT64_MAX };

    run_kdump(c->name, &s, c->flattened);
}

void test_kdump_version4(void)
{
    KdumpSpec s = { false, 0x1, 4, UINT64_MAX };

    run_kdump("kdump-v4", &s, false);
}

/* qemu-system-x86_64's kdump of a 32-bit guest: the 32-bit header, whatever the
 * machine name says. */
void test_kdump_i386_from_qemu_x86_64(void)
{
    KdumpSpec s = { true, 0x1, 6, UINT64_MAX, true };

    run_kdump("kdump-i386-qemu-x86_64", &s, false);
}

/* ---- bad kdump files ---- */

GByteArray *basic_kdump(uint32_t flags)
{
    KdumpSpec s = { false, flags, 6, UINT64_MAX };

    return kdump_build(&s);
}

#define KD_BITMAP1 (2 * PAGE)
#define KD_BITMAP2 (3 * PAGE)
#define KD_DESC    (4 * PAGE)
#define KD_DESC_AT(i) (KD_DESC + 24 * (size_t)(i))

void test_bad_kdump_header(void)
{
    g_autoptr(GByteArray) b = basic_kdump(0x1);

    patch32(b, 428, 1000);
    bad_open("kd-bs", b, "block_size 1000 is not a sane page size");
    patch32(b, 428, PAGE);
    patch32(b, 8, 7);
    bad_open("kd-v7", b, "unsupported kdump header_version 7");
    patch32(b, 8, 3);
    bad_open("kd-v3", b, "header_version 3 has no note area");
    patch32(b, 8, 6);
    patch64(b, PAGE + 96, 1ULL << 40);
    bad_open("kd-mapnr", b, "max_mapnr 1099511627776 is absurd");
    patch64(b, PAGE + 96, 0);
    bad_open("kd-mapnr0", b, "max_mapnr 0 is absurd");
    patch64(b, PAGE + 96, PAGE * 8 + 1);
    bad_open("kd-bitmap-small", b, "bitmap_blocks 2 is too small for max_mapnr 32769");
    patch64(b, PAGE + 96, KD_MAPNR);
    patch32(b, 436, 1000000);
    bad_open("kd-bitmap-eof", b, "bitmaps lie past the end of the file");
    patch32(b, 436, 2);
    patch64(b, PAGE + 56, 1ULL << 30);
    bad_open("kd-note-absurd", b, "the kdump note area has an absurd size");
    patch64(b, PAGE + 56, 100);
    bad_open("kd-note-overrun", b, "note 0 in the kdump note area runs past the end");
}

void test_bad_kdump_bitmaps(void)
{
    g_autoptr(GByteArray) b = basic_kdump(0x1);
    uint64_t len = b->len;

    b->data[KD_BITMAP1 + 1] &= (uint8_t)~0x02;      /* pfn 9 dumped, not present */
    bad_open("kd-b2-not-b1", b, "PFN 0x9 is dumped (2nd bitmap) but not present");
    b->data[KD_BITMAP1 + 1] |= 0x02;
    memset(b->data + KD_BITMAP1, 0xff, 8);
    memset(b->data + KD_BITMAP2, 0xff, 8);           /* 16 more dumped pages */
    bad_open("kd-b2-extra", b, "the bitmaps disagree with the descriptors");
    g_byte_array_unref(b);

    b = basic_kdump(0x1);
    g_byte_array_set_size(b, KD_DESC + 24);
    bad_open("kd-desc-eof", b, "their descriptors would run past the end of the file");
    g_byte_array_unref(b);

    b = basic_kdump(0x1);
    g_assert_cmpuint(b->len, ==, len);
    b->data[KD_BITMAP2 + 1] &= (uint8_t)~0x01;      /* pfn 8 no longer dumped */
    bad_read("kd-b2-missing", b, "page data starts at");
}

void test_bad_kdump_descs(void)
{
    g_autoptr(GByteArray) b = basic_kdump(0x1);
    uint64_t len = b->len, desc0 = get64(b->data + KD_DESC_AT(0));

    patch64(b, KD_DESC_AT(0), len + 100);
    bad_open("kd-desc-first", b, "page descriptor of PFN 0x0 points outside the file");
    patch64(b, KD_DESC_AT(0), KD_DESC + 8);
    bad_open("kd-desc-inside", b, "page descriptor of PFN 0x0 points into the headers");
    patch64(b, KD_DESC_AT(0), desc0);
    patch64(b, KD_DESC_AT(10), len - 10);
    bad_read("kd-desc-outside", b, "page descriptor of PFN 0xa points outside the file");
    g_byte_array_unref(b);

    b = basic_kdump(0x1);
    patch32(b, KD_DESC_AT(3) + 8, 100);              /* the zero page, raw */
    bad_read("kd-raw-size", b, "the page of PFN 0x3 has size 100 (block size 4096, stored raw)");
    patch32(b, KD_DESC_AT(3) + 8, PAGE);
    patch32(b, KD_DESC_AT(4) + 12, 0x8);
    bad_read("kd-flags", b, "the page of PFN 0x4 has unknown compression flags 0x8");
    patch32(b, KD_DESC_AT(4) + 12, 0x1);
    b->data[get64(b->data + KD_DESC_AT(4))] ^= 0xff;
    bad_read("kd-corrupt", b, "the page of PFN 0x4 (flags 0x1) does not decompress to 4096 bytes");
}

void test_bad_kdump_short_page(gconstpointer data)
{
    const KdumpCase *c = data;
    KdumpSpec s = { false, c->flags, 6, 7 };
    g_autoptr(GByteArray) b = kdump_build(&s);
    g_autofree char *want = g_strdup_printf("the page of PFN 0x7 (flags 0x%x) does not "
                                            "decompress to 4096 bytes", c->flags);

    bad_read(c->name, b, want);
}

/* ---- the cases, by compression ---- */

const KdumpCase kdump_cases[] = {
    { "kdump-raw-none", 0, false, false },
    { "kdump-raw-zlib", 0x1, false, false },
    { "kdump-flat-zlib", 0x1, false, true },
    { "kdump-i386-zlib", 0x1, true, false },
    { "kdump-i386-flat", 0x1, true, true },
#if CONFIG_LZO
    { "kdump-raw-lzo", 0x2, false, false },
    { "kdump-flat-lzo", 0x2, false, true },
#endif
#if CONFIG_SNAPPY
    { "kdump-raw-snappy", 0x4, false, false },
    { "kdump-flat-snappy", 0x4, false, true },
#endif
#if CONFIG_ZSTD
    { "kdump-raw-zstd", 0x20, false, false },
    { "kdump-flat-zstd", 0x20, false, true },
#endif
};

const guint n_kdump_cases = G_N_ELEMENTS(kdump_cases);

const KdumpCase short_cases[] = {
    { "short-zlib", 0x1, false, false },
#if CONFIG_LZO
    { "short-lzo", 0x2, false, false },
#endif
#if CONFIG_SNAPPY
    { "short-snappy", 0x4, false, false },
#endif
#if CONFIG_ZSTD
    { "short-zstd", 0x20, false, false },
#endif
};

const guint n_short_cases = G_N_ELEMENTS(short_cases);
