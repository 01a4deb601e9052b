/*
 * Live dumps: guest RAM as it was at one instant, while the guest runs on.
 *
 * With the vCPUs stopped, every page of guest RAM is write-protected through
 * userfaultfd (uffd-wp); the vCPUs then run again. A first write to a page the
 * dump has not read yet blocks the writer (a vCPU, KVM on its behalf, or minivm
 * itself) in the kernel and reaches the tracker's handler thread, which copies
 * the page's old bytes into a bounded pool, then unprotects the page and so lets
 * the write go on. The dump reads every page through live_read(): the saved copy
 * where there is one, else guest RAM, still protected and so unchanged. Behind
 * the dump, pages are unprotected and their copies freed (live_release). When
 * the pool is full, the handler waits for the dump to free a copy, and the
 * writing vCPU waits with it: memory stays bounded, and no page is torn.
 */
#ifndef MINIVM_DUMP_LIVE_H
#define MINIVM_DUMP_LIVE_H

#include "dump-internal.h"

#define LIVE_POOL_DEFAULT (64ULL << 20)

/* Can guest RAM be write-protected? Errors name the reason (kernel, memory type,
 * permission). Nothing stays registered afterwards. */
bool live_available(const GuestMemory *mem, GError **errp);

/* While the guest runs: register guest RAM, make the pages the kernel would skip
 * present, and start the handler thread. `ranges` (DumpRange, ascending) are what
 * the dump writes; before its first live_release() it may read anywhere (page
 * tables, kernel data), after it only in its ranges. Nothing is protected yet. */
LiveTracker *live_tracker_new(const GuestMemory *mem, const GArray *ranges, uint64_t pool_bytes,
                              GError **errp);
/* With the vCPUs stopped: write-protect all of guest RAM. From here on, guest RAM
 * as live_read() returns it stays as it is now. */
bool live_tracker_arm(LiveTracker *t, GError **errp);
/* Copy [gpa, gpa + len) as it was when armed; false when some of it is not RAM.
 * Safe from any thread, for pages the dump has not released. */
bool live_read(LiveTracker *t, uint64_t gpa, void *dst, uint64_t len);
/* Has the page at gpa been copied aside (the guest has written it since the instant)?
 * Anything read about the page before this call is ordered before it. */
bool live_saved(LiveTracker *t, uint64_t gpa);
/* The dump has read every page below `gpa` in its ranges, and will read nothing
 * outside them: drop those copies and unprotect those pages. Called from one
 * thread, in ascending order. */
void live_release(LiveTracker *t, uint64_t gpa);
/* The first error of the handler thread, if any (the dump then fails). */
bool live_check(LiveTracker *t, GError **errp);
DumpLiveStats live_stats(LiveTracker *t);
/* Unprotect everything, wake every blocked writer, stop the thread, close. */
void live_tracker_free(LiveTracker *t);

#endif
