/*
 * pagecodecs: what each page compressor a kdump file can use costs on one guest's
 * memory. Reads a vmcore (an ELF core or a kdump file, QEMU's or minivm's) as
 * -load-vmcore does, takes every non-zero page and compresses each one alone, as a
 * kdump writer does: QEMU's zlib and lzo, minivm's own codec for each kdump format
 * (dump/compress.c, the code a dump runs), and the levels minivm did not choose.
 * Prints one Markdown row per compressor: microseconds per page (median of --rounds
 * passes, the compressors taking turns in each pass) and the output, a page that
 * does not shrink counting whole (it is stored raw).
 *
 *   pagecodecs [--rounds N] VMCORE
 */
#include "config.h"
#include "dump/compress.h"
#include "memory.h"
#include "vmcore.h"
#include "util.h"

#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#if CONFIG_LZO
#include <lzo/lzo1x.h>
#endif
#if CONFIG_ZSTD
#include <zstd.h>
#endif

#define PAGE 4096

typedef enum CodecKind {
    QEMU_ZLIB,          /* zlib at `level`, one z_stream reset per page */
    MINIVM,             /* minivm's page codec for `format` */
    LIBDEFLATE,         /* libdeflate at `level` */
    LZO,                /* lzo1x_1_compress, as QEMU and makedumpfile call it */
    ZSTD,               /* zstd at `level` */
} CodecKind;

typedef struct Codec {
    const char *name;
    CodecKind kind;
    int level;
    DumpFormat format;
    void *ctx;
    GArray *secs;               /* double, one per round */
    uint64_t bytes;
} Codec;

static bool codec_open(Codec *c)
{
    switch (c->kind) {
    case QEMU_ZLIB: {
        z_stream *z = g_new0(z_stream, 1);
        c->ctx = z;
        return deflateInit(z, c->level) == Z_OK;
    }
    case MINIVM:
        c->ctx = page_codec_new(c->format, NULL);
        break;
    case LIBDEFLATE:
        c->ctx = libdeflate_alloc_compressor(c->level);
        break;
    case LZO:
#if CONFIG_LZO
        c->ctx = lzo_init() == LZO_E_OK ? g_malloc(LZO1X_1_MEM_COMPRESS) : NULL;
#endif
        break;
    case ZSTD:
#if CONFIG_ZSTD
        c->ctx = ZSTD_createCCtx();
#endif
        break;
    }
    return c->ctx != NULL;
}

/* The compressed size of in[0..PAGE) (written to out, 2 * PAGE bytes), or 0 when the
 * page does not shrink. */
static size_t codec_compress(Codec *c, const uint8_t *in, uint8_t *out)
{
    size_t n = 0;

    switch (c->kind) {
    case QEMU_ZLIB: {
        /* what QEMU's compress2() at Z_BEST_SPEED does to a page, minus setting up and
         * freeing a z_stream for each one (whose cost depends on the allocator's state) */
        z_stream *z = c->ctx;
        if (deflateReset(z) == Z_OK) {
            z->next_in = (Bytef *)in;
            z->avail_in = PAGE;
            z->next_out = out;
            z->avail_out = 2 * PAGE;
            n = deflate(z, Z_FINISH) == Z_STREAM_END ? z->total_out : 0;
        }
        break;
    }
    case MINIVM:
        n = page_codec_compress(c->ctx, in, PAGE, out);
        break;
    case LIBDEFLATE:
        n = libdeflate_zlib_compress(c->ctx, in, PAGE, out, PAGE - 1);
        break;
    case LZO: {
#if CONFIG_LZO
        lzo_uint len = 0;
        n = lzo1x_1_compress(in, PAGE, out, &len, c->ctx) == LZO_E_OK ? len : 0;
#endif
        break;
    }
    case ZSTD:
#if CONFIG_ZSTD
        n = ZSTD_compressCCtx(c->ctx, out, PAGE - 1, in, PAGE, c->level);
        n = ZSTD_isError(n) ? 0 : n;
#endif
        break;
    }
    return n < PAGE ? n : 0;
}

static void codec_close(Codec *c)
{
    switch (c->kind) {
    case QEMU_ZLIB:
        deflateEnd(c->ctx);
        g_free(c->ctx);
        break;
    case MINIVM:
        page_codec_free(c->ctx);
        break;
    case LIBDEFLATE:
        libdeflate_free_compressor(c->ctx);
        break;
    case LZO:
        g_free(c->ctx);
        break;
    case ZSTD:
#if CONFIG_ZSTD
        ZSTD_freeCCtx(c->ctx);
#endif
        break;
    }
}

/* The non-zero pages of a vmcore (ELF or kdump, read as -load-vmcore reads it) in
 * `mem`, which the caller frees after the pages. */
