/* kdump bitmaps: RAM frames, and the 2nd bitmap written window by window. */
#include "kdump_bitmap.h"

/* Set bits lo .. hi - 1 of bitmap: single bits at the ends, whole bytes between. */
static void set_bits(uint8_t *bitmap, uint64_t lo, uint64_t hi)
{
    for (; lo < hi && (lo & 7); lo++) {
        bitmap[lo >> 3] |= (uint8_t)(1u << (lo & 7));
    }
    for (; hi > lo && (hi & 7); hi--) {
        bitmap[(hi - 1) >> 3] |= (uint8_t)(1u << ((hi - 1) & 7));
    }
    if (hi > lo) {
        memset(bitmap + (lo >> 3), 0xff, (size_t)((hi - lo) >> 3));
    }
}

void kdump_bitmap_fill_ram(const GArray *ranges, uint32_t page_size, uint8_t *chunk,
                           uint64_t pfn_lo, uint64_t pfn_hi)
{
    memset(chunk, 0, (size_t)((pfn_hi - pfn_lo + 7) / 8));
    for (guint i = 0; i < ranges->len; i++) {
        const DumpRange *r = &g_array_index(ranges, DumpRange, i);
        uint64_t lo = MAX(r->gpa / page_size, pfn_lo);
        uint64_t hi = MIN((r->gpa + r->size) / page_size, pfn_hi);
        if (lo < hi) {
            set_bits(chunk, lo - pfn_lo, hi - pfn_lo);
        }
    }
}

/* Bytes of the window that starts at w->pos. */
static size_t window_len(const KdumpBitmapWriter *w)
{
    return (size_t)MIN(KDUMP_BITMAP_CHUNK, w->len - w->pos);
}

static void load_window(KdumpBitmapWriter *w)
{
    size_t n = window_len(w);

    kdump_bitmap_fill_ram(w->ranges, w->page_size, w->chunk, w->pos * 8, (w->pos + n) * 8);
}

/* Write the current window and load the next one. */
static bool next_window(KdumpBitmapWriter *w, GError **errp)
{
    if (!dump_sink_pwrite(w->sink, w->chunk, window_len(w), w->file_off + w->pos, errp)) {
        return false;
    }
    w->pos += window_len(w);
    if (w->pos < w->len) {
        load_window(w);
    }
    return true;
}

void kdump_bitmap_writer_init(KdumpBitmapWriter *w, DumpJob *job, uint64_t file_off,
                              uint64_t len)
{
    *w = (KdumpBitmapWriter){ .sink = &job->sink, .ranges = job->ranges,
                              .page_size = job->arch.page_size, .file_off = file_off,
                              .len = len, .chunk = g_malloc(KDUMP_BITMAP_CHUNK) };
    load_window(w);
}

bool kdump_bitmap_writer_clear(KdumpBitmapWriter *w, uint64_t pfn, GError **errp)
{
    uint64_t byte = pfn / 8;

    if (byte >= w->len) {
        return true;                     /* past the bitmap: not RAM */
    }
    while (byte >= w->pos + window_len(w)) {
        if (!next_window(w, errp)) {
            return false;
        }
    }
    w->chunk[byte - w->pos] &= (uint8_t)~(1u << (pfn & 7));
    return true;
}

bool kdump_bitmap_writer_finish(KdumpBitmapWriter *w, GError **errp)
{
    while (w->pos < w->len) {
        if (!next_window(w, errp)) {
            return false;
        }
    }
    return true;
}

void kdump_bitmap_writer_free(KdumpBitmapWriter *w)
{
    g_clear_pointer(&w->chunk, g_free);
}
