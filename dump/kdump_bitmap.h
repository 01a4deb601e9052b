/*
 * The bitmaps of a kdump file, a bit per page frame: the 1st says which frames are
 * RAM, the 2nd which ones the file holds. A dump level decides the 2nd as the page
 * loop goes, in frame order: the writer clears the bits of excluded frames in a
 * window of the bitmap and writes each window once, when the loop has passed it.
 */
#ifndef MINIVM_DUMP_KDUMP_BITMAP_H
#define MINIVM_DUMP_KDUMP_BITMAP_H

#include "dump-internal.h"

#define KDUMP_BITMAP_CHUNK (1u << 20)    /* bytes of bitmap held at a time */

/* Set the bits of the RAM frames in [pfn_lo, pfn_hi) in chunk (which starts at pfn_lo,
 * a multiple of 8), clear the others. */
void kdump_bitmap_fill_ram(const GArray *ranges, uint32_t page_size, uint8_t *chunk,
                           uint64_t pfn_lo, uint64_t pfn_hi);

typedef struct KdumpBitmapWriter {
    DumpSink *sink;
    const GArray *ranges;                /* DumpRange: the RAM frames */
    uint32_t page_size;
    uint64_t file_off, len;              /* the bitmap in the file */
    uint64_t pos;                        /* bitmap byte that chunk[0] holds */
    uint8_t *chunk;                      /* KDUMP_BITMAP_CHUNK bytes */
} KdumpBitmapWriter;

void kdump_bitmap_writer_init(KdumpBitmapWriter *w, DumpJob *job, uint64_t file_off,
                              uint64_t len);
/* Clear frame pfn's bit; frames must come in ascending order. */
bool kdump_bitmap_writer_clear(KdumpBitmapWriter *w, uint64_t pfn, GError **errp);
/* Write the windows not written yet. */
bool kdump_bitmap_writer_finish(KdumpBitmapWriter *w, GError **errp);
void kdump_bitmap_writer_free(KdumpBitmapWriter *w);

#endif
