/*
 * The ELF core writer, in QEMU's classic layout (docs/formats.md):
 *   Ehdr | PT_NOTE | PT_LOAD... | (one Shdr when PN_XNUM) | notes | memory
 * One writer for ELF32 and ELF64: fields are placed by class-dependent offsets.
 * PT_LOADs describe either the RAM ranges (p_vaddr = p_paddr) or, with paging,
 * the guest's virtual mappings; those come from two walks of the page tables
 * (count, then emit), streamed, so memory does not grow with the mappings.
 * Memory is streamed from guest RAM in large writes; zero pages become holes
 * on sparse-capable sinks, and pages never touched are never read.
 */
#include "dump-internal.h"
#include "live.h"
#include "zeromap.h"
#include "paging.h"
#include "util.h"

#include <elf.h>
#include <string.h>

#define ELF_STREAM_CHUNK (8u << 20)
#define ELF_STREAM_PIECES 256          /* iovecs in one write (IOV_MAX is 1024) */
#define ELF_HOLE_MIN (256u << 10)

typedef struct ElfLayout {
    bool is64;
    uint32_t ehsize, phentsize, shentsize;
    uint64_t phnum;            /* real count, PT_NOTE included */
    bool xnum;
    uint64_t phoff, shoff, note_offset, memory_offset;
} ElfLayout;

typedef struct ElfPhdr {
    uint32_t type;
    uint64_t offset, vaddr, paddr, filesz, memsz;
} ElfPhdr;

static bool write_ehdr(DumpJob *job, const ElfLayout *l, GError **errp)
{
    uint8_t b[sizeof(Elf64_Ehdr)] = { 0 };
    size_t addr = l->is64 ? 8 : 4;
    size_t rest = l->is64 ? 52 : 40;      /* e_ehsize onwards */

    memcpy(b, ELFMAG, SELFMAG);
    b[EI_CLASS] = l->is64 ? ELFCLASS64 : ELFCLASS32;
    b[EI_DATA] = (uint8_t)job->arch.elf_data;
    b[EI_VERSION] = EV_CURRENT;
    dump_put_le(b, 16, ET_CORE, 2);
    dump_put_le(b, 18, (uint64_t)job->arch.elf_machine, 2);
    dump_put_le(b, 20, EV_CURRENT, 4);
    /* e_entry stays 0 */
    dump_put_le(b, 24 + addr, l->phoff, addr);
    dump_put_le(b, 24 + 2 * addr, l->shoff, addr);
    dump_put_le(b, rest, l->ehsize, 2);
    dump_put_le(b, rest + 2, l->phentsize, 2);
    dump_put_le(b, rest + 4, l->xnum ? PN_XNUM : l->phnum, 2);
    dump_put_le(b, rest + 6, l->xnum ? l->shentsize : 0, 2);
    dump_put_le(b, rest + 8, l->xnum ? 1 : 0, 2);
    /* e_shstrndx stays 0 */
    return dump_sink_write(&job->sink, b, l->ehsize, errp);
}

static bool write_phdr(DumpJob *job, const ElfLayout *l, const ElfPhdr *p, GError **errp)
{
    uint8_t b[sizeof(Elf64_Phdr)] = { 0 };

    dump_put_le(b, 0, p->type, 4);
    if (l->is64) {
        /* p_flags @4 and p_align @48 stay 0 */
        dump_put_le(b, 8, p->offset, 8);
        dump_put_le(b, 16, p->vaddr, 8);
        dump_put_le(b, 24, p->paddr, 8);
        dump_put_le(b, 32, p->filesz, 8);
        dump_put_le(b, 40, p->memsz, 8);
    } else {
        dump_put_le(b, 4, p->offset, 4);
        dump_put_le(b, 8, p->vaddr, 4);
        dump_put_le(b, 12, p->paddr, 4);
        dump_put_le(b, 16, p->filesz, 4);
        dump_put_le(b, 20, p->memsz, 4);
    }
    return dump_sink_write(&job->sink, b, l->phentsize, errp);
}

/* With PN_XNUM: one section header, all zero but sh_info = the real phnum. */
static bool write_xnum_shdr(DumpJob *job, const ElfLayout *l, GError **errp)
{
    uint8_t b[sizeof(Elf64_Shdr)] = { 0 };

    dump_put_le(b, l->is64 ? 44 : 28, MIN(l->phnum, UINT32_MAX), 4);
    return dump_sink_write(&job->sink, b, l->shentsize, errp);
}

/* ---- PT_LOAD sources ---- */

typedef struct LoadEmitter {
    DumpJob *job;
    const ElfLayout *layout;
    uint64_t count;
    bool counting;
} LoadEmitter;

/* Where guest-physical `pa` lies in the memory section (the ranges one after the
 * other); the caller passes an address that is dumped. */
