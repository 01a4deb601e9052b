/*
 * Page compressors for the kdump formats: zlib streams from libdeflate, LZO1X-1,
 * snappy and zstd frames; one reusable context per worker thread.
 *
 * LZO1X-1 with a 12-bit dictionary (lzo1x_1_12): on 4 KiB pages it is 10 % faster
 * than lzo1x_1's 14 bits, which it clears for every page, for 0.2 % more output;
 * every LZO1X decompressor reads it.
 *
 * libdeflate level 1 writes standard zlib streams (what crash, makedumpfile and
 * libkdumpfile inflate) 2.3 times faster than zlib's Z_BEST_SPEED, 5.8 % larger.
 * isa-l's igzip is faster still but did not give the same bytes for the same page
 * from one minivm process to the next (docs/performance.md, "Choosing the compressors").
 */
#include "config.h"
#include "compress.h"
#include "util.h"

#include "codec_libs.h"

#include <libdeflate.h>

#define LIBDEFLATE_PAGE_LEVEL 1
#define ZSTD_PAGE_LEVEL 1

#define UNIFORM_OUT_MAX 256    /* a uniform 4 KiB page compresses to a few dozen bytes */

/* The last page compressed that was one 8-byte word repeated (0xcc poison, 0xff, a
 * filled buffer): the next such page with the same word and size gets its bytes again
 * without compressing (libdeflate takes 16 us for a page of one byte repeated). */
typedef struct UniformPage {
    size_t len;               /* the page's size; 0: none kept */
    uint64_t word;
    size_t out_len;
    uint8_t out[UNIFORM_OUT_MAX];
} UniformPage;

struct PageCodec {
    DumpFormat format;
    UniformPage uniform;
    struct libdeflate_compressor *deflate;
    void *lzo_wrkmem;
#if CONFIG_ZSTD
    ZSTD_CCtx *zstd;
#endif
};

static DumpFormat base_format(DumpFormat f)
{
    switch (f) {
    case DUMP_FORMAT_KDUMP_RAW_ZLIB:
        return DUMP_FORMAT_KDUMP_ZLIB;
    case DUMP_FORMAT_KDUMP_RAW_LZO:
        return DUMP_FORMAT_KDUMP_LZO;
    case DUMP_FORMAT_KDUMP_RAW_SNAPPY:
        return DUMP_FORMAT_KDUMP_SNAPPY;
    case DUMP_FORMAT_KDUMP_RAW_ZSTD:
        return DUMP_FORMAT_KDUMP_ZSTD;
    default:
        return f;
    }
}

uint32_t page_codec_flag(DumpFormat format)
{
    switch (base_format(format)) {
    case DUMP_FORMAT_KDUMP_ZLIB:
        return DUMP_DH_COMPRESSED_ZLIB;
    case DUMP_FORMAT_KDUMP_LZO:
        return DUMP_DH_COMPRESSED_LZO;
    case DUMP_FORMAT_KDUMP_SNAPPY:
        return DUMP_DH_COMPRESSED_SNAPPY;
    case DUMP_FORMAT_KDUMP_ZSTD:
        return DUMP_DH_COMPRESSED_ZSTD;
    default:
        return 0;
    }
}

bool page_codec_available(DumpFormat format)
{
    switch (base_format(format)) {
    case DUMP_FORMAT_KDUMP_ZLIB:
        return true;
    case DUMP_FORMAT_KDUMP_LZO:
        return CONFIG_LZO;
    case DUMP_FORMAT_KDUMP_SNAPPY:
        return CONFIG_SNAPPY;
    case DUMP_FORMAT_KDUMP_ZSTD:
        return CONFIG_ZSTD;
    default:
        return false;
    }
}

size_t page_codec_bound(DumpFormat format, size_t page_size)
{
    /* generous for every codec: lzo's worst case is n + n/16 + 67 */
    return page_size + page_size / 8 + 1024;
}

