/*
 * The kdump-compressed writer (makedumpfile's "diskdump" format, docs/formats.md):
 *
 *   block 0        disk_dump_header (version 6; the 32-bit layout for i386)
 *   block 1..      kdump_sub_header, then the ELF note stream
 *   bitmaps        1st (pages present) and 2nd (pages dumped), identical unless a
 *                  dump level leaves pages out (dump/page_filter.h)
 *   page_desc[]    one per dumped page, 24 bytes, in frame order; room for one per
 *                  RAM page, the rest left unwritten (excluded pages have none)
 *   data           one shared zero page, then every non-zero page
 *
 * Pages are compressed by a pool of worker threads, in batches, into a ring of
 * slots; this thread writes the batches strictly in order, so the output bytes
 * do not depend on the number of threads. Memory use is bounded by the ring.
 * Output goes to a raw seekable file or a flattened stream (dump/sink.c).
 *
 * A page identical to one written earlier is not written again: its descriptor
 * points at the earlier copy, as every writer already does for the zero page
 * (freed init memory poisoned with 0xcc, pages of 0xff, copies in the page
 * cache). The writer alone decides, in page order, from a fixed-size table of
 * pages it has written; workers only read the table to skip compressing pages
 * that will be found there, so the bytes still do not depend on the threads.
 */
#include "dump-internal.h"
#include "kdump_format.h"
#include "live.h"
#include "kdump_bitmap.h"
#include "zeromap.h"
#include "compress.h"
#include "vmcoreinfo.h"
#include "util.h"

#include <elf.h>
#include <string.h>

#define KDUMP_SIGNATURE "KDUMP   "
#define KDUMP_HEADER_VERSION 6
#define KDUMP_STATUS_INCOMPLETE 0x8
#define KDUMP_DUMP_LEVEL 1                   /* QEMU's, when no dump-level is asked for */
#define PAGE_DESC_SIZE 24
#define UTS_LEN 65
#define BATCH_PAGES 256
#define BATCH_SEEN 64
#define WRITER_LAG 4                 /* batches the writer waits for beyond the next one */
#define RING_BYTES (32u << 20)
#define DESC_BUFFER_ENTRIES 43690            /* ~1 MiB of page descriptors */
#define START_KERNEL_MAP 0xffffffff80000000ULL

typedef struct KdumpLayout {
    const KdumpFields *fields;   /* x86_64 or i386 layout */
    uint32_t block_size;
    uint32_t status;
    uint64_t max_mapnr;
    uint64_t pages;              /* dumpable pages: every RAM page */
    uint32_t sub_hdr_blocks;
    unsigned dump_level;
    uint64_t bitmap_len;         /* bytes of one bitmap, whole blocks */
    uint64_t off_bitmap1, off_bitmap2, off_desc, off_zero_page;
    uint64_t off_note, note_size;
    uint64_t off_vmcoreinfo, size_vmcoreinfo;
    int64_t phys_base;
    char uts[6][UTS_LEN];
} KdumpLayout;

/* ---- header fields ---- */

static void fill_header(uint8_t *b, const KdumpLayout *l, guint ncpus, uint32_t extra_status)
{
    const KdumpFields *f = l->fields;

    memcpy(b, KDUMP_SIGNATURE, 8);
    dump_put_le(b, 8, KDUMP_HEADER_VERSION, 4);
    memcpy(b + KDUMP_UTS_OFFSET, l->uts, sizeof(l->uts));
    /* timestamp stays 0, as QEMU writes it: output must be deterministic */
    dump_put_le(b, f->status, l->status | extra_status, 4);
    dump_put_le(b, f->block_size, l->block_size, 4);
    dump_put_le(b, f->sub_hdr_size, l->sub_hdr_blocks, 4);
    dump_put_le(b, f->bitmap_blocks, 2 * (l->bitmap_len / l->block_size), 4);
    dump_put_le(b, f->max_mapnr, MIN(l->max_mapnr, UINT32_MAX), 4);
    /* total_ram_blocks, device_blocks, written_blocks, current_cpu stay 0 */
    dump_put_le(b, f->nr_cpus, ncpus, 4);
}

