/*
 * Reading vmcores back (-load-vmcore): ELF cores (QEMU's or minivm's, PN_XNUM
 * included), kdump-compressed files (64-bit and i386 layouts; zlib, lzo,
 * snappy, zstd pages) and makedumpfile flattened files holding either.
 * Layouts: ../shared/FORMATS.md §1, §2, §5, §6. x86 dumps are little-endian,
 * like the hosts this runs on, so fields are read by memcpy.
 *
 * A flattened file is indexed once into a sorted table of records; every other
 * read goes through src_read(), which serves the reassembled ("logical") file.
 * Headers, notes and the memory map are parsed at open; the memory is read by
 * vmcore_read_memory() in large batches, straight into guest RAM.
 */
#include "config.h"
#include "vmcore.h"
#include "kdump_format.h"
#include "util.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#if CONFIG_LZO
#include <lzo/lzo1x.h>
#endif
#if CONFIG_SNAPPY
#include <snappy-c.h>
#endif
#if CONFIG_ZSTD
#include <zstd.h>
#endif

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "system/vmcore.c reads little-endian dumps on a little-endian host"
#endif

#define VMCORE_MAX_GPA      (1ULL << 40)  /* guest RAM must end at or below 1 TiB */
#define VMCORE_MAX_NOTES    (16u << 20)   /* a note segment or the kdump note area */
#define VMCORE_MAX_NAMESZ   256u
#define VMCORE_MAX_DESCSZ   (1u << 20)    /* as QEMU's limit for the guest note */
#define VMCORE_MAX_CPUS     4096u
#define VMCORE_MAX_PHNUM    (1u << 22)
#define IO_BATCH            (1u << 20)    /* program headers, descriptors, flat scan */
#define DATA_WINDOW         (4u << 20)    /* kdump page data read-ahead */
#define ALL_ONES            UINT64_MAX

#define FLAT_SIGNATURE      "makedumpfile"
#define FLAT_HEADER_SIZE    4096
#define KDUMP_SIGNATURE     "KDUMP   "
#define KDUMP_MAX_VERSION   6
#define KDUMP_NOTES_VERSION 4
#define PAGE_DESC_SIZE      24
#define PAGE_ZLIB           0x1u
#define PAGE_LZO            0x2u
#define PAGE_SNAPPY         0x4u
#define PAGE_ZSTD           0x20u

#define PRSTATUS64_SIZE     336
#define PRSTATUS64_REG      112
#define PRSTATUS32_SIZE     144
#define PRSTATUS32_REG      72
#define QEMU_NOTE_MIN       432
#define QEMU_NOTE_KGS       440
#define CR0_ET              (1ULL << 4)
#define APIC_BASE_BSP       0xfee00900ULL
#define APIC_BASE_AP        0xfee00800ULL

typedef enum { VMCORE_ELF, VMCORE_KDUMP } VmcoreFormat;

/* One makedumpfile record: `size` bytes at `file` belong at `logical`. */
typedef struct FlatRecord {
    uint64_t logical;
    uint64_t file;
    uint64_t size;
} FlatRecord;

/* File bytes [offset, offset+size) hold guest-physical [paddr, paddr+size). */
typedef struct ElfExtent {
    uint64_t paddr;
    uint64_t offset;
    uint64_t size;
} ElfExtent;

typedef struct KdumpInfo {
    uint32_t block_size;
    uint64_t max_mapnr;
    uint64_t desc_off;      /* page_desc table */
    uint64_t data_off;      /* end of that table: page data starts here */
    uint64_t ndumpable;     /* set bits of the 2nd bitmap */
    uint64_t *bitmap2;      /* dumped pages, max_mapnr bits */
} KdumpInfo;

struct VmcoreImage {
    char *path;
    int fd;
    uint64_t file_size;     /* bytes on disk */
    uint64_t size;          /* bytes of the logical (reassembled) file */
    GArray *flat;           /* FlatRecord by logical offset; NULL for a plain file */
    VmcoreFormat format;
    uint16_t machine;       /* ELF e_machine; 0 for kdump */
    bool prstatus64;        /* the NT_PRSTATUS notes are x86_64's */
    GArray *blocks;         /* VmcoreBlock */
    GArray *cpus;           /* X86CPUState */
    GArray *qemu_notes;     /* const uint8_t * into a note buffer, while parsing */
    GBytes *guest_note;
    GArray *extents;        /* ELF: ElfExtent by paddr */
    KdumpInfo kd;
};

/* ---- errors and little helpers ---- */

