/* Unit tests for the kdump-compressed writer: repeated pages, thread counts. */
#include "dump/dump-internal.h"
#include "unit_kdump.h"
#include "memory.h"
#include "vmcore.h"

#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define PAGE 4096
#define NPAGES (12 * 256)          /* 12 batches of 256 pages */
#define LATE 2560                  /* batch 10: past the ring of 8 batches of one thread */

typedef struct Desc {
    uint64_t offset;
    uint32_t size, flags;
} Desc;

typedef struct Dump {
    GBytes *file;
    Desc desc[NPAGES];
    uint64_t zero_page;
} Dump;

static uint64_t get_le(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < size; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static void fill(uint8_t *page, uint8_t byte, uint64_t tag)
{
    memset(page, byte, PAGE);
    if (tag) {
        memcpy(page, &tag, sizeof(tag));
    }
}

/*
 * Guest RAM: A (0xcc) at 0 and 1; C (distinct words) at 2000, 2001 and 2600; B,
 * a page whose hash lands in A's slot of the writer's table, at LATE, then A at
 * LATE + 1 and LATE + 2. B evicts A from the table before LATE + 1, which a
 * worker has already marked as a repeat of page 0: the writer must encode it.
 */
static uint8_t *make_ram(void)
{
    uint8_t *ram = g_malloc0((size_t)NPAGES * PAGE);
    uint8_t *a = ram, *c = ram + 2000 * PAGE;

    fill(a, 0xcc, 0);
    for (int i = 0; i < PAGE; i += 8) {
        uint64_t v = (uint64_t)i * 0x9e3779b97f4a7c15ULL + 1;
        memcpy(c + i, &v, 8);
    }
    size_t slot_a = kdump_dedup_slot(dump_page_hash(a, PAGE));
    uint8_t *b = ram + (size_t)LATE * PAGE;
    for (uint64_t tag = 1;; tag++) {
        fill(b, 0xcc, tag);
        if (kdump_dedup_slot(dump_page_hash(b, PAGE)) == slot_a) {
            break;
        }
    }
    memcpy(ram + 1 * PAGE, a, PAGE);
    memcpy(ram + (size_t)(LATE + 1) * PAGE, a, PAGE);
    memcpy(ram + (size_t)(LATE + 2) * PAGE, a, PAGE);
    memcpy(ram + 2001 * PAGE, c, PAGE);
    memcpy(ram + 2600 * PAGE, c, PAGE);
    return ram;
}

/* Dump ram as kdump-zlib (raw) into a temporary file; returns its path. */
static char *write_file(uint8_t *ram, guint threads, bool dedup, bool long_mode)
{
    X86CPUState cpu = { 0 };
    DumpRange range = { .gpa = 0, .size = (uint64_t)NPAGES * PAGE, .host = ram };
    GArray *ranges = g_array_new(FALSE, FALSE, sizeof(DumpRange));
    DumpJob job = { .format = DUMP_FORMAT_KDUMP_ZLIB, .ranges = ranges, .ncpus = 1,
                    .cpus = &cpu, .threads = threads, .dedup = dedup };

    g_array_append_val(ranges, range);
    cpu.efer = long_mode ? EFER_LMA | EFER_LME : 0;
    cpu.cs.flags = long_mode ? SEG_FLAG_L | SEG_FLAG_P : SEG_FLAG_P | SEG_FLAG_DB;
    char *path = unit_write_kdump(&job, range.size);
    g_array_free(ranges, TRUE);
    return path;
}

static void write_dump(uint8_t *ram, guint threads, bool dedup, Dump *out)
{
    g_autofree char *path = write_file(ram, threads, dedup, true);
    gchar *data;
    gsize len;

    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    unlink(path);

    const uint8_t *f = (const uint8_t *)data;
    g_assert_cmpmem(f, 8, "KDUMP   ", 8);
    uint32_t bs = (uint32_t)get_le(f + 428, 4), sub = (uint32_t)get_le(f + 432, 4);
    uint32_t bitmap_blocks = (uint32_t)get_le(f + 436, 4);
    g_assert_cmpuint(bs, ==, PAGE);
    g_assert_cmpuint(get_le(f + 440, 4), ==, NPAGES);
    uint64_t desc_off = (1 + (uint64_t)sub + bitmap_blocks) * bs;
    g_assert_cmpuint(desc_off + NPAGES * 24, <=, len);
    out->zero_page = desc_off + NPAGES * 24;
    for (int p = 0; p < NPAGES; p++) {
        const uint8_t *d = f + desc_off + 24 * p;
        out->desc[p] = (Desc){ get_le(d, 8), (uint32_t)get_le(d + 8, 4),
                               (uint32_t)get_le(d + 12, 4) };
    }
    out->file = g_bytes_new_take(data, len);
}

/* Every page reads back as the RAM holds it. */
static void check_contents(const Dump *d, const uint8_t *ram)
{
    gsize len;
    const uint8_t *f = g_bytes_get_data(d->file, &len);
    uint8_t page[PAGE];

    for (int p = 0; p < NPAGES; p++) {
        const Desc *e = &d->desc[p];
        g_assert_cmpuint(e->offset + e->size, <=, len);
        if (e->flags == 0) {
            g_assert_cmpuint(e->size, ==, PAGE);
            memcpy(page, f + e->offset, PAGE);
        } else {
            uLongf n = PAGE;
            g_assert_cmpuint(e->flags, ==, 1);
            g_assert_cmpint(uncompress(page, &n, f + e->offset, e->size), ==, Z_OK);
            g_assert_cmpuint(n, ==, PAGE);
        }
        g_assert_cmpmem(page, PAGE, ram + (size_t)p * PAGE, PAGE);
    }
}

static void test_repeated_pages(void)
{
    uint8_t *ram = make_ram();
    Dump *d = g_new0(Dump, 1);

    write_dump(ram, 1, true, d);
    check_contents(d, ram);
    const Desc *e = d->desc;
    /* zero pages share the zero page; repeats point at the first copy */
    g_assert_cmpuint(e[5].offset, ==, d->zero_page);
    g_assert_cmpuint(e[0].offset, ==, d->zero_page + PAGE);
    g_assert_cmpuint(e[1].offset, ==, e[0].offset);
    g_assert_cmpuint(e[2001].offset, ==, e[2000].offset);
    g_assert_cmpuint(e[2600].offset, ==, e[2000].offset);
    /* B pushed A out of the table: A is written again once, then shared again */
    g_assert_cmpuint(e[LATE].offset, >, e[2000].offset);
    g_assert_cmpuint(e[LATE + 1].offset, >, e[LATE].offset);
    g_assert_cmpuint(e[LATE + 2].offset, ==, e[LATE + 1].offset);
    g_assert_cmpuint(e[LATE + 1].size, ==, e[0].size);

    /* the same bytes for any number of threads */
    for (guint threads = 2; threads <= 3; threads++) {
        Dump *other = g_new0(Dump, 1);
        write_dump(ram, threads, true, other);
        g_assert_true(g_bytes_equal(d->file, other->file));
        g_bytes_unref(other->file);
        g_free(other);
    }

    /* without deduplication every non-zero page has its own bytes, and the file
     * is larger by the repeats */
    Dump *plain = g_new0(Dump, 1);
    write_dump(ram, 2, false, plain);
    check_contents(plain, ram);
    GHashTable *offsets = g_hash_table_new(g_int64_hash, g_int64_equal);
    for (int p = 0; p < NPAGES; p++) {
        if (plain->desc[p].offset != plain->zero_page) {
            g_assert_false(g_hash_table_contains(offsets, &plain->desc[p].offset));
            g_hash_table_add(offsets, &plain->desc[p].offset);
        }
    }
    g_assert_cmpuint(g_hash_table_size(offsets), ==, 8);
    g_assert_cmpuint(g_bytes_get_size(plain->file), ==,
                     g_bytes_get_size(d->file) + 2 * e[0].size + 2 * e[2000].size);
    g_hash_table_destroy(offsets);
    g_bytes_unref(plain->file);
    g_free(plain);
    g_bytes_unref(d->file);
    g_free(d);
    g_free(ram);
}

/* An i386 guest gets the packed 32-bit header layout, and minivm's loader reads the
 * file back to the same RAM. */
/* Pages that are one word repeated, with words that alternate, each read back as it is
 * (a compressor hands out the last such page's bytes again for the same word only). */
static void test_uniform_pages(void)
{
    uint8_t *ram = g_malloc0((size_t)NPAGES * PAGE);
    Dump *d = g_new0(Dump, 1);

    for (int p = 0; p < NPAGES; p++) {
        uint64_t word = p % 5 == 4 ? 0 : 0x0101010101010101ULL * (uint64_t)(p % 5 + 1) + (p % 2);
        for (int i = 0; i < PAGE; i += 8) {
            memcpy(ram + (size_t)p * PAGE + i, &word, 8);
        }
    }
    write_dump(ram, 2, false, d);
    check_contents(d, ram);
    g_bytes_unref(d->file);
    g_free(d);
    g_free(ram);
}

static void test_i386_layout(void)
{
    uint8_t *ram = make_ram();
    g_autofree char *path = write_file(ram, 2, true, false);
    gchar *data;
    gsize len;
    GError *err = NULL;

    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    const uint8_t *f = (const uint8_t *)data;
    g_assert_cmpuint(get_le(f + 416, 4), ==, PAGE);                  /* block_size */
    g_assert_cmpuint(get_le(f + 428, 4), ==, NPAGES);                /* max_mapnr */
    g_assert_cmpuint(get_le(f + 448, 4), ==, 1);                     /* nr_cpus */
    g_assert_cmpuint(get_le(f + PAGE + 4, 4), ==, 1);                /* dump_level */
    g_assert_cmpuint(get_le(f + PAGE + 32, 8), ==, PAGE + 80);       /* offset_note */
    g_assert_cmpuint(get_le(f + PAGE + 72, 8), ==, NPAGES);          /* max_mapnr_64 */
    g_free(data);

    VmcoreImage *img = vmcore_open(path, &err);
    g_assert_no_error(err);
    GuestMemory *mem = guest_memory_new(NULL, &err);
    g_assert_no_error(err);
    for (guint i = 0; i < vmcore_block_count(img); i++) {
        VmcoreBlock b = vmcore_block(img, i);
        g_assert_nonnull(guest_memory_add(mem, "ram", b.gpa, b.size, &err));
    }
    g_assert_true(vmcore_read_memory(img, mem, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(vmcore_cpu_count(img), ==, 1);
    g_assert_cmpmem(guest_memory_ptr(mem, 0, (uint64_t)NPAGES * PAGE), (gsize)NPAGES * PAGE,
                    ram, (gsize)NPAGES * PAGE);
    guest_memory_free(mem);
    vmcore_close(img);
    unlink(path);
    g_free(ram);
}

static void test_page_hash(void)
{
    uint8_t a[PAGE] = { 0 }, b[PAGE] = { 0 };

    g_assert_cmpuint(dump_page_hash(a, PAGE), ==, dump_page_hash(b, PAGE));
    for (size_t i = 0; i < PAGE; i += 97) {
        b[i] = 1;
        g_assert_cmpuint(dump_page_hash(a, PAGE), !=, dump_page_hash(b, PAGE));
        b[i] = 0;
    }
    g_assert_cmpuint(dump_page_hash(a, 4095), !=, dump_page_hash(a, 4094));
    /* the same 128-byte blocks in another order: another page */
    for (size_t i = 0; i < PAGE; i++) {
        a[i] = (uint8_t)(i / 128 * 7 + i % 13);
    }
    memcpy(b, a + 128, 128);
    memcpy(b + 128, a, 128);
    memcpy(b + 256, a + 256, PAGE - 256);
    g_assert_cmpuint(dump_page_hash(a, PAGE), !=, dump_page_hash(b, PAGE));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/kdump/repeated-pages", test_repeated_pages);
    g_test_add_func("/kdump/uniform-pages", test_uniform_pages);
    g_test_add_func("/kdump/i386-layout", test_i386_layout);
    g_test_add_func("/kdump/page-hash", test_page_hash);
    return g_test_run();
}
