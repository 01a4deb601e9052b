/*
 * Page compressors for the kdump formats: zlib streams from isa-l's igzip,
 * LZO1X-1, snappy and zstd frames; one reusable context per worker thread.
 *
 * igzip level 1 writes standard zlib streams (what crash, makedumpfile and
 * libkdumpfile inflate) three times faster than zlib's Z_BEST_SPEED and 25 %
 * faster than libdeflate level 1 on Linux guest memory, 6.7 % larger than
 * zlib (README, "Choosing the compressors").
 */
#include "config.h"
#include "compress.h"
#include "util.h"

#include <isa-l/igzip_lib.h>
#if CONFIG_LZO
#include <lzo/lzo1x.h>
#endif
#if CONFIG_SNAPPY
#include <snappy-c.h>
#endif
#if CONFIG_ZSTD
#include <zstd.h>
#endif

#define IGZIP_PAGE_LEVEL 1
#define IGZIP_LEVEL_BUF_SIZE ISAL_DEF_LVL1_SMALL   /* tokens for 16 KiB: any 4 KiB page */
#define ZSTD_PAGE_LEVEL 1

struct PageCodec {
    DumpFormat format;
    struct isal_zstream *igzip;
    uint8_t *igzip_level_buf;
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
        /* zeroed: isal_deflate_stateless reads internal state that
         * isal_deflate_stateless_init leaves alone (valgrind, first page) */
        c->igzip = g_new0(struct isal_zstream, 1);
        c->igzip_level_buf = g_malloc0(IGZIP_LEVEL_BUF_SIZE);
        break;
#if CONFIG_LZO
    case DUMP_FORMAT_KDUMP_LZO:
        if (lzo_init() != LZO_E_OK) {
            error_setg(errp, "dump: lzo initialisation failed");
            goto fail;
        }
        c->lzo_wrkmem = g_malloc(LZO1X_1_MEM_COMPRESS);
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
    g_free(c->igzip);
    g_free(c->igzip_level_buf);
    g_free(c->lzo_wrkmem);
#if CONFIG_ZSTD
    ZSTD_freeCCtx(c->zstd);
#endif
    g_free(c);
}

/* One zlib stream (RFC 1950) of the page, or 0 when it does not fit in len - 1 bytes. */
static size_t igzip_page(PageCodec *c, const uint8_t *in, size_t len, uint8_t *out)
{
    struct isal_zstream *s = c->igzip;

    isal_deflate_stateless_init(s);
    s->level = IGZIP_PAGE_LEVEL;
    s->level_buf = c->igzip_level_buf;
    s->level_buf_size = IGZIP_LEVEL_BUF_SIZE;
    s->gzip_flag = IGZIP_ZLIB;
    s->end_of_stream = 1;
    s->flush = NO_FLUSH;
    s->next_in = (uint8_t *)in;
    s->avail_in = (uint32_t)len;
    s->next_out = out;
    s->avail_out = (uint32_t)len - 1;
    return isal_deflate_stateless(s) == COMP_OK ? s->total_out : 0;
}

size_t page_codec_compress(PageCodec *c, const uint8_t *in, size_t len, uint8_t *out)
{
    size_t n = 0;

    switch (c->format) {
    case DUMP_FORMAT_KDUMP_ZLIB:
        n = igzip_page(c, in, len, out);
        break;
#if CONFIG_LZO
    case DUMP_FORMAT_KDUMP_LZO: {
        lzo_uint out_len = 0;
        if (lzo1x_1_compress(in, len, out, &out_len, c->lzo_wrkmem) == LZO_E_OK) {
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