static void fill_sub_header(uint8_t *b, const KdumpLayout *l)
{
    const KdumpFields *f = l->fields;

    dump_put_le(b, f->phys_base, (uint64_t)l->phys_base, f->word);
    dump_put_le(b, f->dump_level, l->dump_level, 4);
    dump_put_le(b, f->offset_vmcoreinfo, l->off_vmcoreinfo, 8);
    dump_put_le(b, f->size_vmcoreinfo, l->size_vmcoreinfo, f->word);
    dump_put_le(b, f->offset_note, l->off_note, 8);
    dump_put_le(b, f->size_note, l->note_size, f->word);
    dump_put_le(b, f->max_mapnr_64, l->max_mapnr, 8);
}

/* ---- utsname and phys_base from VMCOREINFO ---- */

static bool read_guest_virt(const DumpJob *job, const KdumpLayout *l, uint64_t va,
                            uint8_t *buf, size_t len)
{
    if (job->ncpus && x86_cpu_read_virt(&job->cpus[0], &job->reader, va, buf, len)) {
        return true;
    }
    /* no paging, or tables that do not map it: the kernel's text mapping */
    return va >= START_KERNEL_MAP &&
           guest_reader_read(&job->reader, va - START_KERNEL_MAP + (uint64_t)l->phys_base, buf, len);
}

/* init_uts_ns.name is at offset 0 (Linux >= 5.11) or after a 4- or 8-byte kref. */
static void uts_from_guest(const DumpJob *job, KdumpLayout *l, uint64_t init_uts_ns)
{
    static const size_t name_offsets[] = { 0, 4, 8 };
    uint8_t buf[sizeof(l->uts)];

    for (size_t i = 0; i < G_N_ELEMENTS(name_offsets); i++) {
        if (read_guest_virt(job, l, init_uts_ns + name_offsets[i], buf, sizeof(buf)) &&
            memcmp(buf, "Linux", 6) == 0) {
            memcpy(l->uts, buf, sizeof(buf));
            for (int f = 0; f < 6; f++) {
                l->uts[f][UTS_LEN - 1] = 0;
            }
            return;
        }
    }
}

static void fill_uts_and_phys_base(const DumpJob *job, KdumpLayout *l, const uint8_t *notes,
                                   size_t notes_len)
{
    size_t off, len;

    memset(l->uts, 0, sizeof(l->uts));
    g_strlcpy(l->uts[0], "Linux", UTS_LEN);
    g_strlcpy(l->uts[4], job->arch.uname_machine, UTS_LEN);
    if (!elf_note_find(notes, notes_len, "VMCOREINFO", &off, &len)) {
        return;
    }
    l->off_vmcoreinfo = l->off_note + off;
    l->size_vmcoreinfo = len;
    const char *text = (const char *)notes + off;
    int64_t phys_base;
    uint64_t uts_ns;
    if (vmcoreinfo_number(text, len, "NUMBER(phys_base)", &phys_base)) {
        l->phys_base = phys_base;
    }
    g_autofree char *release = vmcoreinfo_lookup(text, len, "OSRELEASE");
    if (release) {
        g_strlcpy(l->uts[2], release, UTS_LEN);
    }
    if (vmcoreinfo_hex(text, len, "SYMBOL(init_uts_ns)", &uts_ns)) {
        uts_from_guest(job, l, uts_ns);
    }
    g_strlcpy(l->uts[4], job->arch.uname_machine, UTS_LEN);
}

/* ---- layout ---- */

static uint64_t count_pages(const DumpJob *job, uint32_t bs)
{
    uint64_t pages = 0;

    for (guint i = 0; i < job->ranges->len; i++) {
        pages += g_array_index(job->ranges, DumpRange, i).size / bs;
    }
    return pages;
}

static void plan_layout(KdumpLayout *l, const DumpJob *job, size_t note_size)
{
    const DumpRange *last = &g_array_index(job->ranges, DumpRange, job->ranges->len - 1);
    uint32_t bs = job->arch.page_size;

    l->fields = job->arch.elf_machine == EM_X86_64 ? &kdump_fields64 : &kdump_fields32;
    size_t sub_size = l->fields->sub_size;
    l->block_size = bs;
    l->status = page_codec_flag(job->format);
    l->max_mapnr = (last->gpa + last->size) / bs;
    l->pages = count_pages(job, bs);
    l->sub_hdr_blocks = (uint32_t)((sub_size + note_size + bs - 1) / bs);
    l->dump_level = job->has_dump_level ? job->dump_level : KDUMP_DUMP_LEVEL;
    l->bitmap_len = ((l->max_mapnr + 7) / 8 + bs - 1) / bs * bs;
    l->off_note = bs + sub_size;
    l->note_size = note_size;
    l->off_bitmap1 = (1 + (uint64_t)l->sub_hdr_blocks) * bs;
    l->off_bitmap2 = l->off_bitmap1 + l->bitmap_len;
    l->off_desc = l->off_bitmap2 + l->bitmap_len;
    l->off_zero_page = l->off_desc + l->pages * PAGE_DESC_SIZE;
}

