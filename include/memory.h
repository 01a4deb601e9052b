/* Guest RAM: a list of blocks, each a guest-physical range backed by a host mapping. */
#ifndef MINIVM_MEMORY_H
#define MINIVM_MEMORY_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct RamBlock {
    char *name;
    uint64_t gpa;      /* guest-physical start */
    uint64_t size;     /* bytes, a multiple of the page size */
    uint8_t *host;     /* host mapping of the whole block */
    uint64_t offset;   /* offset of this block in the -mem-path file */
    bool anonymous;    /* private anonymous memory: untouched pages read as zeros */
    bool huge;         /* anonymous and asked to be on transparent huge pages */
} RamBlock;

typedef struct GuestMemory {
    GPtrArray *blocks; /* RamBlock *, ascending gpa, never overlapping */
    int fd;            /* -mem-path file, or -1 */
    uint64_t file_used;
} GuestMemory;

#define GUEST_PAGE_SIZE 4096ULL
#define G_GiB (1ULL << 30)
#define PC_BELOW_4G_SPLIT_THRESHOLD (0xe0000000ULL) /* 3.5 GiB */
#define PC_BELOW_4G_SIZE (0xc0000000ULL)            /* 3 GiB */

/* An empty memory map; mem_path (may be NULL) backs every block added later. */
GuestMemory *guest_memory_new(const char *mem_path, GError **errp);
void guest_memory_free(GuestMemory *mem);

/* Map a new zeroed block. Blocks must be added in ascending gpa order. */
RamBlock *guest_memory_add(GuestMemory *mem, const char *name, uint64_t gpa,
                           uint64_t size, GError **errp);

/* Lay out RAM of `size` bytes like QEMU's pc machine. */
bool guest_memory_add_pc_ram(GuestMemory *mem, uint64_t size, GError **errp);

guint guest_memory_count(const GuestMemory *mem);
RamBlock *guest_memory_block(const GuestMemory *mem, guint i);
uint64_t guest_memory_end(const GuestMemory *mem);
uint64_t guest_memory_total(const GuestMemory *mem);

/* Host pointer for [gpa, gpa+len) if it lies wholly inside one block, else NULL. */
void *guest_memory_ptr(const GuestMemory *mem, uint64_t gpa, uint64_t len);

/* Copy guest-physical memory; fails naming the first address that is not RAM. */
bool guest_memory_read(const GuestMemory *mem, uint64_t gpa, void *buf, uint64_t len,
                       GError **errp);

/*
 * How code that interprets guest data (page-table walks, the dump's reads of
 * kernel structures) gets its bytes: RAM as it is now (read NULL), or through
 * `read`, which a live dump gives to see memory as it was at the dump's instant.
 * `mem` gives the layout either way.
 */
typedef struct GuestReader {
    const GuestMemory *mem;
    bool (*read)(void *opaque, uint64_t gpa, void *buf, uint64_t len);
    void *opaque;
} GuestReader;

/* Copy [gpa, gpa+len) through the reader; false when any of it is not RAM. */
bool guest_reader_read(const GuestReader *r, uint64_t gpa, void *buf, uint64_t len);

#endif
