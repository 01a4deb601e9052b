/*
 * pagecodecs: what each page compressor a kdump file can use costs on one guest's
 * memory. Reads an ELF core (QEMU's or minivm's), takes every non-zero page of its
 * PT_LOADs and compresses each one alone, as a kdump writer does, with every
 * library and level below; prints one Markdown row per compressor: microseconds
 * per page (median of --rounds passes, the compressors taking turns in each pass)
 * and the output, a page that does not shrink counting whole (it is stored raw).
 *
 *   pagecodecs [--rounds N] CORE
 */
#include "config.h"

#include <elf.h>
#include <fcntl.h>
#include <glib.h>
#include <libdeflate.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#if CONFIG_LZO
#include <lzo/lzo1x.h>
#endif
#if CONFIG_SNAPPY
#include <snappy-c.h>
#endif
#if CONFIG_ZSTD
#include <zstd.h>
#endif

#define PAGE 4096

typedef struct Codec {
    const char *name;
    int level;
    /* compressed size of in[0..PAGE) into out (room for PAGE - 1), or 0 */
    size_t (*compress)(struct Codec *c, const uint8_t *in, uint8_t *out);
    void *ctx;
    GArray *secs;               /* double, one per round */
    uint64_t bytes;
} Codec;

/* What QEMU's compress2() at Z_BEST_SPEED does to a page, minus setting up and
 * freeing a z_stream for each one (whose cost depends on the allocator's state). */
static size_t zlib_page(Codec *c, const uint8_t *in, uint8_t *out)
{
    z_stream *z = c->ctx;

    if (deflateReset(z) != Z_OK) {
        return 0;
    }
    z->next_in = (Bytef *)in;
    z->avail_in = PAGE;
    z->next_out = out;
    z->avail_out = 2 * PAGE;
    return deflate(z, Z_FINISH) == Z_STREAM_END && z->total_out < PAGE ? z->total_out : 0;
}

static size_t libdeflate_page(Codec *c, const uint8_t *in, uint8_t *out)
{
    return libdeflate_zlib_compress(c->ctx, in, PAGE, out, PAGE - 1);
}

#if CONFIG_LZO
static size_t lzo_page(Codec *c, const uint8_t *in, uint8_t *out)
{
    lzo_uint n = 0;         /* lzo1x-1 may exceed the page: out has room for its bound */
    return lzo1x_1_compress(in, PAGE, out, &n, c->ctx) == LZO_E_OK && n < PAGE ? n : 0;
}
#endif

#if CONFIG_SNAPPY
static size_t snappy_page(Codec *c, const uint8_t *in, uint8_t *out)
{
    size_t n = snappy_max_compressed_length(PAGE);
    return snappy_compress((const char *)in, PAGE, (char *)out, &n) == SNAPPY_OK &&
           n < PAGE ? n : 0;
}
#endif

#if CONFIG_ZSTD
static size_t zstd_page(Codec *c, const uint8_t *in, uint8_t *out)
{
    size_t n = ZSTD_compressCCtx(c->ctx, out, PAGE - 1, in, PAGE, c->level);
    return ZSTD_isError(n) ? 0 : n;
}
#endif

static bool page_is_zero(const uint8_t *p)
{
    uint64_t acc = 0, w;

    for (size_t i = 0; i < PAGE; i += 8) {
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    return acc == 0;
}

/* The non-zero pages of the core's PT_LOADs (pointers into its mapping). */
static GPtrArray *core_pages(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0) {
        perror(path);
        exit(1);
    }
    const uint8_t *m = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED || (size_t)st.st_size < sizeof(Elf64_Ehdr) ||
        memcmp(m, ELFMAG, SELFMAG) || m[EI_CLASS] != ELFCLASS64) {
        fprintf(stderr, "%s: not a 64-bit ELF core\n", path);
        exit(1);
    }
    const Elf64_Ehdr *eh = (const void *)m;
    GPtrArray *pages = g_ptr_array_new();
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const void *)(m + eh->e_phoff + (uint64_t)i * eh->e_phentsize);
        if ((const uint8_t *)(ph + 1) > m + st.st_size) {
            break;
        }
        if (ph->p_type != PT_LOAD || ph->p_offset > (uint64_t)st.st_size ||
            ph->p_filesz > (uint64_t)st.st_size - ph->p_offset) {
            continue;
        }
        for (uint64_t off = 0; off + PAGE <= ph->p_filesz; off += PAGE) {
            const uint8_t *p = m + ph->p_offset + off;
            if (!page_is_zero(p)) {
                g_ptr_array_add(pages, (gpointer)p);
            }
        }
    }
    return pages;
}

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int rounds = 3;

    if (argc == 4 && !strcmp(argv[1], "--rounds")) {
        rounds = atoi(argv[2]);
        argv += 2;
        argc -= 2;
    }
    if (argc != 2 || rounds < 1) {
        fprintf(stderr, "usage: pagecodecs [--rounds N] CORE\n");
        return 2;
    }
    GPtrArray *pages = core_pages(argv[1]);
    Codec codecs[] = {
        { "zlib, level 1 (QEMU's)", Z_BEST_SPEED, zlib_page, NULL, NULL, 0 },
        { "libdeflate, level 1 (minivm's kdump-zlib)", 1, libdeflate_page, NULL, NULL, 0 },
        { "libdeflate, level 2", 2, libdeflate_page, NULL, NULL, 0 },
#if CONFIG_LZO
        { "lzo1x-1 (kdump-lzo)", 0, lzo_page, NULL, NULL, 0 },
#endif
#if CONFIG_SNAPPY
        { "snappy (kdump-snappy)", 0, snappy_page, NULL, NULL, 0 },
#endif
#if CONFIG_ZSTD
        { "zstd, level -3", -3, zstd_page, NULL, NULL, 0 },
        { "zstd, level -1", -1, zstd_page, NULL, NULL, 0 },
        { "zstd, level 1 (minivm's kdump-zstd)", 1, zstd_page, NULL, NULL, 0 },
        { "zstd, level 3", 3, zstd_page, NULL, NULL, 0 },
#endif
    };
    guint ncodecs = G_N_ELEMENTS(codecs);
    /* room for any codec's worst case (zlib's bound, lzo1x-1, snappy) */
    uint8_t *out = g_malloc(2 * PAGE);