/* Blocks 0 .. sub_hdr_blocks: header, sub-header, notes. */
static bool write_headers(DumpJob *job, const KdumpLayout *l, const GByteArray *notes,
                          uint32_t extra_status, GError **errp)
{
    size_t len = (1 + (size_t)l->sub_hdr_blocks) * l->block_size;
    g_autofree uint8_t *buf = g_malloc0(len);

    fill_header(buf, l, job->ncpus, extra_status);
    fill_sub_header(buf + l->block_size, l);
    memcpy(buf + l->off_note, notes->data, notes->len);
    return dump_sink_pwrite(&job->sink, buf, len, 0, errp);
}

/* A bit per PFN that is RAM, in chunks of bounded size: both bitmaps, or the 1st
 * alone when a dump level decides the 2nd as the pages go (dump/kdump_bitmap.h). */
static bool write_bitmaps(DumpJob *job, const KdumpLayout *l, GError **errp)
{
    g_autofree uint8_t *chunk = g_malloc(KDUMP_BITMAP_CHUNK);

    for (uint64_t pos = 0; pos < l->bitmap_len; pos += KDUMP_BITMAP_CHUNK) {
        size_t n = (size_t)MIN(KDUMP_BITMAP_CHUNK, l->bitmap_len - pos);
        kdump_bitmap_fill_ram(job->ranges, l->block_size, chunk, pos * 8, (pos + n) * 8);
        if (!dump_sink_pwrite(&job->sink, chunk, n, l->off_bitmap1 + pos, errp) ||
            (!job->filter &&
             !dump_sink_pwrite(&job->sink, chunk, n, l->off_bitmap2 + pos, errp))) {
            return false;
        }
    }
    return true;
}

/* ---- the compression pipeline ---- */

typedef enum PageKind {
    PAGE_ZERO,                       /* all zero: the shared zero page */
    PAGE_DATA,                       /* sizes/flags describe its bytes in data */
    PAGE_REPEAT,                     /* a worker found an identical earlier page */
    PAGE_EXCLUDED,                   /* the dump level leaves it out */
} PageKind;

typedef struct Batch {
    uint64_t index;
    bool ready;
    guint npages;
    uint8_t kinds[BATCH_PAGES];
    uint32_t sizes[BATCH_PAGES];
    uint32_t flags[BATCH_PAGES];
    uint64_t hashes[BATCH_PAGES];    /* content hash of non-zero pages */
    uint64_t pfns[BATCH_PAGES];      /* with a page filter: each page's frame */
    uint8_t *data;
    size_t data_len;
} Batch;

/* A page the writer has written: where its bytes are. `page` (the global page
 * index + 1, 0 when empty) is written by the writer and read by workers. */
typedef struct DedupEntry {
    uint64_t page;
    uint64_t hash;
    uint64_t offset;
    uint32_t size;
    uint32_t flags;
} DedupEntry;
G_STATIC_ASSERT(sizeof(DedupEntry) * KDUMP_DEDUP_SLOTS == 2u << 20);

typedef struct Pipeline {
    DumpJob *job;
    uint32_t page_size;
    uint64_t nbatches;
    GMutex lock;
    GCond writer_cond;         /* the writer waits here for its batches */
    GCond worker_cond;         /* workers wait here for a free slot */
    guint workers_waiting;
    Batch *slots;
    guint nslots;
    uint64_t next_batch;       /* next batch a worker takes */
    uint64_t next_write;       /* next batch the writer writes */
    uint64_t writer_wants;     /* the writer sleeps until next_write..this are ready
                                  (UINT64_MAX: it is not waiting) */
    bool stop;
    GPtrArray *workers;
    GError *error;
    DedupEntry *dedup;         /* KDUMP_DEDUP_SLOTS entries, or NULL: every page written */
} Pipeline;

