/*
 * makedumpfile's dump levels (-d), decided by minivm while it dumps: which page
 * frames of a Linux guest a kdump file leaves out, from the guest kernel's own
 * struct pages (SPARSEMEM_EXTREME + VMEMMAP), found through VMCOREINFO and the
 * kernel's page tables. Guest memory is untrusted: every read is bounded, and a
 * page whose struct page cannot be read or makes no sense is kept.
 *
 * Each thread decides runs of page frames with its own cursor, which reads the
 * struct pages of a run once (at most PAGE_FILTER_RUN at a time) plus a few
 * earlier ones: the head of a range (a free block, a compound page) that began
 * before the run and may cover its start. So decisions need no table that grows
 * with the guest and do not depend on how the frames are split among threads.
 */
#ifndef MINIVM_DUMP_PAGE_FILTER_H
#define MINIVM_DUMP_PAGE_FILTER_H

#include "memory.h"

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* makedumpfile's -d bits */
#define DUMP_LEVEL_ZERO 1
#define DUMP_LEVEL_CACHE 2
#define DUMP_LEVEL_CACHE_PRIVATE 4
#define DUMP_LEVEL_USER 8
#define DUMP_LEVEL_FREE 16
#define DUMP_LEVEL_MAX 31

/* Page frames decided per struct page read; longer runs are split. */
#define PAGE_FILTER_RUN 256

typedef struct PageFilter PageFilter;
typedef struct PageFilterCursor PageFilterCursor;

/*
 * The filter for `level` on a guest whose VMCOREINFO text is `vmcoreinfo` (NULL
 * when there is none), reading guest memory through `r` (kept: it must outlive
 * the filter). *out is NULL when the level asks nothing of struct pages (0; 1 on
 * kernels without PG_hwpoison): zero pages the writer finds itself. False, with
 * a message naming what is missing, when the level cannot be applied.
 */
bool page_filter_new(unsigned level, const char *vmcoreinfo, size_t len, const GuestReader *r,
                     PageFilter **out, GError **errp);
void page_filter_free(PageFilter *f);

PageFilterCursor *page_filter_cursor_new(const PageFilter *f);
void page_filter_cursor_free(PageFilterCursor *c);
/* excluded[i]: whether the dump leaves out page frame pfns[i] (pfns ascending). */
void page_filter_decide(PageFilterCursor *c, const uint64_t *pfns, size_t n, bool *excluded);

#endif
