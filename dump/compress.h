/* Per-page compression for kdump-compressed dumps; one context per thread. */
#ifndef MINIVM_DUMP_COMPRESS_H
#define MINIVM_DUMP_COMPRESS_H

#include "dump.h"

#include <stddef.h>
#include <stdint.h>

/* page_desc.flags values, as makedumpfile defines them */
#define DUMP_DH_COMPRESSED_ZLIB   0x1
#define DUMP_DH_COMPRESSED_LZO    0x2
#define DUMP_DH_COMPRESSED_SNAPPY 0x4
#define DUMP_DH_COMPRESSED_ZSTD   0x20

typedef struct PageCodec PageCodec;

/* The page_desc flag (and header status bit) of a kdump format. */
uint32_t page_codec_flag(DumpFormat format);
bool page_codec_available(DumpFormat format);
/* Output buffer size that any page of `page_size` bytes fits in. */
size_t page_codec_bound(DumpFormat format, size_t page_size);

PageCodec *page_codec_new(DumpFormat format, GError **errp);
void page_codec_free(PageCodec *c);
/* Compress one page into out (page_codec_bound bytes); returns the size, or 0
 * when the page does not compress to fewer than in_len bytes. */
size_t page_codec_compress(PageCodec *c, const uint8_t *in, size_t in_len, uint8_t *out);

#endif