/* The range holding the page with global index `page` (ranges in order), and its host pointer. */
static const DumpRange *page_range(const DumpJob *job, uint64_t page, uint32_t bs,
                                   const uint8_t **ptr)
{
    for (guint i = 0; i < job->ranges->len; i++) {
        const DumpRange *r = &g_array_index(job->ranges, DumpRange, i);
        uint64_t n = r->size / bs;
        if (page < n) {
            *ptr = r->host + page * bs;
            return r;
        }
        page -= n;
    }
    return NULL;
}

static const uint8_t *page_ptr(const DumpJob *job, uint64_t page, uint32_t bs)
{
    const uint8_t *ptr = NULL;

    page_range(job, page, bs, &ptr);
    return ptr;
}

static uint64_t page_pfn(const DumpJob *job, uint64_t page, uint32_t bs)
{
    const uint8_t *ptr = NULL;
    const DumpRange *r = page_range(job, page, bs, &ptr);

    return (r->gpa + (uint64_t)(ptr - r->host)) / bs;
}

/* Which of the batch's pages the dump level leaves out (their frames in b->pfns). */
static void filter_batch(const Pipeline *p, PageFilterCursor *fc, Batch *b, uint64_t first,
                         bool *excluded)
{
    for (guint i = 0; i < b->npages; i++) {
        b->pfns[i] = page_pfn(p->job, first + i, p->page_size);
    }
    page_filter_decide(fc, b->pfns, b->npages, excluded);
}

static DedupEntry *dedup_slot(const Pipeline *p, uint64_t hash)
{
    return &p->dedup[kdump_dedup_slot(hash)];
}

/* Compress one page into out; raw when compression does not make it smaller. */
static void encode_page(PageCodec *codec, DumpFormat format, const uint8_t *page, uint32_t bs,
                        uint8_t *out, uint32_t *size, uint32_t *flags)
{
    size_t n = page_codec_compress(codec, page, bs, out);

    if (n) {
        *size = (uint32_t)n;
        *flags = page_codec_flag(format);
    } else {
        memcpy(out, page, bs);
        *size = bs;
        *flags = 0;
    }
}

/* Will the writer find an identical page before this one? A hint only: an
 * earlier page of this batch, or one the writer has already recorded. */
static bool seen_before(const Pipeline *p, const Batch *b, const guint16 *seen,
                        uint64_t first, guint i, const uint8_t *page)
{
    uint32_t bs = p->page_size;
    guint j = seen[b->hashes[i] >> 58];

    if (j && b->hashes[j - 1] == b->hashes[i] &&
        memcmp(page_ptr(p->job, first + j - 1, bs), page, bs) == 0) {
        return true;
    }
    const DedupEntry *e = dedup_slot(p, b->hashes[i]);
    uint64_t q = __atomic_load_n(&e->page, __ATOMIC_ACQUIRE);
    return q && memcmp(page_ptr(p->job, q - 1, bs), page, bs) == 0;
}

static void compress_batch(Pipeline *p, PageCodec *codec, ZeroMap *zm, PageFilterCursor *fc,
                           uint8_t *buf, Batch *b, uint64_t index)
{
    uint32_t bs = p->page_size;
    uint64_t first = index * BATCH_PAGES;
    uint64_t total = count_pages(p->job, bs);
    guint16 seen[BATCH_SEEN] = { 0 };      /* hash bucket -> batch index + 1 */
    bool excluded[BATCH_PAGES] = { false };

    b->npages = (guint)MIN(BATCH_PAGES, total - first);
    b->data_len = 0;
    if (fc) {
        filter_batch(p, fc, b, first, excluded);
    }
    for (guint i = 0; i < b->npages; i++) {
        if (excluded[i]) {
            b->kinds[i] = PAGE_EXCLUDED;
            continue;
        }
        const uint8_t *host;
        const DumpRange *r = page_range(p->job, first + i, bs, &host);
        const uint8_t *page = dump_page_get(p->job, zm, r, (uint64_t)(host - r->host), bs, buf);
        if (!page) {
            b->kinds[i] = PAGE_ZERO;
            continue;
        }
        if (p->dedup) {
            b->hashes[i] = dump_page_hash(page, bs);
            if (seen_before(p, b, seen, first, i, page)) {
                b->kinds[i] = PAGE_REPEAT;
                continue;
            }
            seen[b->hashes[i] >> 58] = (guint16)(i + 1);
        }
        b->kinds[i] = PAGE_DATA;
        encode_page(codec, p->job->format, page, bs, b->data + b->data_len, &b->sizes[i],
                    &b->flags[i]);
        b->data_len += b->sizes[i];
    }
}

