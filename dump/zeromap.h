/*
 * Zero pages found without reading them. A page of private anonymous memory
 * that is neither present nor swapped out (/proc/self/pagemap bits 63 and 62)
 * has never been written: it reads as zeros. The dump asks this first and
 * scans only the pages that exist; where pagemap is unavailable (or for
 * file-backed RAM) every page is scanned.
 */
#ifndef MINIVM_DUMP_ZEROMAP_H
#define MINIVM_DUMP_ZEROMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZEROMAP_WINDOW 4096        /* pagemap entries read at a time (32 KiB) */

typedef struct ZeroMap {
    int fd;                        /* /proc/self/pagemap, or -1 */
    uint64_t first;                /* virtual page number of entries[0] */
    size_t count;                  /* valid entries */
    uint64_t entries[ZEROMAP_WINDOW];
} ZeroMap;

void zeromap_init(ZeroMap *z);
void zeromap_destroy(ZeroMap *z);
/* True when the page at `page` (page aligned, private anonymous memory) is
 * known to be zero without reading it; false means "scan it". */
bool zeromap_page_absent(ZeroMap *z, const void *page);
/* The usual test: absent, or all zero bytes (anon says whether pagemap applies). */
bool zeromap_page_is_zero(ZeroMap *z, const uint8_t *page, size_t size, bool anon);

#endif
