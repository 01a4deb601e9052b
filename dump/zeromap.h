/*
 * Zero pages found without reading them. A page of private anonymous memory
 * that is neither present nor swapped out (/proc/self/pagemap bits 63 and 62)
 * has never been written: it reads as zeros. So does one that maps the zero
 * page or the huge zero page (a page only ever read: by KVM for the guest, or
 * by a live dump making pages present), whose frame numbers are learnt once,
 * and only trusted when /proc/kpageflags confirms them (root). The dump asks
 * this first and scans only the pages that hold memory; where pagemap is
 * unavailable (or for file-backed RAM) every page is scanned.
 */
#ifndef MINIVM_DUMP_ZEROMAP_H
#define MINIVM_DUMP_ZEROMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZEROMAP_WINDOW 4096        /* pagemap entries read at a time (32 KiB) */

typedef struct ZeroMap {
    int fd;                        /* /proc/self/pagemap, or -1 */
    uint64_t zero_pfn;             /* the zero page's frame, or 0 when not known */
    uint64_t huge_zero_pfn;        /* the huge zero page's first frame, or 0 */
    uint64_t first;                /* virtual page number of entries[0] */
    size_t count;                  /* valid entries */
    uint64_t entries[ZEROMAP_WINDOW];
} ZeroMap;

void zeromap_init(ZeroMap *z);
void zeromap_destroy(ZeroMap *z);
/* True when the page at `page` (page aligned, private anonymous memory) is
 * known to be zero without reading it; false means "scan it". */
bool zeromap_page_known_zero(ZeroMap *z, const void *page);

#endif