/* Are batches first..last all compressed? (With the lock held.) */
static bool batches_ready(const Pipeline *p, uint64_t first, uint64_t last)
{
    for (uint64_t k = first; k <= last; k++) {
        const Batch *b = &p->slots[k % p->nslots];
        if (!b->ready || b->index != k) {
            return false;
        }
    }
    return true;
}

static gpointer worker_thread(gpointer opaque)
{
    Pipeline *p = opaque;
    GError *err = NULL;
    PageCodec *codec = page_codec_new(p->job->format, &err);
    ZeroMap *zm = g_new(ZeroMap, 1);
    uint8_t *buf = g_malloc(p->page_size);      /* a live dump's copy of a page */
    PageFilterCursor *fc = p->job->filter ? page_filter_cursor_new(p->job->filter) : NULL;

    zeromap_init(zm);
    g_mutex_lock(&p->lock);
    if (!codec) {
        if (!p->error) {
            p->error = err;
        } else {
            g_error_free(err);
        }
        p->stop = true;
        g_cond_broadcast(&p->writer_cond);
    }
    while (codec && !p->stop && p->next_batch < p->nbatches) {
        if (p->next_batch >= p->next_write + p->nslots) {
            p->workers_waiting++;
            g_cond_wait(&p->worker_cond, &p->lock);
            p->workers_waiting--;
            continue;
        }
        uint64_t index = p->next_batch++;
        Batch *b = &p->slots[index % p->nslots];
        g_mutex_unlock(&p->lock);
        compress_batch(p, codec, zm, fc, buf, b, index);
        g_mutex_lock(&p->lock);
        b->index = index;
        b->ready = true;
        if (p->writer_wants != UINT64_MAX && batches_ready(p, p->next_write, p->writer_wants)) {
            g_cond_signal(&p->writer_cond);
        }
    }
    g_mutex_unlock(&p->lock);
    zeromap_destroy(zm);
    g_free(zm);
    g_free(buf);
    page_filter_cursor_free(fc);
    page_codec_free(codec);
    return NULL;
}

static void pipeline_stop(Pipeline *p)
{
    if (!p->workers) {
        return;                 /* never started */
    }
    g_mutex_lock(&p->lock);
    p->stop = true;
    g_cond_broadcast(&p->writer_cond);
    g_cond_broadcast(&p->worker_cond);
    g_mutex_unlock(&p->lock);
    for (guint i = 0; i < p->workers->len; i++) {
        g_thread_join(g_ptr_array_index(p->workers, i));
    }
    g_ptr_array_set_size(p->workers, 0);
}

static bool pipeline_start(Pipeline *p, DumpJob *job, uint64_t pages, GError **errp)
{
    guint threads = job->threads ? job->threads : (guint)g_get_num_processors();

    threads = CLAMP(threads, 1, 64);
    p->job = job;
    p->page_size = job->arch.page_size;
    p->nbatches = (pages + BATCH_PAGES - 1) / BATCH_PAGES;
    p->writer_wants = UINT64_MAX;
    g_mutex_init(&p->lock);
    g_cond_init(&p->writer_cond);
    g_cond_init(&p->worker_cond);
    /* Every stored page is at most a page (raw when compression does not help), but a
     * codec may write up to its bound before that is known: room for the last one. */
    size_t slot_bytes = (size_t)(BATCH_PAGES - 1) * p->page_size +
                        page_codec_bound(job->format, p->page_size);
    /* Enough batches in flight that workers keep going while this thread sits in a
     * slow write (4 MiB into the page cache can take 15 ms here), within RING_BYTES
     * unless the threads need more than one batch each. */
    p->nslots = MIN(8 * threads, MAX(threads + 2, (guint)(RING_BYTES / slot_bytes)));
    p->slots = g_new0(Batch, p->nslots);
    for (guint i = 0; i < p->nslots; i++) {
        p->slots[i].data = g_malloc(slot_bytes);
    }
    if (job->dedup) {
        p->dedup = g_new0(DedupEntry, KDUMP_DEDUP_SLOTS);    /* 2 MiB */
    }
    p->workers = g_ptr_array_new();
    for (guint i = 0; i < threads; i++) {
        GThread *t = g_thread_try_new("dump-compress", worker_thread, p, errp);
        if (!t) {
            pipeline_stop(p);
            return false;
        }
        g_ptr_array_add(p->workers, t);
    }
    return true;
}

