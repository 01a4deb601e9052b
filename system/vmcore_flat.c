/*
 * makedumpfile's flattened format: a 4 KiB header, then records of a 16-byte
 * big-endian (offset, size) head and `size` bytes that belong at `offset` of the
 * reassembled file, ended by a (-1, -1) head (docs/formats.md, "Flattened
 * records"). The records are indexed once into a table sorted by offset; every
 * later read of the logical file goes through vmcore_flat_read().
 */
#include "vmcore-internal.h"
#include "util.h"

#define FLAT_HEADER_SIZE    4096

/* One makedumpfile record: `size` bytes at `file` belong at `logical`. */
typedef struct FlatRecord {
    uint64_t logical;
    uint64_t file;
    uint64_t size;
} FlatRecord;

static uint64_t get_be64(const uint8_t *p)
{
    return GUINT64_FROM_BE(get64(p));
}

/* Index of the first record that ends after `off`. */
static guint flat_find(const GArray *flat, uint64_t off)
{
    guint lo = 0, hi = flat->len;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        const FlatRecord *r = &g_array_index(flat, FlatRecord, mid);
        if (r->logical + r->size <= off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Gaps between records read as zero; with `dest_zeroed` they are left alone. */
bool vmcore_flat_read(const VmcoreImage *img, uint8_t *buf, uint64_t len, uint64_t off,
                      bool dest_zeroed, GError **errp)
{
    guint i = flat_find(img->flat, off);

    while (len) {
        const FlatRecord *r = i < img->flat->len ? &g_array_index(img->flat, FlatRecord, i) : NULL;
        uint64_t n;

        if (!r || off < r->logical) {
            n = r ? MIN(len, r->logical - off) : len;
            if (!dest_zeroed) {
                memset(buf, 0, n);
            }
        } else {
            n = MIN(len, r->logical + r->size - off);
            if (!pread_full(img->fd, buf, n, (off_t)(r->file + off - r->logical), img->path,
                            errp)) {
                return false;
            }
            i++;
        }
        buf += n;
        off += n;
        len -= n;
    }
    return true;
}

/* A small read-ahead buffer for scanning the flattened record headers. */
typedef struct ScanBuffer {
    uint8_t *data;
    uint64_t start;
    uint64_t len;
} ScanBuffer;

static bool scan_get(const VmcoreImage *img, ScanBuffer *sb, uint64_t off, uint8_t out[16],
                     GError **errp)
{
    if (off < sb->start || off + 16 > sb->start + sb->len) {
        uint64_t want = MIN(IO_BATCH, img->file_size - off);
        if (want < 16) {
            return vmcore_fail(img, errp, "flattened record header at offset 0x%" PRIx64
                               " is truncated", off);
        }
        if (!pread_full(img->fd, sb->data, want, (off_t)off, img->path, errp)) {
            return false;
        }
        sb->start = off;
        sb->len = want;
    }
    memcpy(out, sb->data + (off - sb->start), 16);
    return true;
}

static bool flat_scan(VmcoreImage *img, GError **errp)
{
    g_autofree uint8_t *data = g_malloc(IO_BATCH);
    ScanBuffer sb = { data, 0, 0 };
    uint64_t pos = FLAT_HEADER_SIZE;
    uint8_t rec[16];

    for (;;) {
        if (pos == img->file_size) {
            return vmcore_fail(img, errp, "flattened file ends without its end marker "
                               "(truncated?)");
        }
        if (!scan_get(img, &sb, pos, rec, errp)) {
            return false;
        }
        int64_t loff = (int64_t)get_be64(rec), size = (int64_t)get_be64(rec + 8);
        if (loff == -1 && size == -1) {
            return true;
        }
        if (loff < 0 || size < 0 || size > INT64_MAX - loff) {
            return vmcore_fail(img, errp, "flattened record at offset 0x%" PRIx64 " is corrupt "
                               "(offset %" PRId64 ", size %" PRId64 ")", pos, loff, size);
        }
        if ((uint64_t)size > img->file_size - pos - 16) {
            return vmcore_fail(img, errp, "flattened record at offset 0x%" PRIx64 " runs past the "
                               "end of the file", pos);
        }
        FlatRecord r = { (uint64_t)loff, pos + 16, (uint64_t)size };
        if (size) {
            g_array_append_val(img->flat, r);
        }
        pos += 16 + (uint64_t)size;
    }
}

static gint flat_record_cmp(gconstpointer a, gconstpointer b)
{
    const FlatRecord *x = a, *y = b;

    return x->logical < y->logical ? -1 : x->logical > y->logical;
}

/* Sort the records and refuse overlapping ones; the logical size is the last end. */
static bool flat_sort(VmcoreImage *img, GError **errp)
{
    GArray *flat = img->flat;
    bool sorted = true;

    for (guint i = 1; i < flat->len && sorted; i++) {
        sorted = flat_record_cmp(&g_array_index(flat, FlatRecord, i - 1),
                                 &g_array_index(flat, FlatRecord, i)) <= 0;
    }
    if (!sorted) {
        g_array_sort(flat, flat_record_cmp);
    }
    img->size = 0;
    for (guint i = 0; i < flat->len; i++) {
        const FlatRecord *r = &g_array_index(flat, FlatRecord, i);
        if (r->logical < img->size) {
            return vmcore_fail(img, errp, "flattened records overlap at offset 0x%" PRIx64,
                               r->logical);
        }
        img->size = r->logical + r->size;
    }
    return true;
}

bool vmcore_flat_open(VmcoreImage *img, GError **errp)
{
    uint8_t hdr[32];

    if (img->file_size < FLAT_HEADER_SIZE) {
        return vmcore_fail(img, errp, "truncated makedumpfile flattened header");
    }
    if (!pread_full(img->fd, hdr, sizeof(hdr), 0, img->path, errp)) {
        return false;
    }
    if (get_be64(hdr + 16) != 1) {
        return vmcore_fail(img, errp, "makedumpfile flattened type %" PRIu64 " is not 1",
                           get_be64(hdr + 16));
    }
    img->flat = g_array_new(FALSE, FALSE, sizeof(FlatRecord));
    return flat_scan(img, errp) && flat_sort(img, errp);
}
