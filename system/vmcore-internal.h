/*
 * Internals shared by the vmcore readers: the common part (system/vmcore.c:
 * detection, the logical file, the memory map, loading into guest RAM), the
 * vCPU notes (vmcore_notes.c) and one reader per format (vmcore_elf.c,
 * vmcore_kdump.c, vmcore_flat.c), as dump/ keeps one writer per format.
 * The layouts are described in docs/formats.md. x86 dumps are little-endian,
 * like the hosts this runs on, so fields are read by memcpy.
 */
#ifndef MINIVM_VMCORE_INTERNAL_H
#define MINIVM_VMCORE_INTERNAL_H

#include "vmcore.h"

#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the vmcore readers read little-endian dumps on a little-endian host"
#endif

#define VMCORE_MAX_GPA      (1ULL << 40)  /* guest RAM must end at or below 1 TiB */
#define VMCORE_MAX_NOTES    (16u << 20)   /* a note segment or the kdump note area */
#define IO_BATCH            (1u << 20)    /* program headers, descriptors, flat scan */
#define ALL_ONES            UINT64_MAX

#define FLAT_SIGNATURE      "makedumpfile"
#define KDUMP_SIGNATURE     "KDUMP   "

typedef enum { VMCORE_ELF, VMCORE_KDUMP } VmcoreFormat;

typedef struct KdumpInfo {
    uint32_t block_size;
    uint64_t max_mapnr;
    uint64_t desc_off;      /* page_desc table */
    uint64_t data_off;      /* end of that table: page data starts here */
    uint64_t ndumpable;     /* set bits of the 2nd bitmap */
    uint64_t nexcluded;     /* present (1st bitmap) but not dumped: a dump level left them out */
    uint32_t dump_level;    /* the sub-header's */
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

/* ---- little helpers ---- */

static inline uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static inline bool range_fits(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

/* ---- the common part (vmcore.c) ---- */

/* A one-line error naming the file; always returns false. */
bool vmcore_fail(const VmcoreImage *img, GError **errp, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Read [off, off+len) of the logical file (reassembled if it is flattened). */
bool vmcore_read_at(const VmcoreImage *img, void *buf, uint64_t len, uint64_t off,
                    GError **errp);

/* The same into a zeroed buffer: holes of a sparse file and gaps between flattened
 * records are left alone. */
bool vmcore_read_sparse(const VmcoreImage *img, uint8_t *buf, uint64_t len, uint64_t off,
                        GError **errp);

/* Add guest-physical [start, end), widened to whole pages, to the RAM blocks;
 * calls come in ascending order of start. */
void vmcore_map_add(VmcoreImage *img, uint64_t start, uint64_t end);

/* ---- vCPU notes (vmcore_notes.c) ---- */

/* Read a note stream of the logical file and parse it: NT_PRSTATUS and QEMU notes
 * become vCPUs, the first VMCOREINFO note is kept. The buffer is added to `keep`,
 * to be freed after vmcore_cpus_finish(). */
bool vmcore_notes_read(VmcoreImage *img, uint64_t off, uint64_t len, const char *where,
                       GPtrArray *keep, GError **errp);

/* Pair the QEMU notes with the vCPUs and complete their state. */
bool vmcore_cpus_finish(VmcoreImage *img, GError **errp);

/* ---- the formats ---- */

/* makedumpfile's flattened records (vmcore_flat.c): index them, so that
 * img->size and vmcore_read_at() serve the reassembled file. */
bool vmcore_flat_open(VmcoreImage *img, GError **errp);
bool vmcore_flat_read(const VmcoreImage *img, uint8_t *buf, uint64_t len, uint64_t off,
                      bool dest_zeroed, GError **errp);

/* ELF cores (vmcore_elf.c). */
bool vmcore_elf_open(VmcoreImage *img, GError **errp);
bool vmcore_elf_load(VmcoreImage *img, GuestMemory *mem, GError **errp);

/* kdump-compressed files (vmcore_kdump.c). */
bool vmcore_kdump_open(VmcoreImage *img, GError **errp);
bool vmcore_kdump_load(VmcoreImage *img, GuestMemory *mem, GError **errp);

#endif