static uint64_t ram_offset_of(const DumpJob *job, uint64_t pa)
{
    uint64_t off = 0;
    guint i = 0;

    for (; i + 1 < job->ranges->len; i++) {
        const DumpRange *r = &g_array_index(job->ranges, DumpRange, i);
        if (pa - r->gpa < r->size) {
            break;
        }
        off += r->size;
    }
    return off + (pa - g_array_index(job->ranges, DumpRange, i).gpa);
}

/* A PT_LOAD of size bytes at ram_off in the memory section. */
static bool emit_load(LoadEmitter *e, uint64_t va, uint64_t pa, uint64_t ram_off,
                      uint64_t size, GError **errp)
{
    e->count++;
    if (e->counting) {
        return true;
    }
    ElfPhdr ph = { .type = PT_LOAD, .offset = e->layout->memory_offset + ram_off,
                   .vaddr = va, .paddr = pa, .filesz = size, .memsz = size };
    return write_phdr(e->job, e->layout, &ph, errp);
}

/* A mapping of RAM clipped to the begin/length filter (guest-physical), as QEMU
 * does; mappings of anything else (MMIO, nothing) are left out, as QEMU does. A
 * mapping of RAM lies in one RAM block, so what is left of it lies in one range. */
static bool mapping_cb(void *opaque, const GuestMapping *m, GError **errp)
{
    LoadEmitter *e = opaque;
    uint64_t lo = e->job->filter_begin, hi = e->job->filter_end;
    uint64_t start = MAX(m->paddr, lo), end = MIN(m->paddr + m->size, hi);

    if (!m->ram || start >= end) {
        return true;
    }
    return emit_load(e, m->vaddr + (start - m->paddr), start, ram_offset_of(e->job, start),
                     end - start, errp);
}

static bool for_each_load(LoadEmitter *e, GError **errp)
{
    DumpJob *job = e->job;

    if (job->paging_cpu) {
        return x86_walk_mappings(job->paging_cpu, &job->reader, mapping_cb, e, errp);
    }
    uint64_t ram_off = 0;
    for (guint i = 0; i < job->ranges->len; i++) {
        const DumpRange *r = &g_array_index(job->ranges, DumpRange, i);
        if (!emit_load(e, r->gpa, r->gpa, ram_off, r->size, errp)) {
            return false;
        }
        ram_off += r->size;
    }
    return true;
}

static bool plan_layout(ElfLayout *l, DumpJob *job, size_t note_size, GError **errp)
{
    LoadEmitter counter = { .job = job, .layout = l, .counting = true };

    if (!for_each_load(&counter, errp)) {
        return false;
    }
    l->is64 = job->arch.elf_class == ELFCLASS64;
    l->ehsize = l->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    l->phentsize = l->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    l->shentsize = l->is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
    l->phnum = 1 + counter.count;
    l->xnum = l->phnum >= PN_XNUM;
    l->phoff = l->ehsize;
    l->shoff = l->xnum ? l->phoff + l->phnum * l->phentsize : 0;
    l->note_offset = l->phoff + l->phnum * l->phentsize + (l->xnum ? l->shentsize : 0);
    /* page aligned, so that memory can be written around the page cache; crash
     * still classifies the file as KDUMP_ELF64 because p_align is 0 */
    l->memory_offset = (l->note_offset + note_size + 4095) & ~4095ULL;
    return true;
}

static bool write_headers(DumpJob *job, const ElfLayout *l, size_t note_size, GError **errp)
{
    LoadEmitter emitter = { .job = job, .layout = l };
    ElfPhdr note = { .type = PT_NOTE, .offset = l->note_offset, .filesz = note_size,
                     .memsz = note_size };

    if (!write_ehdr(job, l, errp) || !write_phdr(job, l, &note, errp) ||
        !for_each_load(&emitter, errp)) {
        return false;
    }
    if (emitter.count + 1 != l->phnum) {
        error_setg(errp, "dump: the guest page tables changed during the dump");
        return false;
    }
    return !l->xnum || write_xnum_shdr(job, l, errp);
}

/*
 * Guest memory goes out in writes of up to ELF_STREAM_CHUNK gathered from pieces:
 * runs of guest RAM, and zero runs from the sink's block of zeros. A page that was
 * never touched is not read: on some kernels reading it allocates it, and a dump must
 * not grow the guest by its untouched memory. A live dump reads each page of the
 * instant straight into `bounce`, one after the other, and writes from there; each
 * write lets the guest have the pages behind it back.
 */
typedef struct ElfStream {
    DumpJob *job;
    struct iovec iov[ELF_STREAM_PIECES];
    int n;
    size_t len;
    uint8_t *bounce;          /* live: ELF_STREAM_CHUNK bytes, page aligned */
    size_t bounce_used;       /* live: bytes of it that pieces not yet written point at */
    uint64_t consumed;        /* live: guest-physical address of the next page to read */
} ElfStream;

