/*
 * What a dump takes from the guest kernel: its VMCOREINFO note (the one the guest
 * published, else the kernel's own found in guest RAM) and, for a dump level, the
 * page filter. Looked for before the VM stops, so that a level that cannot be
 * applied is refused with the guest still running; taken again after it stops,
 * through the reader the dump sees memory with.
 */
#ifndef MINIVM_DUMP_GUEST_KERNEL_H
#define MINIVM_DUMP_GUEST_KERNEL_H

#include "dump-internal.h"

/* The last search of guest memory: its result stands while the guest has not run since
 * a search made with the guest stopped; where it found the note is tried first anyway. */
typedef struct VmcoreinfoMemo {
    bool stands;                   /* made with the guest stopped */
    uint64_t resumes;              /* vm->resumes then */
    bool found;
    uint64_t gpa;                  /* where the note was */
} VmcoreinfoMemo;

typedef struct GuestKernel {
    DumpVmcoreinfoSource source;
    uint64_t gpa;                  /* DUMP_VMCOREINFO_GUEST_MEMORY: where the note is */
    GBytes *note;                  /* the VMCOREINFO ELF note, or NULL */
} GuestKernel;

/* The note, and the request's dump level checked against it; memo (zeroed at first)
 * is updated. */
bool guest_kernel_find(VM *vm, const DumpRequest *req, VmcoreinfoMemo *memo, GuestKernel *k,
                       GError **errp);
/* The note and the filter of the request's level, read through job->reader. */
bool guest_kernel_attach(const GuestKernel *k, const DumpRequest *req, DumpJob *job,
                         GError **errp);
void guest_kernel_clear(GuestKernel *k);

#endif
