/*
 * Reading vmcores back (-load-vmcore): the common part of the readers. It opens
 * the file, tells the format by its signature (a makedumpfile flattened file is
 * indexed first and its reassembled content told again), serves reads of the
 * logical file, keeps the memory map and loads guest RAM; the formats are read
 * by vmcore_elf.c and vmcore_kdump.c, the flattened records by vmcore_flat.c,
 * the vCPU notes by vmcore_notes.c (docs/architecture.md, docs/formats.md).
 *
 * Headers, notes and the memory map are parsed at open; the memory is read by
 * vmcore_read_memory() in large batches, straight into guest RAM.
 */
#include "vmcore-internal.h"
#include "util.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors ---- */

bool vmcore_fail(const VmcoreImage *img, GError **errp, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(errp, "%s: %s", img->path, msg);
    return false;
}

/* ---- the logical file: plain, or reassembled from flattened records ---- */

bool vmcore_read_at(const VmcoreImage *img, void *buf, uint64_t len, uint64_t off, GError **errp)
{
    if (!range_fits(off, len, img->size)) {
        return vmcore_fail(img, errp, "unexpected end of file at offset 0x%" PRIx64, off);
    }
    if (img->flat) {
        return vmcore_flat_read(img, buf, len, off, false, errp);
    }
    return pread_full(img->fd, buf, len, (off_t)off, img->path, errp);
}

/* A plain file into a zeroed destination: its holes are skipped. */
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

bool vmcore_read_sparse(const VmcoreImage *img, uint8_t *buf, uint64_t len, uint64_t off,
                        GError **errp)
{
    if (!range_fits(off, len, img->size)) {
        return vmcore_fail(img, errp, "unexpected end of file at offset 0x%" PRIx64, off);
    }
    if (img->flat) {
        return vmcore_flat_read(img, buf, len, off, true, errp);
    }
    return plain_read_sparse(img, buf, len, off, errp);
}

/* ---- detection ---- */

static bool vmcore_detect(VmcoreImage *img, GError **errp)
{
    uint8_t magic[16] = { 0 };

    if (img->file_size < 16) {
        return vmcore_fail(img, errp, "truncated: too short to be a vmcore (%" PRIu64 " bytes)",
                           img->file_size);
    }
    if (!pread_full(img->fd, magic, sizeof(magic), 0, img->path, errp)) {
        return false;
    }
    if (memcmp(magic, FLAT_SIGNATURE, sizeof(FLAT_SIGNATURE)) == 0) {
        if (!vmcore_flat_open(img, errp)) {
            return false;
        }
        memset(magic, 0, sizeof(magic));
        if (!vmcore_read_at(img, magic, MIN(img->size, sizeof(magic)), 0, errp)) {
            return false;
        }
    }
    if (memcmp(magic, ELFMAG, SELFMAG) == 0) {
        return vmcore_elf_open(img, errp);
    }
    if (memcmp(magic, KDUMP_SIGNATURE, 8) == 0) {
        return vmcore_kdump_open(img, errp);
    }
    return vmcore_fail(img, errp, "not a vmcore: no ELF, KDUMP or makedumpfile signature");
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
        return vmcore_fail(img, errp, "not a regular file");
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

/* ---- the memory map and the vCPUs ---- */

void vmcore_map_add(VmcoreImage *img, uint64_t start, uint64_t end)
{
    GArray *blocks = img->blocks;

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
uint64_t vmcore_excluded_pages(const VmcoreImage *img, uint32_t *dump_level)
{
    bool kdump = img->format == VMCORE_KDUMP;

    *dump_level = kdump ? img->kd.dump_level : 0;
    return kdump ? img->kd.nexcluded : 0;
}

GBytes *vmcore_guest_note(const VmcoreImage *img)
{
    return img->guest_note;
}

/* ---- loading into guest RAM ---- */

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
        return vmcore_elf_load(img, mem, errp);
    }
    return vmcore_kdump_load(img, mem, errp);
}
