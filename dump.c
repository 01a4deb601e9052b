/*
 * The dump subsystem driver: QEMU's argument rules, the output sink, stopping
 * the VM, the snapshot (RAM ranges, vCPU registers, guest note), dispatch to
 * the format writer, detached threads, progress and DUMP_COMPLETED.
 */
#include "dump.h"
#include "dump/dump-internal.h"
#include "dump/compress.h"
#include "dump/live.h"
#include "dump/zeromap.h"
#include "dump/guest_kernel.h"
#include "util.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <emmintrin.h>

struct DumpState {
    VM *vm;
    GMutex lock;           /* guards job and last */
    DumpJob *job;          /* the dump in progress, or NULL */
    DumpProgress last;     /* the result of the last dump (status none before any) */
    bool live;             /* the current or last dump is live */
    DumpLiveStats live_stats;  /* its tracker's figures, once the tracker is gone */
    GThread *thread;
    bool resume;
    DumpCompletedFn completed_fn;
    void *completed_opaque;
    guint threads;
    bool dedup;
    GError *error;         /* a detached dump's error, handed to the main context */
    GSource *done_source;  /* detached_done, pending in the main context */
    VmcoreinfoMemo vmcoreinfo_memo;      /* the last search for the guest's VMCOREINFO */
    DumpVmcoreinfoSource vmcoreinfo;     /* of the current or last dump */
    uint64_t vmcoreinfo_addr;
};

static const char *const format_names[DUMP_FORMAT__MAX] = {
    [DUMP_FORMAT_ELF] = "elf",
    [DUMP_FORMAT_KDUMP_ZLIB] = "kdump-zlib",
    [DUMP_FORMAT_KDUMP_LZO] = "kdump-lzo",
    [DUMP_FORMAT_KDUMP_SNAPPY] = "kdump-snappy",
    [DUMP_FORMAT_WIN_DMP] = "win-dmp",
    [DUMP_FORMAT_KDUMP_RAW_ZLIB] = "kdump-raw-zlib",
    [DUMP_FORMAT_KDUMP_RAW_LZO] = "kdump-raw-lzo",
    [DUMP_FORMAT_KDUMP_RAW_SNAPPY] = "kdump-raw-snappy",
    [DUMP_FORMAT_KDUMP_ZSTD] = "kdump-zstd",
    [DUMP_FORMAT_KDUMP_RAW_ZSTD] = "kdump-raw-zstd",
};

static const char *const status_names[] = {
    [DUMP_STATUS_NONE] = "none",
    [DUMP_STATUS_ACTIVE] = "active",
    [DUMP_STATUS_COMPLETED] = "completed",
    [DUMP_STATUS_FAILED] = "failed",
};

const char *dump_format_name(DumpFormat f)
{
    return format_names[f];
}

const char *dump_status_name(DumpStatus s)
{
    return status_names[s];
}

bool dump_format_available(DumpFormat f)
{
    return f == DUMP_FORMAT_ELF || page_codec_available(f);
}

static bool format_is_kdump(DumpFormat f)
{
    return f != DUMP_FORMAT_ELF && f != DUMP_FORMAT_WIN_DMP;
}

static bool format_is_raw_kdump(DumpFormat f)
{
    return f == DUMP_FORMAT_KDUMP_RAW_ZLIB || f == DUMP_FORMAT_KDUMP_RAW_LZO ||
           f == DUMP_FORMAT_KDUMP_RAW_SNAPPY || f == DUMP_FORMAT_KDUMP_RAW_ZSTD;
}

DumpState *dump_state_new(VM *vm)
{
    DumpState *ds = g_new0(DumpState, 1);

    ds->vm = vm;
    g_mutex_init(&ds->lock);
    /* MINIVM_DUMP_THREADS: compression threads (default: online CPUs) */
    const char *threads = g_getenv("MINIVM_DUMP_THREADS");
    uint64_t n;
    if (threads && parse_uint64(threads, &n) && n <= 64) {
        ds->threads = (guint)n;
    }
    /* MINIVM_DUMP_DEDUP=0: write every repeated page again (for comparisons) */
    ds->dedup = g_strcmp0(g_getenv("MINIVM_DUMP_DEDUP"), "0") != 0;
    return ds;
}

void dump_set_completion(DumpState *ds, DumpCompletedFn fn, void *opaque)
{
    ds->completed_fn = fn;
    ds->completed_opaque = opaque;
}

