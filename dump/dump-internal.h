/* Internals shared by the dump driver (dump.c), the sinks and the format writers. */
#ifndef MINIVM_DUMP_INTERNAL_H
#define MINIVM_DUMP_INTERNAL_H

#include "dump.h"
#include "page_filter.h"

#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

/* One guest-physical range to dump, clipped by begin/length. */
typedef struct DumpRange {
    uint64_t gpa;
    uint64_t size;
    const uint8_t *host;
    bool anonymous;         /* see dump/zeromap.h */
} DumpRange;

/* What the architecture decides about the file. */
typedef struct ArchDumpInfo {
    int elf_class;          /* ELFCLASS32 or ELFCLASS64 */
    int elf_machine;        /* EM_X86_64 or EM_386 */
    int elf_data;           /* ELFDATA2LSB */
    uint32_t page_size;
    const char *uname_machine;
} ArchDumpInfo;

/* Where bytes go: a file or fd, sequential or positioned, plain or flattened. */
typedef struct DumpSink {
    int fd;
    int direct_fd;          /* the same file opened O_DIRECT, or -1 */
    int cancel_fd;          /* eventfd: dump_sink_cancel() wakes blocked stream writes */
    bool seekable;          /* lseek/pwrite work */
    bool sparse;            /* may leave holes (regular file with nothing after us) */
    bool flattened;         /* makedumpfile flattened records */
    bool flat_started;      /* the flattened header is written */
    bool regular;           /* a regular file */
    bool write_behind;      /* see dump_sink_enable_write_behind() */
    off_t base;             /* file offset where the dump starts */
    off_t stream_off;       /* file offset of a stream's next byte (regular files) */
    off_t wb_done;          /* write-behind: the run written so far is */
    off_t wb_sched;         /*   [wb_done, wb_sched): writeback started, to be dropped */
    off_t wb_end;           /*   [wb_sched, wb_end): written, in the page cache */
    uint64_t pos;           /* next sequential offset, relative to base */
    uint64_t end;           /* highest offset written or skipped */
    uint8_t *buf;           /* coalescing buffer for small writes */
    size_t buf_len;
    uint64_t buf_pos;       /* logical offset of buf[0] */
} DumpSink;

typedef struct LiveTracker LiveTracker;
struct ZeroMap;

/* A dump in progress: a snapshot of what is dumped, plus progress. */
typedef struct DumpJob {
    VM *vm;
    GuestReader reader;      /* guest memory as the dump sees it (page tables, kernel data) */
    DumpFormat format;
    const X86CPUState *paging_cpu;   /* paging=true: the vCPU whose tables are walked */
    uint64_t filter_begin;           /* begin/length as a guest-physical range */
    uint64_t filter_end;
    GArray *ranges;          /* DumpRange, ascending gpa */
    guint ncpus;
    X86CPUState *cpus;
    GBytes *guest_note;      /* VMCOREINFO ELF note, or NULL */
    ArchDumpInfo arch;
    DumpSink sink;
    uint64_t total;          /* bytes of guest memory to process */
    uint64_t completed;      /* atomic */
    int cancelled;           /* atomic */
    guint threads;
    bool dedup;              /* kdump: repeated pages point at their first copy */
    LiveTracker *live;       /* a live dump's write tracker (dump/live.h), or NULL */
    bool has_dump_level;     /* kdump: the sub-header's dump_level (else QEMU's 1) */
    unsigned dump_level;
    PageFilter *filter;      /* kdump: the pages the dump level leaves out, or NULL */
} DumpJob;

/* Store the low `size` bytes of v little-endian at b + off (the dump's byte order:
 * x86 guests only). */
static inline void dump_put_le(uint8_t *b, size_t off, uint64_t v, unsigned size)
{
    uint64_t le = GUINT64_TO_LE(v);
    memcpy(b + off, &le, size);
}

/* Notes */
#define ELF_NOTE_ALIGN(x) (((x) + 3) & ~(size_t)3)
void dump_note_append(GByteArray *out, const char *name, uint32_t type, const void *desc,
                      size_t descsz);
