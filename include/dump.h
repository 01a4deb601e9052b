/*
 * The guest-memory dump subsystem: the API a VMM embeds.
 *
 * A DumpState belongs to one VM. dump_guest_memory() checks a request with
 * QEMU's rules, stops the VM, snapshots RAM blocks, vCPU registers and guest
 * notes, and writes an ELF core or a kdump-compressed vmcore to a file or fd,
 * synchronously or on a thread (detach). Progress is polled with dump_query();
 * the end is reported through the completion callback (QMP's DUMP_COMPLETED).
 */
#ifndef MINIVM_DUMP_H
#define MINIVM_DUMP_H

#include "vm.h"

typedef enum {
    DUMP_FORMAT_ELF,
    DUMP_FORMAT_KDUMP_ZLIB,
    DUMP_FORMAT_KDUMP_LZO,
    DUMP_FORMAT_KDUMP_SNAPPY,
    DUMP_FORMAT_WIN_DMP,
    DUMP_FORMAT_KDUMP_RAW_ZLIB,
    DUMP_FORMAT_KDUMP_RAW_LZO,
    DUMP_FORMAT_KDUMP_RAW_SNAPPY,
    DUMP_FORMAT_KDUMP_ZSTD,
    DUMP_FORMAT_KDUMP_RAW_ZSTD,
    DUMP_FORMAT__MAX,
} DumpFormat;

typedef enum {
    DUMP_STATUS_NONE,
    DUMP_STATUS_ACTIVE,
    DUMP_STATUS_COMPLETED,
    DUMP_STATUS_FAILED,
} DumpStatus;

const char *dump_format_name(DumpFormat f);
const char *dump_status_name(DumpStatus s);
/* Whether this build can write the format. */
bool dump_format_available(DumpFormat f);

typedef struct DumpRequest {
    bool paging;
    const char *protocol;      /* "file:PATH" or "fd:NAME" */
    bool detach;
    bool has_begin, has_length;
    int64_t begin, length;
    DumpFormat format;
    bool live;                 /* minivm: the guest runs on during the dump */
    bool has_live_pool;
    int64_t live_pool;         /* bytes of saved pages at most (default 64 MiB) */
    bool has_dump_level;       /* minivm: makedumpfile's -d, 0..31 (kdump formats) */
    int64_t dump_level;
} DumpRequest;

/* What a live dump cost the guest (see dump/live.h). */
typedef struct DumpLiveStats {
    uint64_t saved;            /* pages copied before the guest's first write to them */
    uint64_t waits;            /* writes that waited for room in the pool */
    uint64_t pool_pages;       /* the pool's size */
    uint64_t peak;             /* most pages in the pool at once */
} DumpLiveStats;

/* Where a dump's VMCOREINFO came from. */
typedef enum {
    DUMP_VMCOREINFO_NONE,          /* none: the guest published none, none was found */
    DUMP_VMCOREINFO_NOTE,          /* the guest's note (a restored vmcore's) */
    DUMP_VMCOREINFO_GUEST_MEMORY,  /* the kernel's own note, found in guest RAM */
} DumpVmcoreinfoSource;

const char *dump_vmcoreinfo_source_name(DumpVmcoreinfoSource s);

typedef struct DumpProgress {
    DumpStatus status;
    uint64_t completed;
    uint64_t total;
    bool live;                 /* the dump is (was) live: live_stats is set */
    DumpLiveStats live_stats;
    DumpVmcoreinfoSource vmcoreinfo;   /* of the current or last dump */
    uint64_t vmcoreinfo_addr;          /* DUMP_VMCOREINFO_GUEST_MEMORY: where */
} DumpProgress;

/* Resolves "fd:NAME" to an fd the dump will own and close. */
typedef int (*DumpGetFdFn)(void *opaque, const char *name, GError **errp);
/* Called from the main context when a dump ends; err is NULL on success. */
typedef void (*DumpCompletedFn)(void *opaque, const DumpProgress *result, const GError *err);

typedef struct DumpState DumpState;

DumpState *dump_state_new(VM *vm);
void dump_state_free(DumpState *ds);
void dump_set_completion(DumpState *ds, DumpCompletedFn fn, void *opaque);
/* Worker threads for compression (0: online CPUs). */
void dump_set_threads(DumpState *ds, guint threads);

bool dump_guest_memory(DumpState *ds, const DumpRequest *req, DumpGetFdFn get_fd,
                       void *get_fd_opaque, GError **errp);
DumpProgress dump_query(DumpState *ds);
bool dump_in_progress(DumpState *ds);
/* Cancel a running detached dump (minivm's dump-cancel). */
bool dump_cancel(DumpState *ds, GError **errp);
/* Could a live dump of this VM's memory be taken? false with the reason. */
bool dump_live_available(DumpState *ds, GError **errp);

#endif