PageCodec *page_codec_new(DumpFormat format, GError **errp)
{
    PageCodec *c = g_new0(PageCodec, 1);

    c->format = base_format(format);
    switch (c->format) {
    case DUMP_FORMAT_KDUMP_ZLIB:
        c->deflate = libdeflate_alloc_compressor(LIBDEFLATE_PAGE_LEVEL);
        if (!c->deflate) {
            error_setg(errp, "dump: libdeflate initialisation failed");
            goto fail;
        }
        break;
#if CONFIG_LZO
    case DUMP_FORMAT_KDUMP_LZO:
        if (lzo_init() != LZO_E_OK) {
            error_setg(errp, "dump: lzo initialisation failed");
            goto fail;
        }
        c->lzo_wrkmem = g_malloc(LZO1X_1_12_MEM_COMPRESS);
        break;
#endif
#if CONFIG_ZSTD
    case DUMP_FORMAT_KDUMP_ZSTD:
        c->zstd = ZSTD_createCCtx();
        if (!c->zstd) {
            error_setg(errp, "dump: zstd initialisation failed");
            goto fail;
        }
        ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_compressionLevel, ZSTD_PAGE_LEVEL);
        break;
#endif
    default:
        break;
    }
    return c;

fail:
    page_codec_free(c);
    return NULL;
}

void page_codec_free(PageCodec *c)
{
    if (!c) {
        return;
    }
    if (c->deflate) {
        libdeflate_free_compressor(c->deflate);
    }
    g_free(c->lzo_wrkmem);
#if CONFIG_ZSTD
    ZSTD_freeCCtx(c->zstd);
#endif
    g_free(c);
}

/* Is the page one 8-byte word repeated? (The first mismatch ends the comparison, most
 * often in the first bytes.) */
static bool page_is_uniform(const uint8_t *in, size_t len)
{
    return len >= 16 && len % 8 == 0 && memcmp(in, in + 8, len - 8) == 0;
}

static size_t compress_page(PageCodec *c, const uint8_t *in, size_t len, uint8_t *out);

size_t page_codec_compress(PageCodec *c, const uint8_t *in, size_t len, uint8_t *out)
{
    UniformPage *u = &c->uniform;
    bool uniform = page_is_uniform(in, len);
    uint64_t word = 0;

    if (uniform) {
        memcpy(&word, in, 8);
        if (u->len == len && u->word == word) {
            memcpy(out, u->out, u->out_len);     /* the codecs are deterministic */
            return u->out_len;
        }
    }
    size_t n = compress_page(c, in, len, out);
    if (uniform && n <= sizeof(u->out)) {
        *u = (UniformPage){ .len = len, .word = word, .out_len = n };
        memcpy(u->out, out, n);
    }
    return n;
}

static size_t compress_page(PageCodec *c, const uint8_t *in, size_t len, uint8_t *out)
{
    size_t n = 0;

    switch (c->format) {
    case DUMP_FORMAT_KDUMP_ZLIB:
        /* only output smaller than the page counts: 0 when it does not fit */
        n = libdeflate_zlib_compress(c->deflate, in, len, out, len - 1);
        break;
#if CONFIG_LZO
    case DUMP_FORMAT_KDUMP_LZO: {
        lzo_uint out_len = 0;
        if (lzo1x_1_12_compress(in, len, out, &out_len, c->lzo_wrkmem) == LZO_E_OK) {
            n = out_len;
        }
        break;
    }
#endif
#if CONFIG_SNAPPY
    case DUMP_FORMAT_KDUMP_SNAPPY: {
        size_t out_len = page_codec_bound(c->format, len);
        if (snappy_compress((const char *)in, len, (char *)out, &out_len) == SNAPPY_OK) {
            n = out_len;
        }
        break;
    }
#endif
#if CONFIG_ZSTD
    case DUMP_FORMAT_KDUMP_ZSTD: {
        size_t r = ZSTD_compress2(c->zstd, out, len - 1, in, len);
        n = ZSTD_isError(r) ? 0 : r;
        break;
    }
#endif
    default:
        break;
    }
    return n < len ? n : 0;
}