static void pipeline_free(Pipeline *p)
{
    for (guint i = 0; i < p->nslots; i++) {
        g_free(p->slots[i].data);
    }
    g_free(p->slots);
    g_free(p->dedup);
    if (p->workers) {
        g_ptr_array_free(p->workers, TRUE);
    }
    g_clear_error(&p->error);
    g_mutex_clear(&p->lock);
    g_cond_clear(&p->writer_cond);
    g_cond_clear(&p->worker_cond);
}

/*
 * Wait for batch `index`; NULL when the pipeline failed. When it is not ready, wait
 * for a few batches after it as well, so that this thread wakes once for several:
 * a wake-up is a futex call and a context switch, dear in this VM, and a mostly
 * zero guest is thousands of quick batches.
 */
static Batch *pipeline_next(Pipeline *p, uint64_t index, GError **errp)
{
    Batch *b = &p->slots[index % p->nslots];

    g_mutex_lock(&p->lock);
    if (!batches_ready(p, index, index)) {
        p->writer_wants = MIN(index + WRITER_LAG, MIN(p->nbatches, index + p->nslots) - 1);
        while (!batches_ready(p, index, p->writer_wants) && !p->error) {
            g_cond_wait(&p->writer_cond, &p->lock);
        }
        p->writer_wants = UINT64_MAX;
    }
    if (p->error) {
        g_propagate_error(errp, g_error_copy(p->error));
        b = NULL;
    }
    g_mutex_unlock(&p->lock);
    return b;
}

/* Give the batch's slot back. Workers that found the ring full are woken once
 * half of it is free again, not at every slot, for the same reason. */
static void pipeline_release(Pipeline *p, Batch *b)
{
    g_mutex_lock(&p->lock);
    b->ready = false;
    p->next_write++;
    if (p->workers_waiting && p->next_write + p->nslots - p->next_batch >= p->nslots / 2) {
        g_cond_broadcast(&p->worker_cond);
    }
    g_mutex_unlock(&p->lock);
}

/* ---- page descriptors and data ---- */

typedef struct DescWriter {
    uint8_t *buf;
    size_t count;
    uint64_t next_off;        /* file offset of the next buffered descriptor */
} DescWriter;

static bool desc_flush(DumpJob *job, DescWriter *d, GError **errp)
{
    size_t len = d->count * PAGE_DESC_SIZE;

    if (!len) {
        return true;
    }
    d->count = 0;
    if (!dump_sink_pwrite(&job->sink, d->buf, len, d->next_off, errp)) {
        return false;
    }
    d->next_off += len;
    return true;
}

static bool desc_add(DumpJob *job, DescWriter *d, uint64_t offset, uint32_t size,
                     uint32_t flags, GError **errp)
{
    uint8_t *e = d->buf + d->count * PAGE_DESC_SIZE;

    dump_put_le(e, 0, offset, 8);
    dump_put_le(e, 8, size, 4);
    dump_put_le(e, 12, flags, 4);
    dump_put_le(e, 16, 0, 8);
    return ++d->count < DESC_BUFFER_ENTRIES || desc_flush(job, d, errp);
}

/* What the writer keeps between batches. */
typedef struct PageWriter {
    DescWriter desc;
    uint64_t data_off;         /* file offset of the next page's bytes */
    PageCodec *codec;          /* for hinted repeats the writer does not confirm */
    uint8_t *scratch;
    KdumpBitmapWriter bitmap2; /* with a page filter: the 2nd bitmap, as pages go */
} PageWriter;

/* The descriptor and bytes of page `index` (batch page i, bytes at `src` when
 * a worker encoded it). Decided here, in page order, so output is deterministic. */
