/* Guest RAM blocks: anonymous mappings, or shared mappings of a -mem-path file. */
#include "memory.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

GuestMemory *guest_memory_new(const char *mem_path, GError **errp)
{
    GuestMemory *mem = g_new0(GuestMemory, 1);

    mem->blocks = g_ptr_array_new();
    mem->fd = -1;
    if (mem_path) {
        mem->fd = open(mem_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (mem->fd < 0 && errno == EISDIR) {
            /* as QEMU: a directory (say /dev/hugepages) gets a file of its own */
            g_autofree char *tmpl = g_build_filename(mem_path, "minivm_back_mem.XXXXXX", NULL);
            mem->fd = g_mkstemp_full(tmpl, O_RDWR | O_CLOEXEC, 0600);
            if (mem->fd >= 0 && unlink(tmpl) < 0) {
                error_setg_errno(errp, errno, "can't unlink %s", tmpl);
                guest_memory_free(mem);
                return NULL;
            }
        }
        if (mem->fd < 0) {
            error_setg_errno(errp, errno, "can't open backing store %s for guest RAM", mem_path);
            guest_memory_free(mem);
            return NULL;
        }
    }
    return mem;
}

static void ram_block_free(RamBlock *b)
{
    if (b->host) {
        munmap(b->host, b->size);
    }
    g_free(b->name);
    g_free(b);
}

void guest_memory_free(GuestMemory *mem)
{
    if (!mem) {
        return;
    }
    for (guint i = 0; i < mem->blocks->len; i++) {
        ram_block_free(g_ptr_array_index(mem->blocks, i));
    }
    g_ptr_array_free(mem->blocks, TRUE);
    if (mem->fd >= 0) {
        close(mem->fd);
    }
    g_free(mem);
}

static uint8_t *map_block(GuestMemory *mem, uint64_t size, uint64_t *offset, GError **errp)
{
    void *p;

    if (mem->fd < 0) {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    } else {
        /* Grow the file to hold this block, never shrink it: the blocks follow each
         * other in the file, and a file made to hold all of RAM keeps its contents. */
        struct stat st;
        *offset = mem->file_used;
        if (fstat(mem->fd, &st) < 0) {
            error_setg_errno(errp, errno, "can't stat backing store for guest RAM");
            return NULL;
        }
        if ((uint64_t)st.st_size < mem->file_used + size &&
            ftruncate(mem->fd, (off_t)(mem->file_used + size)) < 0) {
            error_setg_errno(errp, errno, "can't resize backing store for guest RAM");
            return NULL;
        }
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mem->fd, (off_t)*offset);
    }
    if (p == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot set up guest memory '%s'",
                         "pc.ram");
        return NULL;
    }
    if (mem->fd >= 0) {
        mem->file_used += size;
    }
    return p;
}

RamBlock *guest_memory_add(GuestMemory *mem, const char *name, uint64_t gpa,
                           uint64_t size, GError **errp)
{
    uint64_t end = guest_memory_end(mem);

    if (size == 0 || size % GUEST_PAGE_SIZE || gpa % GUEST_PAGE_SIZE) {
        error_setg(errp, "RAM block '%s' is not page aligned", name);
        return NULL;
    }
    if (mem->blocks->len && gpa < end) {
        error_setg(errp, "RAM block '%s' at 0x%" PRIx64 " overlaps or precedes the previous block",
                   name, gpa);
        return NULL;
    }
    RamBlock *b = g_new0(RamBlock, 1);
    b->host = map_block(mem, size, &b->offset, errp);
    if (!b->host) {
        g_free(b);
        return NULL;
    }
    b->name = g_strdup(name);
    b->anonymous = mem->fd < 0;
    b->huge = madvise(b->host, size, MADV_HUGEPAGE) == 0 && b->anonymous;
    b->gpa = gpa;
    b->size = size;
    g_ptr_array_add(mem->blocks, b);
    return b;
}

bool guest_memory_add_pc_ram(GuestMemory *mem, uint64_t size, GError **errp)
{
    if (size < PC_BELOW_4G_SPLIT_THRESHOLD) {
        return guest_memory_add(mem, "pc.ram", 0, size, errp) != NULL;
    }
    return guest_memory_add(mem, "ram-below-4g", 0, PC_BELOW_4G_SIZE, errp) &&
           guest_memory_add(mem, "ram-above-4g", 4 * G_GiB, size - PC_BELOW_4G_SIZE, errp);
}

guint guest_memory_count(const GuestMemory *mem)
{
    return mem->blocks->len;
}

RamBlock *guest_memory_block(const GuestMemory *mem, guint i)
{
    return g_ptr_array_index(mem->blocks, i);
}

uint64_t guest_memory_end(const GuestMemory *mem)
{
    if (!mem->blocks->len) {
        return 0;
    }
    RamBlock *last = g_ptr_array_index(mem->blocks, mem->blocks->len - 1);
    return last->gpa + last->size;
}

uint64_t guest_memory_total(const GuestMemory *mem)
{
    uint64_t total = 0;

    for (guint i = 0; i < mem->blocks->len; i++) {
        total += guest_memory_block(mem, i)->size;
    }
    return total;
}

static RamBlock *find_block(const GuestMemory *mem, uint64_t gpa)
{
    for (guint i = 0; i < mem->blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(mem->blocks, i);
        if (gpa >= b->gpa && gpa - b->gpa < b->size) {
            return b;
        }
    }
    return NULL;
}

void *guest_memory_ptr(const GuestMemory *mem, uint64_t gpa, uint64_t len)
{
    RamBlock *b = find_block(mem, gpa);

    if (!b || len > b->size - (gpa - b->gpa)) {
        return NULL;
    }
    return b->host + (gpa - b->gpa);
}

bool guest_memory_read(const GuestMemory *mem, uint64_t gpa, void *buf, uint64_t len,
                       GError **errp)
{
    uint8_t *out = buf;

    while (len) {
        RamBlock *b = find_block(mem, gpa);
        if (!b) {
            error_setg(errp, "Invalid addr 0x%016" PRIx64 "/size %" PRIu64 " specified",
                       gpa, len);
            return false;
        }
        uint64_t n = MIN(len, b->size - (gpa - b->gpa));
        memcpy(out, b->host + (gpa - b->gpa), n);
        out += n;
        gpa += n;
        len -= n;
    }
    return true;
}

bool guest_reader_read(const GuestReader *r, uint64_t gpa, void *buf, uint64_t len)
{
    return r->read ? r->read(r->opaque, gpa, buf, len)
                   : guest_memory_read(r->mem, gpa, buf, len, NULL);
}