static GPtrArray *core_pages(const char *path, GuestMemory **mem)
{
    GError *err = NULL;
    VmcoreImage *img = vmcore_open(path, &err);

    *mem = img ? guest_memory_new(NULL, &err) : NULL;
    for (guint i = 0; *mem && i < vmcore_block_count(img); i++) {
        VmcoreBlock b = vmcore_block(img, i);
        if (!guest_memory_add(*mem, "core", b.gpa, b.size, &err)) {
            break;
        }
    }
    if (err || !vmcore_read_memory(img, *mem, &err)) {
        fprintf(stderr, "%s\n", err->message);
        exit(1);
    }
    vmcore_close(img);
    GPtrArray *pages = g_ptr_array_new();
    for (guint i = 0; i < guest_memory_count(*mem); i++) {
        const RamBlock *rb = guest_memory_block(*mem, i);
        for (uint64_t off = 0; off + PAGE <= rb->size; off += PAGE) {
            if (!buffer_is_zero(rb->host + off, PAGE)) {
                g_ptr_array_add(pages, rb->host + off);
            }
        }
    }
    return pages;
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
        fprintf(stderr, "usage: pagecodecs [--rounds N] VMCORE\n");
        return 2;
    }
    GuestMemory *mem;
    GPtrArray *pages = core_pages(argv[1], &mem);
    const Codec all[] = {
        { "zlib, level 1 (QEMU's)", QEMU_ZLIB, Z_BEST_SPEED },
        { "libdeflate, level 1 (minivm's kdump-zlib)", MINIVM, 0, DUMP_FORMAT_KDUMP_ZLIB },
        { "libdeflate, level 2", LIBDEFLATE, 2 },
        { "lzo1x-1 (QEMU's)", LZO },
        { "lzo1x-1, 12-bit dictionary (minivm's kdump-lzo)", MINIVM, 0, DUMP_FORMAT_KDUMP_LZO },
        { "snappy (kdump-snappy)", MINIVM, 0, DUMP_FORMAT_KDUMP_SNAPPY },
        { "zstd, level -3", ZSTD, -3 },
        { "zstd, level -1", ZSTD, -1 },
        { "zstd, level 1 (minivm's kdump-zstd)", MINIVM, 0, DUMP_FORMAT_KDUMP_ZSTD },
        { "zstd, level 3", ZSTD, 3 },
    };
    GArray *codecs = g_array_new(FALSE, FALSE, sizeof(Codec));
    for (guint i = 0; i < G_N_ELEMENTS(all); i++) {
        Codec c = all[i];
        if ((c.kind == MINIVM && !page_codec_available(c.format)) ||
            (c.kind == LZO && !CONFIG_LZO) || (c.kind == ZSTD && !CONFIG_ZSTD)) {
            continue;                   /* not built in */
        }
        if (!codec_open(&c)) {
            fprintf(stderr, "%s: cannot set up the compressor\n", c.name);
            return 1;
        }
        c.secs = g_array_new(FALSE, FALSE, sizeof(double));
        g_array_append_val(codecs, c);
    }
    uint8_t *out = g_malloc(2 * PAGE);  /* zlib's bound; page_codec_bound() */
    for (int r = 0; r < rounds; r++) {
        for (guint i = 0; i < codecs->len; i++) {
            Codec *c = &g_array_index(codecs, Codec, i);
            uint64_t bytes = 0;
            gint64 t = g_get_monotonic_time();
            for (guint k = 0; k < pages->len; k++) {
                size_t n = codec_compress(c, g_ptr_array_index(pages, k), out);
                bytes += n ? n : PAGE;
            }
            double secs = (g_get_monotonic_time() - t) * 1e-6;
            g_array_append_val(c->secs, secs);
            c->bytes = bytes;
        }
    }
    printf("%u non-zero pages of %s, each compressed alone; median of %d rounds "
           "(zlib %s, libdeflate %s", pages->len, argv[1], rounds, zlibVersion(),
           LIBDEFLATE_VERSION_STRING);
#if CONFIG_ZSTD
    printf(", zstd %s", ZSTD_versionString());
#endif
    printf("):\n\n");
    printf("| page compressor | µs per page | output MiB | output vs zlib level 1 |\n");
    printf("|---|---|---|---|\n");
    uint64_t zlib_bytes = g_array_index(codecs, Codec, 0).bytes;
    for (guint i = 0; i < codecs->len; i++) {
        Codec *c = &g_array_index(codecs, Codec, i);
        g_array_sort(c->secs, by_value);
        double median = g_array_index(c->secs, double, rounds / 2);
        printf("| %s | %.1f | %.2f | %+.1f %% |\n", c->name,
               pages->len ? median / pages->len * 1e6 : 0.0, c->bytes / 1048576.0,
               zlib_bytes ? 100.0 * ((double)c->bytes / zlib_bytes - 1) : 0.0);
        g_array_free(c->secs, TRUE);
        codec_close(c);
    }
    g_array_free(codecs, TRUE);
    g_free(out);
    g_ptr_array_free(pages, TRUE);
    guest_memory_free(mem);
    return 0;
}