static bool stream_flush(ElfStream *s, GError **errp)
{
    size_t len = s->len;
    bool ok = !s->n || dump_sink_writev(&s->job->sink, s->iov, s->n, errp);

    s->n = 0;
    s->len = 0;
    s->bounce_used = 0;
    if (s->job->live) {
        live_release(s->job->live, s->consumed);
    }
    return ok && dump_job_advance(s->job, len, errp);
}

/* Append len bytes of guest RAM at p, or len zero bytes when p is NULL. */
static bool stream_add(ElfStream *s, const uint8_t *p, uint64_t len, GError **errp)
{
    while (len) {
        if ((s->n == ELF_STREAM_PIECES || s->len == ELF_STREAM_CHUNK) &&
            !stream_flush(s, errp)) {
            return false;
        }
        size_t n = (size_t)MIN(len, ELF_STREAM_CHUNK - s->len);
        struct iovec *last = s->n ? &s->iov[s->n - 1] : NULL;
        if (!p) {
            n = MIN(n, DUMP_ZERO_BLOCK);
            s->iov[s->n++] = (struct iovec){ (void *)dump_zero_block, n };
        } else if (last && (const uint8_t *)last->iov_base + last->iov_len == p) {
            last->iov_len += n;
        } else {
            s->iov[s->n++] = (struct iovec){ (void *)p, n };
        }
        s->len += n;
        len -= n;
        p = p ? p + n : NULL;
    }
    return true;
}

/* Live: where the next page of the instant is read to, after what the pending pieces
 * point at; a full buffer is written out first. */
static bool stream_slot(ElfStream *s, size_t len, uint8_t **slot, GError **errp)
{
    if (s->bounce_used + len > ELF_STREAM_CHUNK && !stream_flush(s, errp)) {
        return false;
    }
    *slot = s->bounce + s->bounce_used;
    return true;
}

/* A zero run: a hole when it is long enough and the sink can leave one, else zeros. */
static bool stream_zeros(ElfStream *s, uint64_t len, GError **errp)
{
    if (!s->job->sink.sparse || len < ELF_HOLE_MIN) {
        return stream_add(s, NULL, len, errp);
    }
    return stream_flush(s, errp) && dump_sink_skip_zeros(&s->job->sink, len, errp) &&
           dump_job_advance(s->job, len, errp);
}

/*
 * One range. On sparse sinks zero runs of at least ELF_HOLE_MIN become holes; shorter
 * ones, and every zero run on a stream, go out from the block of zeros with the data
 * around them, so that writes stay large and aligned.
 */
static bool write_range(ElfStream *s, const DumpRange *r, ZeroMap *zm, GError **errp)
{
    uint64_t zero = UINT64_MAX;           /* start of the zero run being passed over */

    for (uint64_t pos = 0; pos < r->size; pos += 4096) {
        size_t step = (size_t)MIN(4096, r->size - pos);
        uint8_t *slot = NULL;
        if (s->bounce && !stream_slot(s, step, &slot, errp)) {
            return false;
        }
        const uint8_t *page = dump_page_get(s->job, zm, r, pos, step, slot);
        s->consumed = r->gpa + pos + step;
        if (!page) {
            zero = MIN(zero, pos);
            continue;
        }
        /* writing the zero run out may flush, but the page stays where it was read */
        if ((zero != UINT64_MAX && !stream_zeros(s, pos - zero, errp)) ||
            !stream_add(s, page, step, errp)) {
            return false;
        }
        s->bounce_used = slot ? (size_t)(slot - s->bounce) + step : 0;
        zero = UINT64_MAX;
    }
    return zero == UINT64_MAX || stream_zeros(s, r->size - zero, errp);
}

bool elf_dump_write(DumpJob *job, GError **errp)
{
    g_autoptr(GByteArray) notes = dump_build_notes(job);
    ElfLayout layout;

    if (!plan_layout(&layout, job, notes->len, errp) ||
        !write_headers(job, &layout, notes->len, errp) ||
        !dump_sink_write(&job->sink, notes->data, notes->len, errp) ||
        !dump_sink_skip_zeros(&job->sink, layout.memory_offset - job->sink.pos, errp)) {
        return false;
    }
    ElfStream stream = { .job = job };
    if (job->live) {
        stream.bounce = g_aligned_alloc(ELF_STREAM_CHUNK, 1, 4096);
    }
    dump_sink_enable_direct(&job->sink);
    ZeroMap *zm = g_new(ZeroMap, 1);
    zeromap_init(zm);
    bool ok = true;
    for (guint i = 0; ok && i < job->ranges->len; i++) {
        ok = write_range(&stream, &g_array_index(job->ranges, DumpRange, i), zm, errp);
    }
    ok = ok && stream_flush(&stream, errp);
    zeromap_destroy(zm);
    g_free(zm);
    g_aligned_free(stream.bounce);
    return ok && dump_sink_finish(&job->sink, errp);
}