static bool write_page(Pipeline *p, PageWriter *w, const Batch *b, guint i, uint64_t index,
                       const uint8_t *src, const KdumpLayout *l, GError **errp)
{
    DumpJob *job = p->job;
    uint32_t bs = l->block_size, size = b->sizes[i], flags = b->flags[i];

    if (b->kinds[i] == PAGE_ZERO) {
        return desc_add(job, &w->desc, l->off_zero_page, bs, 0, errp);
    }
    if (b->kinds[i] == PAGE_EXCLUDED) {
        return kdump_bitmap_writer_clear(&w->bitmap2, b->pfns[i], errp);
    }
    DedupEntry *e = p->dedup ? dedup_slot(p, b->hashes[i]) : NULL;

    if (e && e->page && e->hash == b->hashes[i] &&
        memcmp(page_ptr(job, e->page - 1, bs), page_ptr(job, index, bs), bs) == 0) {
        return desc_add(job, &w->desc, e->offset, e->size, e->flags, errp);
    }
    if (b->kinds[i] == PAGE_REPEAT) {
        /* the earlier copy the worker saw has been replaced since: encode it here */
        if (!w->codec) {
            w->codec = page_codec_new(job->format, errp);
            w->scratch = g_malloc(page_codec_bound(job->format, bs));
            if (!w->codec) {
                return false;
            }
        }
        encode_page(w->codec, job->format, page_ptr(job, index, bs), bs, w->scratch, &size,
                    &flags);
        src = w->scratch;
    }
    if (!dump_sink_write(&job->sink, src, size, errp) ||
        !desc_add(job, &w->desc, w->data_off, size, flags, errp)) {
        return false;
    }
    if (e) {
        e->hash = b->hashes[i];
        e->offset = w->data_off;
        e->size = size;
        e->flags = flags;
        __atomic_store_n(&e->page, index + 1, __ATOMIC_RELEASE);
    }
    w->data_off += size;
    return true;
}

static bool write_pages(DumpJob *job, const KdumpLayout *l, GError **errp)
{
    Pipeline p = { 0 };
    PageWriter w = { .desc = { .buf = g_malloc(DESC_BUFFER_ENTRIES * PAGE_DESC_SIZE),
                               .next_off = l->off_desc },
                     .data_off = l->off_zero_page + l->block_size };
    g_autofree uint8_t *zero = g_malloc0(l->block_size);
    if (job->filter) {
        kdump_bitmap_writer_init(&w.bitmap2, job, l->off_bitmap2, l->bitmap_len);
    }
    bool ok = dump_sink_seek(&job->sink, l->off_zero_page, errp) &&
              dump_sink_write(&job->sink, zero, l->block_size, errp) &&
              pipeline_start(&p, job, l->pages, errp);

    for (uint64_t k = 0; ok && k < p.nbatches; k++) {
        Batch *b = pipeline_next(&p, k, errp);
        ok = b != NULL;
        size_t src = 0;
        for (guint i = 0; ok && i < b->npages; i++) {
            ok = write_page(&p, &w, b, i, k * BATCH_PAGES + i, b->data + src, l, errp);
            src += b->kinds[i] == PAGE_DATA ? b->sizes[i] : 0;
        }
        guint npages = b ? b->npages : 0;
        if (b) {
            pipeline_release(&p, b);
        }
        if (ok && job->live) {
            live_release(job->live,
                         (page_pfn(job, k * BATCH_PAGES + npages - 1, l->block_size) + 1) *
                         l->block_size);
        }
        ok = ok && dump_job_advance(job, (uint64_t)npages * l->block_size, errp);
    }
    ok = ok && desc_flush(job, &w.desc, errp) &&
         (!job->filter || kdump_bitmap_writer_finish(&w.bitmap2, errp));
    pipeline_stop(&p);
    kdump_bitmap_writer_free(&w.bitmap2);
    pipeline_free(&p);
    g_free(w.desc.buf);
    g_free(w.scratch);
    page_codec_free(w.codec);
    return ok;
}

bool kdump_dump_write(DumpJob *job, GError **errp)
{
    g_autoptr(GByteArray) notes = dump_build_notes(job);
    KdumpLayout l = { 0 };

    plan_layout(&l, job, notes->len);
    dump_sink_enable_write_behind(&job->sink);
    fill_uts_and_phys_base(job, &l, notes->data, notes->len);
    bool ok = write_headers(job, &l, notes, 0, errp);
    bool header_written = ok;
    ok = ok && write_bitmaps(job, &l, errp) && write_pages(job, &l, errp) &&
         dump_sink_finish(&job->sink, errp);
    if (!ok && header_written && job->sink.seekable) {
        /* as makedumpfile: mark a raw file that could not be completed (not when
         * the error came from close() itself: the file is closed by then) */
        dump_sink_discard(&job->sink);
        write_headers(job, &l, notes, KDUMP_STATUS_INCOMPLETE, NULL);
        dump_sink_flush(&job->sink, NULL);
    }
    return ok;
}