void dump_set_threads(DumpState *ds, guint threads)
{
    ds->threads = threads;
}

/* ---- helpers used by writers ---- */

void dump_note_append(GByteArray *out, const char *name, uint32_t type, const void *desc,
                      size_t descsz)
{
    uint32_t namesz = (uint32_t)strlen(name) + 1;
    uint32_t hdr[3] = { GUINT32_TO_LE(namesz), GUINT32_TO_LE((uint32_t)descsz),
                        GUINT32_TO_LE(type) };
    static const uint8_t pad[4];

    g_byte_array_append(out, (const guint8 *)hdr, sizeof(hdr));
    g_byte_array_append(out, (const guint8 *)name, namesz);
    g_byte_array_append(out, pad, ELF_NOTE_ALIGN(namesz) - namesz);
    g_byte_array_append(out, desc, (guint)descsz);
    g_byte_array_append(out, pad, ELF_NOTE_ALIGN(descsz) - descsz);
}

GByteArray *dump_build_notes(const DumpJob *job)
{
    GByteArray *notes = g_byte_array_new();

    arch_dump_cpu_notes(notes, &job->arch, job->cpus, job->ncpus);
    if (job->guest_note) {
        gsize len;
        const guint8 *data = g_bytes_get_data(job->guest_note, &len);
        g_byte_array_append(notes, data, (guint)len);
    }
    return notes;
}

/*
 * A 64-bit hash of a page, to find pages written before (the kdump writer confirms
 * a match with memcmp). XXH3's accumulation over 16 lanes of 64 bits: word i of
 * stripe s (128 bytes) adds lo32(x) * hi32(x), x = w ^ key[i] ^ s * HASH_MUL, to
 * lane i and w itself to lane i ^ 1; the stripe in the key makes the order of the
 * stripes count. The lanes are independent, so with SSE2 (every x86_64 CPU has it)
 * this goes about as fast as the page can be read: 0.22 us a page here, against
 * 0.45 for four chains of 64-bit multiplies.
 */
#define HASH_LANES 16
#define HASH_STRIPE (HASH_LANES * 8)
#define HASH_MUL 0x9e3779b97f4a7c15ULL

static const uint64_t hash_key[HASH_LANES] __attribute__((aligned(16))) = {
    0xbe4ba423396cfeb8ULL, 0x1cad21f72c81017cULL, 0xdb979083e96dd4deULL, 0x1f67b3b7a4a44072ULL,
    0x78e5c0cc4ee679cbULL, 0x2172ffcc7dd05a82ULL, 0x8e2443f7744608b8ULL, 0x4c263a81e69035e0ULL,
    0xcb00c391bb52283cULL, 0xa32e531b8b65d088ULL, 0x4ef90da297486471ULL, 0xd8acdea946ef1938ULL,
    0x3f349ce33f76faa8ULL, 0x1d4f0bc7c7bbdcf9ULL, 0x3159b4cd4be0518aULL, 0x647378d9c97e9fc8ULL,
};