/* The whole note stream, in QEMU's order: PRSTATUS per vCPU, QEMU per vCPU, guest note. */
GByteArray *dump_build_notes(const DumpJob *job);

/* Architecture (target/x86_64/arch_dump.c) */
void arch_dump_info(const X86CPUState *cpu0, uint64_t ram_end, ArchDumpInfo *info);
void arch_dump_cpu_notes(GByteArray *out, const ArchDumpInfo *info, const X86CPUState *cpus,
                         guint ncpus);

/* Sinks (dump/sink.c) */
/* Zeros to write from, aligned for O_DIRECT. */
#define DUMP_ZERO_BLOCK (64u << 10)
extern const uint8_t dump_zero_block[DUMP_ZERO_BLOCK];
/* Can a dump write fd at offsets of its choosing? Not a pipe or socket, and not a file
 * opened O_APPEND, where pwrite appends whatever the offset. */
bool dump_sink_fd_seekable(int fd);
bool dump_sink_open(DumpSink *sink, int fd, bool flattened, GError **errp);
bool dump_sink_write(DumpSink *sink, const void *data, size_t len, GError **errp);
bool dump_sink_pwrite(DumpSink *sink, const void *data, size_t len, uint64_t off,
                      GError **errp);
/* Write iov[0..n) (n <= IOV_MAX; the array is consumed) at the current position, straight
 * from the caller's memory. */
bool dump_sink_writev(DumpSink *sink, struct iovec *iov, int n, GError **errp);
/* Continue sequential writes at `off` (seekable or flattened sinks). */
bool dump_sink_seek(DumpSink *sink, uint64_t off, GError **errp);
/* Drop buffered, unwritten bytes (after a failure). */
void dump_sink_discard(DumpSink *sink);
/* Advance over len zero bytes: a hole where possible, else written zeros. */
bool dump_sink_skip_zeros(DumpSink *sink, uint64_t len, GError **errp);
bool dump_sink_flush(DumpSink *sink, GError **errp);
/* Send block-aligned writes of block-aligned buffers around the page cache
 * (regular files that allow O_DIRECT); everything else stays buffered. */
void dump_sink_enable_direct(DumpSink *sink);
/* Keep at most two windows of the output's sequential run in the page cache (a
 * regular file; otherwise nothing). */
#define DUMP_WRITE_BEHIND_WINDOW (16u << 20)
void dump_sink_enable_write_behind(DumpSink *sink);
/* Flush, add the flattened end marker, set the final size of sparse files, and
 * close the output (its close() can report a write error too). */
bool dump_sink_finish(DumpSink *sink, GError **errp);
/* From any thread: make blocked and later stream writes fail ("cancelled"). */
void dump_sink_cancel(DumpSink *sink);
void dump_sink_close(DumpSink *sink);

/* Writers */
bool elf_dump_write(DumpJob *job, GError **errp);
bool kdump_dump_write(DumpJob *job, GError **errp);

/* The `len` bytes (at most a page) at offset `off` of range r as the dump sees
 * them, or NULL when they are all zero: pages never touched are known zero without
 * reading them; a live dump copies the page as it was at its instant into `buf`
 * (a page), otherwise the result points into guest RAM. */
const uint8_t *dump_page_get(DumpJob *job, struct ZeroMap *zm, const DumpRange *r, uint64_t off,
                             size_t len, uint8_t *buf);

/* Count `bytes` of guest memory as done; false ("dump: cancelled") once the dump has
 * been cancelled. Safe from any thread. */
bool dump_job_advance(DumpJob *job, uint64_t bytes, GError **errp);

/* A 64-bit hash of a page's content (not cryptographic: equal pages are compared). */
uint64_t dump_page_hash(const uint8_t *page, size_t size);

/* kdump: the slot of the writer's table of written pages that a page hash maps to */
#define KDUMP_DEDUP_SLOTS (1u << 16)
static inline size_t kdump_dedup_slot(uint64_t hash)
{
    return (size_t)(hash >> 48) & (KDUMP_DEDUP_SLOTS - 1);
}

#endif