static bool bad(const VmcoreImage *img, GError **errp, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static bool bad(const VmcoreImage *img, GError **errp, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(errp, "%s: %s", img->path, msg);
    return false;
}

static uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint64_t get_be64(const uint8_t *p)
{
    return GUINT64_FROM_BE(get64(p));
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static bool range_fits(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

/* ---- the logical file: plain, or reassembled from flattened records ---- */

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
static bool flat_read(const VmcoreImage *img, uint8_t *buf, uint64_t len, uint64_t off,
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

/* Read [off, off+len) of the logical file. */
static bool src_read(const VmcoreImage *img, void *buf, uint64_t len, uint64_t off, GError **errp)
{
    if (!range_fits(off, len, img->size)) {
        return bad(img, errp, "unexpected end of file at offset 0x%" PRIx64, off);
    }
    if (img->flat) {
        return flat_read(img, buf, len, off, false, errp);
    }
    return pread_full(img->fd, buf, len, (off_t)off, img->path, errp);
}

/* Like src_read into a zeroed destination: holes of a sparse file are skipped. */
static bool plain_read_sparse(const VmcoreImage *img, uint8_t *buf, uint64_t len, uint64_t off,
                              GError **errp)
{
    uint64_t end = off + len, start = off;

    while (off < end) {
        off_t data = lseek(img->fd, (off_t)off, SEEK_DATA);
        if (data < 0 && errno == ENXIO) {
            return true;                    /* nothing but a hole up to the end */
        }
        off_t hole = data < 0 ? -1 : lseek(img->fd, data, SEEK_HOLE);
        if (data < 0 || hole < 0) {
            if (errno == EINVAL || errno == EOPNOTSUPP) {
                return pread_full(img->fd, buf + (off - start), end - off, (off_t)off,
                                  img->path, errp);
            }
            error_setg_errno(errp, errno, "%s: cannot seek", img->path);
            return false;
        }
        if ((uint64_t)data >= end) {
            return true;
        }
        uint64_t stop = MIN(end, (uint64_t)hole);
        if (!pread_full(img->fd, buf + ((uint64_t)data - start), stop - (uint64_t)data, data,
                        img->path, errp)) {
            return false;
        }
        off = stop;
    }
    return true;
}

static bool src_read_sparse(const VmcoreImage *img, uint8_t *buf, uint64_t len, uint64_t off,
                            GError **errp)
{
    if (!range_fits(off, len, img->size)) {
        return bad(img, errp, "unexpected end of file at offset 0x%" PRIx64, off);
    }
    if (img->flat) {
        return flat_read(img, buf, len, off, true, errp);
    }
    return plain_read_sparse(img, buf, len, off, errp);
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
            return bad(img, errp, "flattened record header at offset 0x%" PRIx64
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
            return bad(img, errp, "flattened file ends without its end marker (truncated?)");
        }
        if (!scan_get(img, &sb, pos, rec, errp)) {
            return false;
        }
        int64_t loff = (int64_t)get_be64(rec), size = (int64_t)get_be64(rec + 8);
        if (loff == -1 && size == -1) {
            return true;
        }
        if (loff < 0 || size < 0 || size > INT64_MAX - loff) {
            return bad(img, errp, "flattened record at offset 0x%" PRIx64 " is corrupt "
                       "(offset %" PRId64 ", size %" PRId64 ")", pos, loff, size);
        }
        if ((uint64_t)size > img->file_size - pos - 16) {
            return bad(img, errp, "flattened record at offset 0x%" PRIx64
                       " runs past the end of the file", pos);
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
            return bad(img, errp, "flattened records overlap at offset 0x%" PRIx64, r->logical);
        }
        img->size = r->logical + r->size;
    }
    return true;
}

static bool flat_open(VmcoreImage *img, GError **errp)
{
    uint8_t hdr[32];

    if (img->file_size < FLAT_HEADER_SIZE) {
        return bad(img, errp, "truncated makedumpfile flattened header");
    }
    if (!pread_full(img->fd, hdr, sizeof(hdr), 0, img->path, errp)) {
        return false;
    }
    if (get_be64(hdr + 16) != 1) {
        return bad(img, errp, "makedumpfile flattened type %" PRIu64 " is not 1",
                   get_be64(hdr + 16));
    }
    img->flat = g_array_new(FALSE, FALSE, sizeof(FlatRecord));
    return flat_scan(img, errp) && flat_sort(img, errp);
}

/* ---- vCPU notes: NT_PRSTATUS and QEMU's CPU state ---- */

static X86Segment flat_segment(uint32_t selector, bool code, bool long_mode)
{
    uint32_t flags = SEG_FLAG_P | SEG_FLAG_S | SEG_FLAG_G | (selector & 3) << SEG_FLAG_DPL_SHIFT;

    if (code) {
        flags |= 0xbu << SEG_FLAG_TYPE_SHIFT | (long_mode ? SEG_FLAG_L : SEG_FLAG_DB);
    } else {
        flags |= 0x3u << SEG_FLAG_TYPE_SHIFT | SEG_FLAG_DB;
    }
    return (X86Segment){ .selector = selector, .limit = 0xffffffff, .flags = flags };
}

/* Without a QEMU note: flat descriptors for the prstatus selectors, a busy TSS,
 * and control registers consistent with the mode (KVM refuses LMA without PG). */
static void cpu_default_system_state(X86CPUState *s, bool long_mode)
{
    s->cs = flat_segment(s->cs.selector, true, long_mode);
    s->ss = flat_segment(s->ss.selector, false, long_mode);
    s->ds = flat_segment(s->ds.selector, false, long_mode);
    s->es = flat_segment(s->es.selector, false, long_mode);
    uint64_t fs_base = s->fs.base, gs_base = s->gs.base;
    s->fs = flat_segment(s->fs.selector, false, long_mode);
    s->gs = flat_segment(s->gs.selector, false, long_mode);
    s->fs.base = fs_base;
    s->gs.base = gs_base;
    s->tr = (X86Segment){ .limit = 0x67, .flags = SEG_FLAG_P | 0xbu << SEG_FLAG_TYPE_SHIFT };
    s->cr[0] = CR0_PE | CR0_ET | (long_mode ? CR0_PG : 0);
    s->cr[4] = long_mode ? CR4_PAE : 0;
}

static void prstatus64(X86CPUState *s, const uint8_t *d)
{
    static const int gpr[15] = { R_R15, R_R14, R_R13, R_R12, R_EBP, R_EBX, R_R11, R_R10,
                                 R_R9, R_R8, R_EAX, R_ECX, R_EDX, R_ESI, R_EDI };
    const uint8_t *r = d + PRSTATUS64_REG;

    for (int i = 0; i < 15; i++) {
        s->regs[gpr[i]] = get64(r + 8 * i);
    }
    s->rip = get64(r + 8 * 16);
    s->cs.selector = (uint16_t)get64(r + 8 * 17);
    s->rflags = get64(r + 8 * 18);
    s->regs[R_ESP] = get64(r + 8 * 19);
    s->ss.selector = (uint16_t)get64(r + 8 * 20);
    s->fs.base = get64(r + 8 * 21);
    s->gs.base = get64(r + 8 * 22);
    s->ds.selector = (uint16_t)get64(r + 8 * 23);
    s->es.selector = (uint16_t)get64(r + 8 * 24);
    s->fs.selector = (uint16_t)get64(r + 8 * 25);
    s->gs.selector = (uint16_t)get64(r + 8 * 26);
    cpu_default_system_state(s, true);
}

static void prstatus32(X86CPUState *s, const uint8_t *d)
{
    static const int gpr[7] = { R_EBX, R_ECX, R_EDX, R_ESI, R_EDI, R_EBP, R_EAX };
    const uint8_t *r = d + PRSTATUS32_REG;

    for (int i = 0; i < 7; i++) {
        s->regs[gpr[i]] = get32(r + 4 * i);
    }
    s->ds.selector = get16(r + 4 * 7);
    s->es.selector = get16(r + 4 * 8);
    s->fs.selector = get16(r + 4 * 9);
    s->gs.selector = get16(r + 4 * 10);
    s->rip = get32(r + 4 * 12);
    s->cs.selector = get16(r + 4 * 13);
    s->rflags = get32(r + 4 * 14);
    s->regs[R_ESP] = get32(r + 4 * 15);
    s->ss.selector = get16(r + 4 * 16);
    cpu_default_system_state(s, false);
}

static bool note_prstatus(VmcoreImage *img, const uint8_t *desc, uint32_t descsz,
                          const char *where, guint index, GError **errp)
{
    bool ok = descsz == PRSTATUS64_SIZE || descsz == PRSTATUS32_SIZE;
    X86CPUState s = { 0 };

    if (img->machine == EM_X86_64) {
        ok = descsz == PRSTATUS64_SIZE;
    } else if (img->machine == EM_386) {
        ok = descsz == PRSTATUS32_SIZE;
    }
    if (!ok) {
        return bad(img, errp, "NT_PRSTATUS note %u in %s has size %u (336 for x86_64, "
                   "144 for i386)", index, where, descsz);
    }
    if (img->cpus->len >= VMCORE_MAX_CPUS) {
        return bad(img, errp, "more than %u NT_PRSTATUS notes", VMCORE_MAX_CPUS);
    }
    img->prstatus64 = descsz == PRSTATUS64_SIZE;
    if (descsz == PRSTATUS64_SIZE) {
        prstatus64(&s, desc);
    } else {
        prstatus32(&s, desc);
    }
    g_array_append_val(img->cpus, s);
    return true;
}

static bool note_qemu(VmcoreImage *img, const uint8_t *desc, uint32_t descsz,
                      const char *where, guint index, GError **errp)
{
    uint32_t version = descsz >= 8 ? get32(desc) : 0, size = descsz >= 8 ? get32(desc + 4) : 0;

    if (descsz < QEMU_NOTE_MIN || size < QEMU_NOTE_MIN || size > descsz) {
        return bad(img, errp, "QEMU note %u in %s has size %u (descsz %u; 432 or 440 expected)",
                   index, where, size, descsz);
    }
    if (version != 1) {
        return bad(img, errp, "QEMU note %u in %s has version %u, not 1", index, where, version);
    }
    g_array_append_val(img->qemu_notes, desc);
    return true;
}

static X86Segment qemu_segment(const uint8_t *p)
{
    return (X86Segment){ .selector = get32(p), .limit = get32(p + 4), .flags = get32(p + 8),
                         .base = get64(p + 16) };
}

/* QEMUCPUState (FORMATS.md §2.3): segments, descriptor tables, control registers. */
static void cpu_apply_qemu_note(X86CPUState *s, const uint8_t *d)
{
    X86Segment *segs[8] = { &s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->ldt, &s->tr };

    for (int i = 0; i < 8; i++) {
        *segs[i] = qemu_segment(d + 152 + 24 * i);
    }
    X86Segment gdt = qemu_segment(d + 344), idt = qemu_segment(d + 368);
    s->gdt = (X86Table){ .base = gdt.base, .limit = gdt.limit };
    s->idt = (X86Table){ .base = idt.base, .limit = idt.limit };
    for (int i = 0; i < 5; i++) {
        s->cr[i] = get64(d + 392 + 8 * i);
    }
    s->kernel_gs_base = get32(d + 4) >= QEMU_NOTE_KGS ? get64(d + 432) : 0;
}

/*
 * EFER is in no note. Long mode is where CS says so, or where an x86_64 prstatus
 * comes with paging and PAE: a vCPU caught in a 32-bit process has CS.L clear.
 * NX goes with PAE paging and SYSCALL with long mode, as every x86_64 Linux turns
 * them on: page tables with NX bits and system calls work if the VM runs on.
 */
static uint64_t restored_efer(const X86CPUState *s, bool x86_64)
{
    bool pae_paging = (s->cr[0] & CR0_PG) && (s->cr[4] & CR4_PAE);
    uint64_t efer = pae_paging ? EFER_NXE : 0;

    if ((s->cs.flags & SEG_FLAG_L) || (x86_64 && pae_paging)) {
        efer |= EFER_LME | EFER_LMA | EFER_SCE;
    }
    return efer;
}

/* The i-th QEMU note belongs to the i-th NT_PRSTATUS vCPU. */
static bool cpus_finish(VmcoreImage *img, GError **errp)
{
    GArray *cpus = img->cpus;

    if (cpus->len == 0) {
        return bad(img, errp, "no NT_PRSTATUS note: the file holds no vCPU state");
    }
    if (img->qemu_notes->len > cpus->len) {
        return bad(img, errp, "%u QEMU CPU-state notes for %u NT_PRSTATUS notes",
                   img->qemu_notes->len, cpus->len);
    }
    for (guint i = 0; i < cpus->len; i++) {
        X86CPUState *s = &g_array_index(cpus, X86CPUState, i);
        if (i < img->qemu_notes->len) {
            cpu_apply_qemu_note(s, g_array_index(img->qemu_notes, const uint8_t *, i));
        }
        s->efer = restored_efer(s, img->prstatus64);
        s->apic_base = i == 0 ? APIC_BASE_BSP : APIC_BASE_AP;
    }
    g_array_set_size(img->qemu_notes, 0);
    return true;
}

/* ---- the note stream ---- */

static bool name_is(const uint8_t *name, uint32_t namesz, const char *want)
{
    size_t n = strlen(want);

    return (namesz == n || namesz == n + 1) && memcmp(name, want, n) == 0 &&
           (namesz == n || name[n] == '\0');
}

/* Copy the whole note, padding included (zero-filled if the stream ends early). */
static void note_keep_guest(VmcoreImage *img, const uint8_t *note, uint64_t avail, uint64_t full)
{
    if (img->guest_note) {
        return;
    }
    uint8_t *copy = g_malloc0(full);
    memcpy(copy, note, MIN(avail, full));
    img->guest_note = g_bytes_new_take(copy, full);
}

typedef struct NoteCursor {
    const char *where;      /* "PT_NOTE 0", "the kdump note area" */
    guint index;
} NoteCursor;

static bool note_dispatch(VmcoreImage *img, const NoteCursor *c, const uint8_t *note,
                          uint64_t avail, GError **errp)
{
    uint32_t namesz = get32(note), descsz = get32(note + 4), type = get32(note + 8);
    const uint8_t *name = note + 12, *desc = name + align_up(namesz, 4);
    uint64_t full = 12 + align_up(namesz, 4) + align_up(descsz, 4);

    if (name_is(name, namesz, "CORE") && type == NT_PRSTATUS) {
        return note_prstatus(img, desc, descsz, c->where, c->index, errp);
    }
    if (name_is(name, namesz, "QEMU") && type == 0) {
        return note_qemu(img, desc, descsz, c->where, c->index, errp);
    }
    if (name_is(name, namesz, "VMCOREINFO")) {
        note_keep_guest(img, note, avail, full);
    }
    return true;
}

/* Parse a note stream; `buf` must outlive cpus_finish() (QEMU notes point into it). */
static bool notes_parse(VmcoreImage *img, const uint8_t *buf, uint64_t len, const char *where,
                        GError **errp)
{
    NoteCursor c = { where, 0 };

    for (uint64_t pos = 0; pos < len; c.index++) {
        uint64_t left = len - pos;
        if (left < 12) {
            if (buffer_is_zero(buf + pos, left)) {
                break;                  /* trailing padding */
            }
            return bad(img, errp, "note %u in %s runs past the end of its segment", c.index,
                       where);
        }
        uint32_t namesz = get32(buf + pos), descsz = get32(buf + pos + 4);
        if (namesz > VMCORE_MAX_NAMESZ || descsz > VMCORE_MAX_DESCSZ) {
            return bad(img, errp, "note %u in %s has an absurd size (namesz %u, descsz %u)",
                       c.index, where, namesz, descsz);
        }
        if (12 + align_up(namesz, 4) + descsz > left) {
            return bad(img, errp, "note %u in %s runs past the end of its segment", c.index,
                       where);
        }
        if (!note_dispatch(img, &c, buf + pos, left, errp)) {
            return false;
        }
        pos += MIN(left, 12 + align_up(namesz, 4) + align_up(descsz, 4));
    }
    return true;
}

/* Read a note segment of the logical file and parse it; the buffer is returned
 * (to be freed after cpus_finish) through *keep. */
static bool notes_read(VmcoreImage *img, uint64_t off, uint64_t len, const char *where,
                       GPtrArray *keep, GError **errp)
{
    if (len > VMCORE_MAX_NOTES) {
        return bad(img, errp, "%s has an absurd size (%" PRIu64 " bytes)", where, len);
    }
    if (!range_fits(off, len, img->size)) {
        return bad(img, errp, "%s lies past the end of the file", where);
    }
    uint8_t *buf = g_malloc(MAX(len, 1));
    g_ptr_array_add(keep, buf);
    return src_read(img, buf, len, off, errp) && notes_parse(img, buf, len, where, errp);
}

/* ---- ELF ---- */

typedef struct ElfInfo {
    bool is64;
    uint64_t phoff;
    uint32_t phnum;
    uint32_t phentsize;
} ElfInfo;

typedef struct ElfSegment {
    uint32_t type;
    uint32_t index;
    uint64_t offset, paddr, filesz, memsz;
} ElfSegment;

static uint64_t elf32_wide(uint32_t v)
{
    return v == UINT32_MAX ? ALL_ONES : v;
}

static ElfSegment elf_segment(const ElfInfo *ei, const uint8_t *p, uint32_t index)
{
    if (ei->is64) {
        Elf64_Phdr ph;
        memcpy(&ph, p, sizeof(ph));
        return (ElfSegment){ ph.p_type, index, ph.p_offset, ph.p_paddr, ph.p_filesz,
                             ph.p_memsz };
    }
    Elf32_Phdr ph;
    memcpy(&ph, p, sizeof(ph));
    return (ElfSegment){ ph.p_type, index, elf32_wide(ph.p_offset), elf32_wide(ph.p_paddr),
                         ph.p_filesz, ph.p_memsz };
}

/* PN_XNUM: the real program header count is sh_info of section 0. */
static bool elf_xnum(VmcoreImage *img, ElfInfo *ei, uint64_t shoff, GError **errp)
{
    size_t shsize = ei->is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
    uint8_t sh[sizeof(Elf64_Shdr)];

    if (shoff == 0) {
        return bad(img, errp, "e_phnum is PN_XNUM but there is no section header");
    }
    if (!range_fits(shoff, shsize, img->size)) {
        return bad(img, errp, "the section header lies past the end of the file");
    }
    if (!src_read(img, sh, shsize, shoff, errp)) {
        return false;
    }
    ei->phnum = get32(sh + (ei->is64 ? offsetof(Elf64_Shdr, sh_info)
                                     : offsetof(Elf32_Shdr, sh_info)));
    return true;
}

static bool elf_check_ident(VmcoreImage *img, const uint8_t *ident, GError **errp)
{
    if (ident[EI_CLASS] != ELFCLASS32 && ident[EI_CLASS] != ELFCLASS64) {
        return bad(img, errp, "unsupported ELF class %u", ident[EI_CLASS]);
    }
    if (ident[EI_DATA] == ELFDATA2MSB) {
        return bad(img, errp, "big-endian ELF files are not supported");
    }
    if (ident[EI_DATA] != ELFDATA2LSB || ident[EI_VERSION] != EV_CURRENT) {
        return bad(img, errp, "bad ELF identification (data %u, version %u)",
                   ident[EI_DATA], ident[EI_VERSION]);
    }
    return true;
}

static bool elf_check_type(VmcoreImage *img, bool is64, uint16_t type, uint16_t machine,
                           uint16_t phentsize, GError **errp)
{
    size_t want = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);

    if (type != ET_CORE) {
        return bad(img, errp, "not an ELF core file (e_type %u)", type);
    }
    if (machine != EM_386 && (machine != EM_X86_64 || !is64)) {
        return bad(img, errp, "unsupported e_machine %u for ELFCLASS%d", machine,
                   is64 ? 64 : 32);
    }
    if (phentsize != want) {
        return bad(img, errp, "e_phentsize is %u, not %zu", phentsize, want);
    }
    img->machine = machine;
    return true;
}

static bool elf_read_header(VmcoreImage *img, ElfInfo *ei, GError **errp)
{
    uint8_t buf[sizeof(Elf64_Ehdr)];
    Elf64_Ehdr h64;
    Elf32_Ehdr h32;

    if (!src_read(img, buf, EI_NIDENT, 0, errp) || !elf_check_ident(img, buf, errp)) {
        return false;
    }
    ei->is64 = buf[EI_CLASS] == ELFCLASS64;
    size_t ehsize = ei->is64 ? sizeof(h64) : sizeof(h32);
    if (img->size < ehsize) {
        return bad(img, errp, "truncated ELF header");
    }
    if (!src_read(img, buf, ehsize, 0, errp)) {
        return false;
    }
    memcpy(ei->is64 ? (void *)&h64 : (void *)&h32, buf, ehsize);
    if (!ei->is64) {
        h64 = (Elf64_Ehdr){ .e_type = h32.e_type, .e_machine = h32.e_machine,
                            .e_phoff = h32.e_phoff, .e_shoff = h32.e_shoff,
                            .e_phentsize = h32.e_phentsize, .e_phnum = h32.e_phnum };
    }
    if (!elf_check_type(img, ei->is64, h64.e_type, h64.e_machine, h64.e_phentsize, errp)) {
        return false;
    }
    ei->phoff = h64.e_phoff;
    ei->phentsize = h64.e_phentsize;
    ei->phnum = h64.e_phnum;
    return h64.e_phnum != PN_XNUM || elf_xnum(img, ei, h64.e_shoff, errp);
}

static bool elf_check_phdrs(VmcoreImage *img, const ElfInfo *ei, GError **errp)
{
    if (ei->phnum == 0) {
        return bad(img, errp, "no program headers");
    }
    if (ei->phnum > VMCORE_MAX_PHNUM) {
        return bad(img, errp, "absurd number of program headers (%u)", ei->phnum);
    }
    if (!range_fits(ei->phoff, (uint64_t)ei->phnum * ei->phentsize, img->size)) {
        return bad(img, errp, "the program headers lie past the end of the file");
    }
    return true;
}

/* Validate one PT_LOAD; *use is false for loads that describe no RAM. */
static bool elf_check_load(VmcoreImage *img, const ElfSegment *s, bool *use, GError **errp)
{
    *use = s->memsz && s->paddr != ALL_ONES && !(s->offset == ALL_ONES && s->filesz == 0);
    if (!*use) {
        return true;
    }
    if (s->filesz > s->memsz) {
        return bad(img, errp, "PT_LOAD %u has p_filesz 0x%" PRIx64 " larger than p_memsz 0x%"
                   PRIx64, s->index, s->filesz, s->memsz);
    }
    if (!range_fits(s->paddr, s->memsz, VMCORE_MAX_GPA)) {
        return bad(img, errp, "PT_LOAD %u has an absurd physical range 0x%" PRIx64 "+0x%" PRIx64
                   " (guest RAM must end below 1 TiB)", s->index, s->paddr, s->memsz);
    }
    if (!range_fits(s->offset, s->filesz, img->size)) {
        return bad(img, errp, "PT_LOAD %u lies past the end of the file", s->index);
    }
    return true;
}

static bool elf_scan_phdrs(VmcoreImage *img, const ElfInfo *ei, GArray *loads, GArray *notes,
                           GError **errp)
{
    g_autofree uint8_t *buf = g_malloc(IO_BATCH);
    uint32_t per_batch = IO_BATCH / ei->phentsize;

    for (uint32_t i = 0; i < ei->phnum;) {
        uint32_t n = MIN(per_batch, ei->phnum - i);
        if (!src_read(img, buf, (uint64_t)n * ei->phentsize,
                      ei->phoff + (uint64_t)i * ei->phentsize, errp)) {
            return false;
        }
        for (uint32_t j = 0; j < n; j++, i++) {
            ElfSegment s = elf_segment(ei, buf + (size_t)j * ei->phentsize, i);
            bool use = false;
            if (s.type == PT_NOTE) {
                g_array_append_val(notes, s);
            } else if (s.type == PT_LOAD && !elf_check_load(img, &s, &use, errp)) {
                return false;
            }
            if (use) {
                g_array_append_val(loads, s);
            }
        }
    }
    return true;
}

static gint elf_segment_cmp(gconstpointer a, gconstpointer b)
{
    const ElfSegment *x = a, *y = b;

    if (x->paddr != y->paddr) {
        return x->paddr < y->paddr ? -1 : 1;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

static void map_add_block(GArray *blocks, uint64_t start, uint64_t end)
{
    start &= ~(GUEST_PAGE_SIZE - 1);
    end = align_up(end, GUEST_PAGE_SIZE);
    if (blocks->len) {
        VmcoreBlock *last = &g_array_index(blocks, VmcoreBlock, blocks->len - 1);
        if (start <= last->gpa + last->size) {
            last->size = MAX(last->size, end - last->gpa);
            return;
        }
    }
    VmcoreBlock b = { start, end - start };
    g_array_append_val(blocks, b);
}

static void elf_add_extent(GArray *extents, const ElfSegment *s)
{
    if (!s->filesz) {
        return;
    }
    if (extents->len) {          /* loads come clipped: never before the last extent's end */
        ElfExtent *last = &g_array_index(extents, ElfExtent, extents->len - 1);
        if (s->paddr == last->paddr + last->size && s->offset == last->offset + last->size) {
            last->size += s->filesz;
            return;
        }
    }
    ElfExtent e = { s->paddr, s->offset, s->filesz };
    g_array_append_val(extents, e);
}

/* Sorted by paddr; blocks are the page-aligned union, extents the file-backed
 * parts, each read once. Overlapping loads are usual: paging dumps repeat physical
 * ranges at the same file bytes, and Linux's /proc/vmcore gives the kernel's text
 * a PT_LOAD of its own, at its own file offset, inside the RAM one. The load met
 * first keeps an address (its zero tail included); a later one adds only what lies
 * beyond all before it (crash and makedumpfile also take one load per address; in
 * a real core both hold the same bytes). */
static bool elf_build_map(VmcoreImage *img, GArray *loads, GError **errp)
{
    uint64_t mapped_end = 0;        /* end of everything mapped so far */

    if (!loads->len) {
        return bad(img, errp, "no PT_LOAD describes guest RAM");
    }
    g_array_sort(loads, elf_segment_cmp);
    for (guint i = 0; i < loads->len; i++) {
        ElfSegment s = g_array_index(loads, ElfSegment, i);
        if (i && s.paddr < mapped_end) {
            if (s.paddr + s.memsz <= mapped_end) {
                continue;
            }
            uint64_t skip = mapped_end - s.paddr;
            s.paddr = mapped_end;
            s.memsz -= skip;
            s.offset += MIN(skip, s.filesz);
            s.filesz -= MIN(skip, s.filesz);
        }
        mapped_end = MAX(mapped_end, s.paddr + s.memsz);
        map_add_block(img->blocks, s.paddr, s.paddr + s.memsz);
        elf_add_extent(img->extents, &s);
    }
    return true;
}

static bool elf_read_notes(VmcoreImage *img, GArray *notes, GPtrArray *keep, GError **errp)
{
    for (guint i = 0; i < notes->len; i++) {
        const ElfSegment *s = &g_array_index(notes, ElfSegment, i);
        g_autofree char *where = g_strdup_printf("PT_NOTE %u", s->index);
        if (!notes_read(img, s->offset, s->filesz, where, keep, errp)) {
            return false;
        }
    }
    return cpus_finish(img, errp);
}

static bool elf_open(VmcoreImage *img, GError **errp)
{
    g_autoptr(GArray) loads = g_array_new(FALSE, FALSE, sizeof(ElfSegment));
    g_autoptr(GArray) notes = g_array_new(FALSE, FALSE, sizeof(ElfSegment));
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
    ElfInfo ei;

    img->format = VMCORE_ELF;
    img->extents = g_array_new(FALSE, FALSE, sizeof(ElfExtent));
    return elf_read_header(img, &ei, errp) && elf_check_phdrs(img, &ei, errp) &&
           elf_scan_phdrs(img, &ei, loads, notes, errp) && elf_build_map(img, loads, errp) &&
           elf_read_notes(img, notes, keep, errp);
}

/* Guest RAM for [gpa, gpa+len): the host pointer and how many bytes fit. */
static uint8_t *guest_span(const GuestMemory *mem, uint64_t gpa, uint64_t len, uint64_t *n)
{
    for (guint i = 0; i < guest_memory_count(mem); i++) {
        RamBlock *b = guest_memory_block(mem, i);
        if (gpa >= b->gpa && gpa - b->gpa < b->size) {
            *n = MIN(len, b->size - (gpa - b->gpa));
            return b->host + (gpa - b->gpa);
        }
    }
    return NULL;
}

/* Copy src into zeroed guest RAM a guest page at a time, leaving out the pages
 * that are all zero. */
static void copy_pages(uint8_t *dst, const uint8_t *src, uint64_t len)
{
    for (uint64_t off = 0, step; off < len; off += step) {
        step = MIN(len - off, GUEST_PAGE_SIZE - ((uintptr_t)(dst + off) & (GUEST_PAGE_SIZE - 1)));
        if (!buffer_is_zero(src + off, step)) {
            memcpy(dst + off, src + off, step);
        }
    }
}

/* Through a bounce buffer, so that zero pages (file holes included) are never
 * written into guest RAM (see vmcore_read_memory). */
static bool elf_read_memory(VmcoreImage *img, GuestMemory *mem, GError **errp)
{
    g_autofree uint8_t *bounce = g_malloc(IO_BATCH);

    for (guint i = 0; i < img->extents->len; i++) {
        const ElfExtent *e = &g_array_index(img->extents, ElfExtent, i);
        for (uint64_t done = 0, n; done < e->size; done += n) {
            uint8_t *host = guest_span(mem, e->paddr + done, e->size - done, &n);
            if (!host) {
                return bad(img, errp, "guest RAM does not cover address 0x%" PRIx64,
                           e->paddr + done);
            }
            for (uint64_t k = 0, m; k < n; k += m) {
                m = MIN(IO_BATCH, n - k);
                memset(bounce, 0, m);               /* holes in the file read as zeros */
                if (!src_read_sparse(img, bounce, m, e->offset + done + k, errp)) {
                    return false;
                }
                copy_pages(host + k, bounce, m);
            }
        }
    }
    return true;
}

/* ---- kdump-compressed ---- */

/* Field offsets of disk_dump_header and kdump_sub_header (FORMATS.md §5.2, §5.3). */
#define KDUMP_UTS_MACHINE (KDUMP_UTS_OFFSET + 4 * 65)

typedef struct KdumpHeader {
    const KdumpFields *layout;
    int32_t version;
    int32_t sub_hdr_size;
    uint32_t bitmap_blocks;
    uint64_t max_mapnr;
    uint64_t offset_note, size_note;
} KdumpHeader;

static bool sane_block_size(uint32_t bs)
{
    return bs >= GUEST_PAGE_SIZE && bs <= (1u << 20) && (bs & (bs - 1)) == 0;
}

/* Whether the header read with a layout describes a file: a sane block size, a
 * sub-header and bitmaps, all inside the file. */
static bool kdump_layout_fits(const VmcoreImage *img, const uint8_t *h, const KdumpFields *l)
{
    uint64_t bs = get32(h + l->block_size);
    uint64_t sub = get32(h + l->sub_hdr_size), bitmaps = get32(h + l->bitmap_blocks);

    return sane_block_size((uint32_t)bs) && sub >= 1 && bitmaps >= 2 &&
           (1 + sub + bitmaps) * bs <= img->size;
}

/*
 * The 32-bit layout (i386 dumps) or the 64-bit one: the one the header fits.
 * utsname.machine does not tell: qemu-system-x86_64 writes "x86_64" in the 32-bit
 * header of a 32-bit guest, whose max_mapnr (0x100000 when RAM reaches 4 GiB) then
 * lies where the 64-bit layout has block_size. It decides only when both fit.
 */
static bool kdump_pick_layout(VmcoreImage *img, const uint8_t *h, KdumpHeader *kh,
                              GError **errp)
{
    bool x86_64 = strncmp((const char *)h + KDUMP_UTS_MACHINE, "x86_64", 7) == 0;
    bool fits64 = kdump_layout_fits(img, h, &kdump_fields64);
    bool fits32 = kdump_layout_fits(img, h, &kdump_fields32);
    uint32_t bs64 = get32(h + kdump_fields64.block_size);
    uint32_t bs32 = get32(h + kdump_fields32.block_size);

    if (fits32 != fits64) {
        kh->layout = fits32 ? &kdump_fields32 : &kdump_fields64;
    } else if (!x86_64 && sane_block_size(bs32)) {     /* both or neither: by name */
        kh->layout = &kdump_fields32;
    } else if (sane_block_size(bs64)) {
        kh->layout = &kdump_fields64;
    } else {
        return bad(img, errp, "kdump block_size %d is not a sane page size", (int32_t)bs64);
    }
    img->kd.block_size = kh->layout == &kdump_fields32 ? bs32 : bs64;
    return true;
}

static bool kdump_read_header(VmcoreImage *img, KdumpHeader *kh, GError **errp)
{
    uint8_t h[KDUMP_HEADER64_SIZE] = { 0 };

    if (img->size < KDUMP_HEADER32_SIZE) {
        return bad(img, errp, "truncated kdump header");
    }
    if (!src_read(img, h, MIN(img->size, sizeof(h)), 0, errp) ||
        !kdump_pick_layout(img, h, kh, errp)) {
        return false;
    }
    const KdumpFields *l = kh->layout;
    kh->version = (int32_t)get32(h + 8);
    kh->sub_hdr_size = (int32_t)get32(h + l->sub_hdr_size);
    kh->bitmap_blocks = get32(h + l->bitmap_blocks);
    kh->max_mapnr = get32(h + l->max_mapnr);
    if (kh->version < 1 || kh->version > KDUMP_MAX_VERSION) {
        return bad(img, errp, "unsupported kdump header_version %d", kh->version);
    }
    if (kh->version < KDUMP_NOTES_VERSION) {
        return bad(img, errp, "kdump header_version %d has no note area (%d or later needed)",
                   kh->version, KDUMP_NOTES_VERSION);
    }
    return true;
}

static bool kdump_read_subheader(VmcoreImage *img, KdumpHeader *kh, GError **errp)
{
    const KdumpFields *l = kh->layout;
    uint32_t bs = img->kd.block_size;
    uint8_t sub[KDUMP_SUB_HEADER64_SIZE];

    if (kh->sub_hdr_size < 1 || (uint64_t)kh->sub_hdr_size * bs > VMCORE_MAX_NOTES + bs) {
        return bad(img, errp, "kdump sub_hdr_size %d is absurd", kh->sub_hdr_size);
    }
    if (!range_fits(bs, l->sub_size, img->size)) {
        return bad(img, errp, "the kdump sub-header lies past the end of the file");
    }
    if (!src_read(img, sub, l->sub_size, bs, errp)) {
        return false;
    }
    kh->offset_note = get64(sub + l->offset_note);
    kh->size_note = l->word == 8 ? get64(sub + l->size_note)
                                            : get32(sub + l->size_note);
    if (kh->version >= 6) {
        kh->max_mapnr = get64(sub + l->max_mapnr_64);
    }
    return true;
}

/* Header numbers against each other and the file size. */
static bool kdump_check_geometry(VmcoreImage *img, const KdumpHeader *kh, uint64_t *bitmap1,
                                 uint64_t *bitmap2, GError **errp)
{
    KdumpInfo *kd = &img->kd;
    uint64_t bs = kd->block_size;

    if (kh->max_mapnr == 0 || kh->max_mapnr > VMCORE_MAX_GPA / bs) {
        return bad(img, errp, "kdump max_mapnr %" PRIu64 " is absurd (guest RAM must end "
                   "below 1 TiB)", kh->max_mapnr);
    }
    kd->max_mapnr = kh->max_mapnr;
    uint64_t half = (kh->bitmap_blocks / 2) * bs;
    if (half < align_up(kd->max_mapnr, 8) / 8) {
        return bad(img, errp, "kdump bitmap_blocks %u is too small for max_mapnr %" PRIu64,
                   kh->bitmap_blocks, kd->max_mapnr);
    }
    *bitmap1 = (1 + (uint64_t)kh->sub_hdr_size) * bs;
    *bitmap2 = *bitmap1 + half;
    kd->desc_off = *bitmap1 + (uint64_t)kh->bitmap_blocks * bs;
    if (kd->desc_off > img->size) {
        return bad(img, errp, "the kdump bitmaps lie past the end of the file");
    }
    return true;
}

static uint64_t bitmap_next(const uint64_t *bm, uint64_t nbits, uint64_t pos, bool set)
{
    while (pos < nbits) {
        uint64_t w = set ? bm[pos / 64] : ~bm[pos / 64];
        w &= ~0ULL << (pos % 64);
        if (w) {
            return MIN(nbits, (pos & ~63ULL) + (uint64_t)__builtin_ctzll(w));
        }
        pos = (pos & ~63ULL) + 64;
    }
    return nbits;
}

static uint64_t bitmap_last(const uint64_t *bm, uint64_t nbits)
{
    for (uint64_t w = align_up(nbits, 64) / 64; w-- > 0;) {
        if (bm[w]) {
            return w * 64 + 63 - (uint64_t)__builtin_clzll(bm[w]);
        }
    }
    return nbits;
}

static uint64_t *bitmap_read(VmcoreImage *img, uint64_t off, GError **errp)
{
    uint64_t nbits = img->kd.max_mapnr, words = align_up(nbits, 64) / 64;
    uint64_t *bm = g_new0(uint64_t, words);
    uint64_t bytes = MIN(words * 8, img->size - off);

    if (!src_read(img, bm, bytes, off, errp)) {
        g_free(bm);
        return NULL;
    }
    if (nbits % 64) {
        bm[words - 1] &= (1ULL << (nbits % 64)) - 1;
    }
    return bm;
}

/* Dumped pages must be present; returns the number of dumped pages. */
static bool kdump_check_bitmaps(VmcoreImage *img, const uint64_t *b1, GError **errp)
{
    const uint64_t *b2 = img->kd.bitmap2;
    uint64_t words = align_up(img->kd.max_mapnr, 64) / 64, count = 0;

    for (uint64_t w = 0; w < words; w++) {
        if (b2[w] & ~b1[w]) {
            uint64_t pfn = w * 64 + (uint64_t)__builtin_ctzll(b2[w] & ~b1[w]);
            return bad(img, errp, "PFN 0x%" PRIx64 " is dumped (2nd bitmap) but not present "
                       "(1st bitmap): the bitmaps disagree", pfn);
        }
        count += (uint64_t)__builtin_popcountll(b2[w]);
    }
    img->kd.ndumpable = count;
    return true;
}

/* Runs of present pages (1st bitmap) are the RAM blocks. */
static bool kdump_build_map(VmcoreImage *img, const uint64_t *b1, GError **errp)
{
    uint64_t nbits = img->kd.max_mapnr, bs = img->kd.block_size;

    for (uint64_t pfn = bitmap_next(b1, nbits, 0, true); pfn < nbits;) {
        uint64_t end = bitmap_next(b1, nbits, pfn, false);
        map_add_block(img->blocks, pfn * bs, end * bs);
        pfn = bitmap_next(b1, nbits, end, true);
    }
    if (!img->blocks->len) {
        return bad(img, errp, "the kdump 1st bitmap has no page present");
    }
    return true;
}

typedef struct PageDesc {
    uint64_t offset;
    uint32_t size;
    uint32_t flags;
} PageDesc;

static PageDesc page_desc(const uint8_t *p)
{
    return (PageDesc){ get64(p), get32(p + 8), get32(p + 12) };
}

static bool desc_check(const VmcoreImage *img, const PageDesc *d, uint64_t pfn, GError **errp)
{
    const KdumpInfo *kd = &img->kd;
    const uint32_t known = PAGE_ZLIB | PAGE_LZO | PAGE_SNAPPY | PAGE_ZSTD;

    if (d->offset < kd->data_off) {
        return bad(img, errp, "the page descriptor of PFN 0x%" PRIx64 " points into the headers "
                   "or descriptors (offset 0x%" PRIx64 "): the bitmaps disagree with the "
                   "descriptors", pfn, d->offset);
    }
    if (!range_fits(d->offset, d->size, img->size)) {
        return bad(img, errp, "the page descriptor of PFN 0x%" PRIx64 " points outside the "
                   "file (offset 0x%" PRIx64 ", size %u)", pfn, d->offset, d->size);
    }
    if ((d->flags & ~known) || (d->flags & (d->flags - 1))) {
        return bad(img, errp, "the page of PFN 0x%" PRIx64 " has unknown compression flags 0x%x",
                   pfn, d->flags);
    }
    if (d->size == 0 || d->size > kd->block_size || (!d->flags && d->size != kd->block_size)) {
        return bad(img, errp, "the page of PFN 0x%" PRIx64 " has size %u (block size %u%s)",
                   pfn, d->size, kd->block_size, d->flags ? "" : ", stored raw");
    }
    return true;
}

static bool desc_read_check(VmcoreImage *img, uint64_t index, uint64_t pfn, GError **errp)
{
    uint8_t raw[PAGE_DESC_SIZE];

    if (!src_read(img, raw, sizeof(raw), img->kd.desc_off + index * PAGE_DESC_SIZE, errp)) {
        return false;
    }
    PageDesc d = page_desc(raw);
    return desc_check(img, &d, pfn, errp);
}

/* The descriptor table must fit, and its ends must look like descriptors. */
static bool kdump_check_descs(VmcoreImage *img, GError **errp)
{
    KdumpInfo *kd = &img->kd;
    uint64_t n = kd->ndumpable;

    if (!range_fits(kd->desc_off, n * PAGE_DESC_SIZE, img->size)) {
        return bad(img, errp, "the 2nd bitmap counts %" PRIu64 " dumped pages, but their "
                   "descriptors would run past the end of the file: the bitmaps disagree "
                   "with the descriptor area", n);
    }
    kd->data_off = kd->desc_off + n * PAGE_DESC_SIZE;
    if (n == 0) {
        return true;
    }
    uint64_t first = bitmap_next(kd->bitmap2, kd->max_mapnr, 0, true);
    return desc_read_check(img, 0, first, errp) &&
           desc_read_check(img, n - 1, bitmap_last(kd->bitmap2, kd->max_mapnr), errp);
}

static bool kdump_read_bitmaps(VmcoreImage *img, uint64_t off1, uint64_t off2, GError **errp)
{
    g_autofree uint64_t *b1 = bitmap_read(img, off1, errp);

    if (!b1) {
        return false;
    }
    img->kd.bitmap2 = bitmap_read(img, off2, errp);
    return img->kd.bitmap2 && kdump_check_bitmaps(img, b1, errp) &&
           kdump_build_map(img, b1, errp);
}

static bool kdump_open(VmcoreImage *img, GError **errp)
{
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
    KdumpHeader kh = { 0 };
    uint64_t off1 = 0, off2 = 0;

    img->format = VMCORE_KDUMP;
    return kdump_read_header(img, &kh, errp) && kdump_read_subheader(img, &kh, errp) &&
           kdump_check_geometry(img, &kh, &off1, &off2, errp) &&
           notes_read(img, kh.offset_note, kh.size_note, "the kdump note area", keep, errp) &&
           cpus_finish(img, errp) && kdump_read_bitmaps(img, off1, off2, errp) &&
           kdump_check_descs(img, errp);
}

/* Page data comes through a read-ahead window; references behind it (the
 * shared zero page) are read on their own and do not move the window. */
typedef struct PageReader {
    uint8_t *window;
    uint64_t win_off, win_len;
    uint8_t *scratch;
    uint64_t zero_off;      /* a raw page known to be all zero, or ALL_ONES */
    uint64_t min_off;       /* lowest data offset referenced */
#if CONFIG_ZSTD
    ZSTD_DCtx *zstd;
#endif
} PageReader;

static const uint8_t *page_data(VmcoreImage *img, PageReader *pr, const PageDesc *d,
                                GError **errp)
{
    if (d->offset >= pr->win_off && d->offset + d->size <= pr->win_off + pr->win_len) {
        return pr->window + (d->offset - pr->win_off);
    }
    if (d->offset < pr->win_off) {
        return src_read(img, pr->scratch, d->size, d->offset, errp) ? pr->scratch : NULL;
    }
    uint64_t len = MIN(DATA_WINDOW, img->size - d->offset);
    if (!src_read(img, pr->window, len, d->offset, errp)) {
        return NULL;
    }
    pr->win_off = d->offset;
    pr->win_len = len;
    return pr->window;
}

static bool page_decompress(PageReader *pr, const PageDesc *d, const uint8_t *src, uint8_t *dst,
                            uint32_t bs, const char **why)
{
    switch (d->flags) {
    case PAGE_ZLIB: {
        uLongf n = bs;
        return uncompress(dst, &n, src, d->size) == Z_OK && n == bs;
    }
#if CONFIG_LZO
    case PAGE_LZO: {
        lzo_uint n = bs;
        return lzo1x_decompress_safe(src, d->size, dst, &n, NULL) == LZO_E_OK && n == bs;
    }
#endif
#if CONFIG_SNAPPY
    case PAGE_SNAPPY: {
        size_t n = 0;
        return snappy_uncompressed_length((const char *)src, d->size, &n) == SNAPPY_OK &&
               n == bs && snappy_uncompress((const char *)src, d->size, (char *)dst, &n) ==
               SNAPPY_OK && n == bs;
    }
#endif
#if CONFIG_ZSTD
    case PAGE_ZSTD: {
        size_t n = ZSTD_decompressDCtx(pr->zstd, dst, bs, src, d->size);
        return !ZSTD_isError(n) && n == bs;
    }
#endif
    default:
        *why = "support for this compression is not built in";
        return false;
    }
}

static bool page_load(VmcoreImage *img, PageReader *pr, GuestMemory *mem, uint64_t pfn,
                      const PageDesc *d, GError **errp)
{
    uint32_t bs = img->kd.block_size;
    uint8_t *dst = guest_memory_ptr(mem, pfn * bs, bs);
    const char *why = "corrupt data or wrong size";

    if (!desc_check(img, d, pfn, errp)) {
        return false;
    }
    if (!dst) {
        return bad(img, errp, "guest RAM does not cover PFN 0x%" PRIx64, pfn);
    }
    pr->min_off = MIN(pr->min_off, d->offset);
    if (!d->flags && d->offset == pr->zero_off) {
        return true;                            /* guest RAM starts zeroed */
    }
    const uint8_t *src = page_data(img, pr, d, errp);
    if (!src) {
        return false;
    }
    if (!d->flags) {
        if (buffer_is_zero(src, bs)) {
            pr->zero_off = d->offset;
        } else {
            memcpy(dst, src, bs);
        }
        return true;
    }
    if (!page_decompress(pr, d, src, dst, bs, &why)) {
        return bad(img, errp, "the page of PFN 0x%" PRIx64 " (flags 0x%x) does not decompress "
                   "to %u bytes: %s", pfn, d->flags, bs, why);
    }
    return true;
}

/* Descriptors are read 1 MiB at a time, in the order of the 2nd bitmap. */
static bool kdump_load_pages(VmcoreImage *img, PageReader *pr, GuestMemory *mem, GError **errp)
{
    const KdumpInfo *kd = &img->kd;
    const uint64_t per_batch = IO_BATCH / PAGE_DESC_SIZE;
    g_autofree uint8_t *descs = g_malloc(per_batch * PAGE_DESC_SIZE);
    uint64_t pfn = bitmap_next(kd->bitmap2, kd->max_mapnr, 0, true);

    for (uint64_t idx = 0; idx < kd->ndumpable;) {
        uint64_t n = MIN(per_batch, kd->ndumpable - idx);
        if (!src_read(img, descs, n * PAGE_DESC_SIZE, kd->desc_off + idx * PAGE_DESC_SIZE,
                      errp)) {
            return false;
        }
        for (uint64_t j = 0; j < n; j++, idx++) {
            PageDesc d = page_desc(descs + j * PAGE_DESC_SIZE);
            if (!page_load(img, pr, mem, pfn, &d, errp)) {
                return false;
            }
            pfn = bitmap_next(kd->bitmap2, kd->max_mapnr, pfn + 1, true);
        }
    }
    return true;
}

/* Writers put page data right after the descriptor table, optionally led by
 * one shared zero page; anything else means the bitmap miscounts them. */
static bool kdump_check_data_start(VmcoreImage *img, const PageReader *pr, GError **errp)
{
    const KdumpInfo *kd = &img->kd;

    if (kd->ndumpable && pr->min_off != kd->data_off &&
        pr->min_off != kd->data_off + kd->block_size) {
        return bad(img, errp, "page data starts at 0x%" PRIx64 ", not where the descriptor "
                   "table ends (0x%" PRIx64 "): the bitmaps disagree with the descriptors",
                   pr->min_off, kd->data_off);
    }
    return true;
}

static bool kdump_read_memory(VmcoreImage *img, GuestMemory *mem, GError **errp)
{
    PageReader pr = { .zero_off = ALL_ONES, .min_off = ALL_ONES };
    bool ok;

#if CONFIG_LZO
    if (lzo_init() != LZO_E_OK) {
        return bad(img, errp, "cannot initialise lzo");
    }
#endif
#if CONFIG_ZSTD
    pr.zstd = ZSTD_createDCtx();
    if (!pr.zstd) {
        return bad(img, errp, "cannot create a zstd context");
    }
#endif
    pr.window = g_malloc(DATA_WINDOW);
    pr.scratch = g_malloc(img->kd.block_size);
    ok = kdump_load_pages(img, &pr, mem, errp) && kdump_check_data_start(img, &pr, errp);
#if CONFIG_ZSTD
    ZSTD_freeDCtx(pr.zstd);
#endif
    g_free(pr.window);
    g_free(pr.scratch);
    return ok;
}

/* ---- the API ---- */

static bool vmcore_detect(VmcoreImage *img, GError **errp)
{
    uint8_t magic[16] = { 0 };

    if (img->file_size < 16) {
        return bad(img, errp, "truncated: too short to be a vmcore (%" PRIu64 " bytes)",
                   img->file_size);
    }
    if (!pread_full(img->fd, magic, sizeof(magic), 0, img->path, errp)) {
        return false;
    }
    if (memcmp(magic, FLAT_SIGNATURE, sizeof(FLAT_SIGNATURE)) == 0) {
        if (!flat_open(img, errp)) {
            return false;
        }
        memset(magic, 0, sizeof(magic));
        if (!src_read(img, magic, MIN(img->size, sizeof(magic)), 0, errp)) {
            return false;
        }
    }
    if (memcmp(magic, ELFMAG, SELFMAG) == 0) {
        return elf_open(img, errp);
    }
    if (memcmp(magic, KDUMP_SIGNATURE, 8) == 0) {
        return kdump_open(img, errp);
    }
    return bad(img, errp, "not a vmcore: no ELF, KDUMP or makedumpfile signature");
}

static bool vmcore_open_file(VmcoreImage *img, GError **errp)
{
    struct stat st;

    img->fd = open(img->path, O_RDONLY | O_CLOEXEC);
    if (img->fd < 0) {
        error_setg_errno(errp, errno, "%s: cannot open", img->path);
        return false;
    }
    if (fstat(img->fd, &st) < 0) {
        error_setg_errno(errp, errno, "%s: cannot stat", img->path);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        return bad(img, errp, "not a regular file");
    }
    img->file_size = img->size = (uint64_t)st.st_size;
    return true;
}

VmcoreImage *vmcore_open(const char *path, GError **errp)
{
    VmcoreImage *img = g_new0(VmcoreImage, 1);

    img->path = g_strdup(path);
    img->fd = -1;
    img->blocks = g_array_new(FALSE, FALSE, sizeof(VmcoreBlock));
    img->cpus = g_array_new(FALSE, FALSE, sizeof(X86CPUState));
    img->qemu_notes = g_array_new(FALSE, FALSE, sizeof(const uint8_t *));
    if (!vmcore_open_file(img, errp) || !vmcore_detect(img, errp)) {
        vmcore_close(img);
        return NULL;
    }
    return img;
}

void vmcore_close(VmcoreImage *img)
{
    if (!img) {
        return;
    }
    if (img->fd >= 0) {
        close(img->fd);
    }
    if (img->flat) {
        g_array_free(img->flat, TRUE);
    }
    if (img->extents) {
        g_array_free(img->extents, TRUE);
    }
    if (img->guest_note) {
        g_bytes_unref(img->guest_note);
    }
    g_array_free(img->blocks, TRUE);
    g_array_free(img->cpus, TRUE);
    g_array_free(img->qemu_notes, TRUE);
    g_free(img->kd.bitmap2);
    g_free(img->path);
    g_free(img);
}

guint vmcore_block_count(const VmcoreImage *img)
{
    return img->blocks->len;
}

VmcoreBlock vmcore_block(const VmcoreImage *img, guint i)
{
    g_assert(i < img->blocks->len);
    return g_array_index(img->blocks, VmcoreBlock, i);
}

guint vmcore_cpu_count(const VmcoreImage *img)
{
    return img->cpus->len;
}

const X86CPUState *vmcore_cpu(const VmcoreImage *img, guint i)
{
    g_assert(i < img->cpus->len);
    return &g_array_index(img->cpus, X86CPUState, i);
}

/* Borrowed: valid until vmcore_close(); g_bytes_ref() it to keep it longer. */
GBytes *vmcore_guest_note(const VmcoreImage *img)
{
    return img->guest_note;
}

/*
 * Anonymous guest RAM starts zeroed, and pages never written stay absent: they take
 * no memory, and a later dump knows them to be zero from /proc/self/pagemap without
 * reading them. So zero pages are never written into it, and it is kept off
 * transparent huge pages, which would make the zero pages around every written
 * page present too. RAM in a -mem-path file is zeroed first.
 */
bool vmcore_read_memory(VmcoreImage *img, GuestMemory *mem, GError **errp)
{
    for (guint i = 0; i < guest_memory_count(mem); i++) {
        RamBlock *b = guest_memory_block(mem, i);
        if (b->anonymous) {
            if (madvise(b->host, b->size, MADV_NOHUGEPAGE) < 0) {
                /* a kernel without THP: nothing to turn off */
            }
            b->huge = false;
        } else if (fallocate(mem->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                             (off_t)b->offset, (off_t)b->size) < 0) {
            /* A -mem-path file may hold an earlier guest: its block starts zeroed
             * too (a hole, or written over where holes are not supported), so
             * that nothing of it shows where the vmcore has zeros or no page. */
            memset(b->host, 0, b->size);
        }
    }
    if (img->format == VMCORE_ELF) {
        return elf_read_memory(img, mem, errp);
    }
    return kdump_read_memory(img, mem, errp);
}