uint64_t dump_page_hash(const uint8_t *page, size_t size)
{
    __m128i acc[HASH_LANES / 2];
    uint64_t lanes[HASH_LANES];
    size_t i = 0;

    for (int j = 0; j < HASH_LANES / 2; j++) {
        acc[j] = _mm_set_epi64x(2 * j + 2, 2 * j + 1);
    }
    for (; i + HASH_STRIPE <= size; i += HASH_STRIPE) {
        __m128i stripe = _mm_set1_epi64x((long long)(i / HASH_STRIPE * HASH_MUL));
        for (int j = 0; j < HASH_LANES / 2; j++) {
            __m128i w = _mm_loadu_si128((const __m128i *)(page + i + 16 * j));
            __m128i key = _mm_xor_si128(stripe, _mm_load_si128((const __m128i *)hash_key + j));
            __m128i x = _mm_xor_si128(w, key);
            __m128i prod = _mm_mul_epu32(x, _mm_srli_epi64(x, 32));
            acc[j] = _mm_add_epi64(acc[j], _mm_add_epi64(prod, _mm_shuffle_epi32(w, 0x4e)));
        }
    }
    memcpy(lanes, acc, sizeof(lanes));
    uint64_t h = size * HASH_MUL;
    for (; i < size; i++) {
        h = (h ^ page[i]) * HASH_MUL;
    }
    for (int j = 0; j < HASH_LANES; j++) {
        h = (h ^ lanes[j]) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    return h;
}

bool dump_job_advance(DumpJob *job, uint64_t bytes, GError **errp)
{
    __atomic_add_fetch(&job->completed, bytes, __ATOMIC_RELAXED);
    if (__atomic_load_n(&job->cancelled, __ATOMIC_RELAXED)) {
        error_setg(errp, "dump: cancelled");
        return false;
    }
    return true;
}

const uint8_t *dump_page_get(DumpJob *job, ZeroMap *zm, const DumpRange *r, uint64_t off,
                             size_t len, uint8_t *buf)
{
    const uint8_t *page = r->host + off;

    /* Known zero without reading it: never written, or mapping a zero page. In a live
     * dump that says what the page holds now; it held the same at the instant unless
     * the guest has written it since, and then its copy was saved first (checked after
     * pagemap was read). */
    if (r->anonymous && len == 4096 && zeromap_page_known_zero(zm, page) &&
        !(job->live && live_saved(job->live, r->gpa + off))) {
        return NULL;
    }
    if (job->live) {
        live_read(job->live, r->gpa + off, buf, len);
        page = buf;
    }
    return buffer_is_zero(page, len) ? NULL : page;
}

/* ---- request checks (QEMU's order and texts) ---- */

/* minivm's dump-level, after QEMU's checks */
static bool check_dump_level(const DumpRequest *req, GError **errp)
{
    if (req->has_dump_level && (req->dump_level < 0 || req->dump_level > DUMP_LEVEL_MAX)) {
        error_setg(errp, "Parameter 'dump-level' expects a value from 0 to %d "
                   "(makedumpfile's -d)", DUMP_LEVEL_MAX);
        return false;
    }
    if (req->has_dump_level && req->dump_level && !format_is_kdump(req->format)) {
        error_setg(errp, "dump-level is for the kdump formats: the ELF writer keeps "
                   "every page");
        return false;
    }
    return true;
}

static bool check_request(DumpState *ds, const DumpRequest *req, GError **errp)
{
    if (dump_in_progress(ds)) {
        error_setg(errp, "There is a dump in process, please wait.");
        return false;
    }
    if (req->format != DUMP_FORMAT_ELF && (req->paging || req->has_begin || req->has_length)) {
        error_setg(errp, "kdump-compressed format doesn't support paging or filter");
        return false;
    }
    if (req->has_begin && !req->has_length) {
        error_setg(errp, "Parameter 'length' is missing");
        return false;
    }
    if (!req->has_begin && req->has_length) {
        error_setg(errp, "Parameter 'begin' is missing");
        return false;
    }
    if (req->format == DUMP_FORMAT_WIN_DMP) {
        error_setg(errp, "win-dump: invalid vmcoreinfo note size");
        return false;
    }
    if (!dump_format_available(req->format)) {
        error_setg(errp, "%s is not available now", dump_format_name(req->format));
        return false;
    }
    if (req->has_length && req->length == 0) {
        error_setg(errp, "parameter 'length' expects a non-zero size");
        return false;
    }
    if (req->has_begin && req->begin < 0) {
        error_setg(errp, "Invalid parameter 'begin'");
        return false;
    }
    if (req->has_live_pool && !req->live) {
        error_setg(errp, "Parameter 'live-pool' needs 'live'");
        return false;
    }
    if (req->has_live_pool && req->live_pool < 4096) {
        error_setg(errp, "Parameter 'live-pool' expects at least one page (4096 bytes)");
        return false;
    }
    if (!check_dump_level(req, errp)) {
        return false;
    }
    if (req->live && req->has_dump_level && req->dump_level > 1) {
        /* the struct pages that decide may lie behind the dump, given back to the guest */
        error_setg(errp, "dump-level above 1 cannot be combined with live yet");
        return false;
    }
    return true;
}

static int open_output(const DumpRequest *req, DumpGetFdFn get_fd, void *opaque, GError **errp)
{
    const char *p = req->protocol;

    if (g_str_has_prefix(p, "fd:")) {
        return get_fd ? get_fd(opaque, p + 3, errp) : -1;
    }
    if (g_str_has_prefix(p, "file:")) {
        int fd = open(p + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            error_setg_errno(errp, errno, "Could not open '%s'", p + 5);
        }
        return fd;
    }
    error_setg(errp, "parameter 'protocol' must start with 'file:' or 'fd:'");
    return -1;
}

/* The RAM blocks clipped by begin/length, as QEMU's filter does. */
static GArray *collect_ranges(VM *vm, const DumpRequest *req, uint64_t *total)
{
    GArray *ranges = g_array_new(FALSE, FALSE, sizeof(DumpRange));
    uint64_t lo = req->has_begin ? (uint64_t)req->begin : 0;
    uint64_t hi = req->has_begin ? lo + (uint64_t)req->length : UINT64_MAX;

    if (hi < lo) {
        hi = UINT64_MAX;
    }
    *total = 0;
    for (guint i = 0; i < guest_memory_count(vm->mem); i++) {
        RamBlock *b = guest_memory_block(vm->mem, i);
        uint64_t start = MAX(b->gpa, lo), end = MIN(b->gpa + b->size, hi);
        if (start >= end) {
            continue;
        }
        DumpRange r = { start, end - start, b->host + (start - b->gpa), b->anonymous };
        g_array_append_val(ranges, r);
        *total += r.size;
    }
    return ranges;
}

static void dump_job_free(DumpJob *job)
{
    live_tracker_free(job->live);
    dump_sink_close(&job->sink);
    page_filter_free(job->filter);
    g_array_free(job->ranges, TRUE);
    g_free(job->cpus);
    if (job->guest_note) {
        g_bytes_unref(job->guest_note);
    }
    g_free(job);
}

static bool write_format(DumpJob *job, GError **errp)
{
    switch (job->format) {
    case DUMP_FORMAT_ELF:
        return elf_dump_write(job, errp);
    case DUMP_FORMAT_WIN_DMP:
        break;
    default:
        if (format_is_kdump(job->format)) {
            return kdump_dump_write(job, errp);
        }
        break;
    }
    error_setg(errp, "%s is not available now", dump_format_name(job->format));
    return false;
}

/* A live dump's guest goes free of write protection the moment the writer is done,
 * whatever the outcome; its figures stay for query-dump. */
static bool end_live(DumpState *ds, DumpJob *job, GError **errp)
{
    LiveTracker *t = job->live;

    if (!t) {
        return true;
    }
    bool ok = live_check(t, errp);
    g_mutex_lock(&ds->lock);
    ds->live_stats = live_stats(t);
    job->live = NULL;
    g_mutex_unlock(&ds->lock);
    live_tracker_free(t);
    return ok;
}

static bool run_writer(DumpState *ds, DumpJob *job, GError **errp)
{
    bool ok = write_format(job, errp);

    return end_live(ds, job, ok ? errp : NULL) && ok;
}

/* Run the VM again if the dump stopped it. */
static void resume_vm(DumpState *ds)
{
    if (ds->resume) {
        ds->resume = false;
        vm_cont(ds->vm, NULL);
    }
}

/* The figures of the dump in progress or of the last one (with ds->lock held). */
static DumpProgress progress(DumpState *ds)
{
    DumpJob *job = ds->job;

    if (!job) {
        return ds->last;
    }
    DumpProgress p = { .status = DUMP_STATUS_ACTIVE, .total = job->total,
                       .completed = __atomic_load_n(&job->completed, __ATOMIC_RELAXED),
                       .live = ds->live, .live_stats = ds->live_stats,
                       .vmcoreinfo = ds->vmcoreinfo, .vmcoreinfo_addr = ds->vmcoreinfo_addr };
    if (job->live) {
        p.live_stats = live_stats(job->live);
    }
    return p;
}

/* Main context: record the result, DUMP_COMPLETED, resume the VM. */
static void finish(DumpState *ds, GError *err)
{
    DumpJob *job = ds->job;

    g_mutex_lock(&ds->lock);
    ds->last = progress(ds);
    ds->last.status = err ? DUMP_STATUS_FAILED : DUMP_STATUS_COMPLETED;
    ds->job = NULL;
    g_mutex_unlock(&ds->lock);
    dump_job_free(job);
    if (ds->completed_fn) {
        ds->completed_fn(ds->completed_opaque, &ds->last, err);
    }
    resume_vm(ds);
}

static gboolean detached_done(gpointer opaque)
{
    DumpState *ds = opaque;
    GError *err = ds->error;

    g_thread_join(ds->thread);
    ds->thread = NULL;
    ds->error = NULL;
    g_clear_pointer(&ds->done_source, g_source_unref);
    finish(ds, err);
    g_clear_error(&err);
    return G_SOURCE_REMOVE;
}

static gpointer dump_thread(gpointer opaque)
{
    DumpState *ds = opaque;

    run_writer(ds, ds->job, &ds->error);
    g_mutex_lock(&ds->lock);
    ds->done_source = main_context_call(ds->vm->main_context, detached_done, ds);
    if (ds->done_source) {
        g_source_ref(ds->done_source);
    }
    g_mutex_unlock(&ds->lock);
    return NULL;
}

/* A live dump reads guest memory (page tables, kernel data) as it was at its instant. */
static bool live_reader_read(void *opaque, uint64_t gpa, void *buf, uint64_t len)
{
    return live_read(opaque, gpa, buf, len);
}

/* What the dump is of, before the VM stops. */
static DumpJob *job_new(DumpState *ds, const DumpRequest *req, GArray *ranges, uint64_t total)
{
    DumpJob *job = g_new0(DumpJob, 1);

    job->vm = ds->vm;
    job->reader = (GuestReader){ .mem = ds->vm->mem };
    job->format = req->format;
    job->filter_begin = req->has_begin ? (uint64_t)req->begin : 0;
    job->filter_end = req->has_begin ? (uint64_t)req->begin + (uint64_t)req->length : UINT64_MAX;
    if (job->filter_end < job->filter_begin) {
        job->filter_end = UINT64_MAX;            /* length -1: to the end, as QEMU */
    }
    job->ranges = ranges;
    job->total = total;
    job->threads = ds->threads;
    job->dedup = ds->dedup && !req->live;       /* an earlier page may change behind a live dump */
    job->sink.fd = -1;
    job->sink.direct_fd = -1;
    job->sink.cancel_fd = -1;
    return job;
}

/* The VM's state at the dump's instant: vCPU registers and the guest note. */
static void snapshot(DumpJob *job, const DumpRequest *req)
{
    VM *vm = job->vm;

    job->ncpus = vm->ncpus;
    job->cpus = g_new(X86CPUState, vm->ncpus);
    for (guint i = 0; i < vm->ncpus; i++) {
        job->cpus[i] = vm->cpus[i]->state;
    }
    arch_dump_info(vm->ncpus ? &job->cpus[0] : NULL, guest_memory_end(vm->mem), &job->arch);
    for (guint i = 0; req->paging && i < vm->ncpus; i++) {
        if (job->cpus[i].cr[0] & CR0_PG) {
            job->paging_cpu = &job->cpus[i];   /* none paging: physical mappings, as QEMU */
            break;
        }
    }
}

static void fail_before_start(DumpState *ds, int fd)
{
    if (fd >= 0) {
        close(fd);
    }
    g_mutex_lock(&ds->lock);
    ds->last = (DumpProgress){ .status = DUMP_STATUS_FAILED };
    g_mutex_unlock(&ds->lock);
}

/* Output, ranges and (live) write tracking, all while the guest still runs: what
 * fails here fails before anything stops. */
static DumpJob *prepare(DumpState *ds, const DumpRequest *req, int fd, GError **errp)
{
    uint64_t total;

    if (format_is_raw_kdump(req->format) && !dump_sink_fd_seekable(fd)) {
        error_setg(errp, "kdump-raw formats require a seekable file");
        return NULL;
    }
    GArray *ranges = collect_ranges(ds->vm, req, &total);
    if (!ranges->len) {
        g_array_free(ranges, TRUE);
        error_setg(errp, "dump: no guest memory to dump");
        return NULL;
    }
    DumpJob *job = job_new(ds, req, ranges, total);
    if (!dump_sink_open(&job->sink, fd, format_is_kdump(req->format) &&
                        !format_is_raw_kdump(req->format), errp) ||
        (req->live && !(job->live = live_tracker_new(ds->vm->mem, ranges,
                                                     req->has_live_pool ? (uint64_t)req->live_pool
                                                                        : LIVE_POOL_DEFAULT,
                                                     errp)))) {
        job->sink.fd = -1;       /* the caller closes fd */
        dump_job_free(job);
        return NULL;
    }
    if (job->live) {
        job->reader = (GuestReader){ .mem = ds->vm->mem, .read = live_reader_read,
                                     .opaque = job->live };
    }
    return job;
}

/* Stop the VM (if it runs) for the instant of the dump; a live dump write-protects
 * guest RAM and lets it run again at once. */
static bool take_instant(DumpState *ds, DumpJob *job, const DumpRequest *req, GError **errp)
{
    if (vm_is_running(ds->vm)) {
        vm_stop(ds->vm, RUN_STATE_SAVE_VM, NULL);
        ds->resume = true;
    }
    snapshot(job, req);
    if (job->live) {
        if (!live_tracker_arm(job->live, errp)) {
            return false;
        }
        resume_vm(ds);
    }
    return true;
}

bool dump_guest_memory(DumpState *ds, const DumpRequest *req, DumpGetFdFn get_fd,
                       void *get_fd_opaque, GError **errp)
{
    if (!check_request(ds, req, errp)) {
        return false;
    }
    int fd = open_output(req, get_fd, get_fd_opaque, errp);
    if (fd < 0) {
        return false;
    }
    GuestKernel kernel;
    DumpJob *job = NULL;
    if (!guest_kernel_find(ds->vm, req, &ds->vmcoreinfo_memo, &kernel, errp) ||
        !(job = prepare(ds, req, fd, errp))) {
        guest_kernel_clear(&kernel);
        fail_before_start(ds, fd);
        return false;
    }
    /* the note and the struct pages are read at the dump's instant */
    bool ok = take_instant(ds, job, req, errp) && guest_kernel_attach(&kernel, req, job, errp);
    guest_kernel_clear(&kernel);
    if (!ok) {
        /* as QEMU's dump_init failing: status failed, the VM resumed, no DUMP_COMPLETED */
        dump_job_free(job);
        fail_before_start(ds, -1);
        resume_vm(ds);
        return false;
    }
    g_mutex_lock(&ds->lock);
    ds->job = job;
    ds->live = req->live;
    ds->live_stats = (DumpLiveStats){ 0 };
    ds->vmcoreinfo = kernel.source;
    ds->vmcoreinfo_addr = kernel.gpa;
    g_mutex_unlock(&ds->lock);
    if (req->detach) {
        GError *err = NULL;
        ds->thread = g_thread_try_new("dump", dump_thread, ds, &err);
        if (ds->thread) {
            return true;
        }
        end_live(ds, job, NULL);
        finish(ds, err);
        g_propagate_error(errp, err);
        return false;
    }
    GError *err = NULL;
    run_writer(ds, job, &err);
    finish(ds, err);
    if (err) {
        g_propagate_error(errp, err);
        return false;
    }
    return true;
}

DumpProgress dump_query(DumpState *ds)
{
    g_mutex_lock(&ds->lock);
    DumpProgress p = progress(ds);
    g_mutex_unlock(&ds->lock);
    return p;
}

bool dump_in_progress(DumpState *ds)
{
    g_mutex_lock(&ds->lock);
    bool active = ds->job != NULL;
    g_mutex_unlock(&ds->lock);
    return active;
}

bool dump_cancel(DumpState *ds, GError **errp)
{
    g_mutex_lock(&ds->lock);
    DumpJob *job = ds->job;
    if (job) {
        __atomic_store_n(&job->cancelled, 1, __ATOMIC_RELAXED);
        dump_sink_cancel(&job->sink);
    }
    g_mutex_unlock(&ds->lock);
    if (!job) {
        error_setg(errp, "No dump in progress");
        return false;
    }
    return true;
}

bool dump_live_available(DumpState *ds, GError **errp)
{
    g_mutex_lock(&ds->lock);
    bool live_now = ds->job && ds->job->live;
    g_mutex_unlock(&ds->lock);
    /* guest RAM registered by the dump in progress cannot be registered again to probe */
    return live_now || live_available(ds->vm->mem, errp);
}

void dump_state_free(DumpState *ds)
{
    if (!ds) {
        return;
    }
    if (ds->thread) {
        /* quit during a detached dump: stop the writer, close the file */
        __atomic_store_n(&ds->job->cancelled, 1, __ATOMIC_RELAXED);
        dump_sink_cancel(&ds->job->sink);
        g_thread_join(ds->thread);
        if (ds->done_source) {
            g_source_destroy(ds->done_source);
            g_source_unref(ds->done_source);
        }
        dump_job_free(ds->job);
        g_clear_error(&ds->error);
    }
    g_mutex_clear(&ds->lock);
    g_free(ds);
}
