/*
 * Reading vmcores back: ELF cores (QEMU's or minivm's, PN_XNUM included) and
 * kdump-compressed files (flattened or raw; zlib, lzo, snappy, zstd pages).
 * Used by -load-vmcore to restore a paused guest: RAM blocks, vCPU registers
 * and the guest's VMCOREINFO note.
 */
#ifndef MINIVM_VMCORE_H
#define MINIVM_VMCORE_H

#include "cpu.h"
#include "memory.h"

typedef struct VmcoreImage VmcoreImage;

typedef struct VmcoreBlock {
    uint64_t gpa;
    uint64_t size;
} VmcoreBlock;

/* Parse headers, notes and the memory map; every problem is a one-line error
 * naming the file and what is wrong. Memory is not read yet. */
VmcoreImage *vmcore_open(const char *path, GError **errp);
void vmcore_close(VmcoreImage *img);

/* Contiguous guest-physical RAM blocks, ascending, page aligned. */
guint vmcore_block_count(const VmcoreImage *img);
VmcoreBlock vmcore_block(const VmcoreImage *img, guint i);

/* vCPUs in file order, registers from NT_PRSTATUS and the "QEMU" note. */
guint vmcore_cpu_count(const VmcoreImage *img);
const X86CPUState *vmcore_cpu(const VmcoreImage *img, guint i);

/* The guest's VMCOREINFO ELF note (header, name and desc, as found), or NULL. */
GBytes *vmcore_guest_note(const VmcoreImage *img);

/* Pages the file says are present but holds no data for (a kdump file filtered by a
 * dump level: they restore as zeros), and the dump level its sub-header records. */
uint64_t vmcore_excluded_pages(const VmcoreImage *img, uint32_t *dump_level);

/* Copy the dumped memory into `mem`, whose blocks were created from
 * vmcore_block(); pages absent from the file stay zero. */
bool vmcore_read_memory(VmcoreImage *img, GuestMemory *mem, GError **errp);

#endif