#if CONFIG_LZO
    if (lzo_init() != LZO_E_OK) {
        fprintf(stderr, "lzo_init failed\n");
        return 1;
    }
#endif
    for (guint i = 0; i < ncodecs; i++) {
        Codec *c = &codecs[i];
        if (c->compress == zlib_page) {
            z_stream *z = g_new0(z_stream, 1);
            if (deflateInit(z, c->level) != Z_OK) {
                fprintf(stderr, "deflateInit failed\n");
                return 1;
            }
            c->ctx = z;
        } else if (c->compress == libdeflate_page) {
            c->ctx = libdeflate_alloc_compressor(c->level);
#if CONFIG_LZO
        } else if (c->compress == lzo_page) {
            c->ctx = g_malloc(LZO1X_1_MEM_COMPRESS);
#endif
#if CONFIG_ZSTD
        } else if (c->compress == zstd_page) {
            c->ctx = ZSTD_createCCtx();
#endif
        }
        c->secs = g_array_new(FALSE, FALSE, sizeof(double));
    }
    for (int r = 0; r < rounds; r++) {
        for (guint i = 0; i < ncodecs; i++) {
            Codec *c = &codecs[i];
            uint64_t bytes = 0;
            double t = now();
            for (guint k = 0; k < pages->len; k++) {
                size_t n = c->compress(c, g_ptr_array_index(pages, k), out);
                bytes += n ? n : PAGE;
            }
            t = now() - t;
            g_array_append_val(c->secs, t);
            c->bytes = bytes;
        }
    }
    printf("%u non-zero pages of %s, each compressed alone; median of %d rounds "
           "(zlib %s, libdeflate %s", pages->len, argv[1], rounds, zlibVersion(),
           LIBDEFLATE_VERSION_STRING);
#if CONFIG_LZO
    printf(", lzo %s", lzo_version_string());
#endif
#if CONFIG_ZSTD
    printf(", zstd %s", ZSTD_versionString());
#endif
    printf("):\n\n");
    printf("| page compressor | µs per page | output MiB | output vs zlib level 1 |\n");
    printf("|---|---|---|---|\n");
    for (guint i = 0; i < ncodecs; i++) {
        Codec *c = &codecs[i];
        g_array_sort(c->secs, by_value);
        double median = g_array_index(c->secs, double, rounds / 2);
        printf("| %s | %.1f | %.2f | %+.1f %% |\n", c->name,
               pages->len ? median / pages->len * 1e6 : 0.0, c->bytes / 1048576.0,
               codecs[0].bytes ? 100.0 * ((double)c->bytes / codecs[0].bytes - 1) : 0.0);
        g_array_free(c->secs, TRUE);
        if (c->compress == zlib_page) {
            deflateEnd(c->ctx);
            g_free(c->ctx);
        } else if (c->compress == libdeflate_page) {
            libdeflate_free_compressor(c->ctx);
#if CONFIG_ZSTD
        } else if (c->compress == zstd_page) {
            ZSTD_freeCCtx(c->ctx);
#endif
        } else {
            g_free(c->ctx);
        }
    }
    g_free(out);
    g_ptr_array_free(pages, TRUE);
    return 0;
}
