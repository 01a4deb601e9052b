/*
 * The live dump's write tracker (see live.h): userfaultfd write protection over
 * guest RAM, a handler thread that saves pages before the guest's first write,
 * and the bounded pool of saved pages.
 *
 * Ordering. The handler sets a page's `saved` bit (release) before it unprotects
 * the page, and the guest can write the page only after that. A reader copies the
 * page from guest RAM first and tests the bit after (acquire): if the copy saw any
 * byte the guest wrote, it also sees the bit, and takes the saved copy instead. A
 * copy is freed only once the dump has released its page, and the dump reads no
 * page it has released, so a set bit always finds its copy.
 *
 * No lock here is ever held by a thread that can block on a write fault (the
 * handler copies under the lock, but only reads guest RAM), and the handler never
 * waits for a vCPU: a blocked vCPU is woken by the handler, by live_release, or at
 * the latest by live_tracker_free.
 */
#include "live.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)    /* Linux 6.4 */
#endif

#define PAGE 4096ULL
#define HUGE_PAGE (2ULL << 20)
#define FAULT_BATCH 64

/* One RAM block, registered whole. */
typedef struct LiveArea {
    const char *name;
    uint8_t *host;
    uint64_t gpa;
    uint64_t size;
    bool anonymous;
    uint64_t unit;            /* bytes a fault saves and unprotects at once: see area_unit */
    uint64_t *saved;          /* a bit per page: its old bytes are in the pool */
} LiveArea;

struct LiveTracker {
    int uffd;
    int stop_fd;              /* eventfd: ends the handler thread */
    GThread *thread;
    LiveArea *areas;
    guint nareas;
    GArray *ranges;           /* DumpRange: what the dump reads */
    bool armed;

    GMutex lock;              /* everything below */
    GCond room;               /* a copy was freed, or the tracker is stopping */
    uint64_t released;        /* the dump is done with its ranges below this gpa */
    bool outside_done;        /* ... and with everything outside them */
    bool stopping;
    uint8_t *pool;            /* pool_pages pages, touched only as used */
    guint *free_slots;
    guint nfree;
    GHashTable *slots;        /* gpa page number -> slot + 1 */
    DumpLiveStats stats;
    GError *error;            /* the handler's first error */

    uint64_t unprotected;     /* dump thread only: ranges unprotected below this gpa */
};

/* ---- userfaultfd ---- */

static int uffd_open(GError **errp)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

    if (fd >= 0) {
        return fd;
    }
    int err = errno;
    if (err == EPERM || err == EACCES) {
        /* Linux 6.1+: the device gives kernel-mode faults (KVM's) to whoever may open it */
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
            close(dev);
            if (fd >= 0) {
                return fd;
            }
        }
        error_setg(errp, "live dump: userfaultfd is not permitted: write faults taken by "
                   "KVM need CAP_SYS_PTRACE, access to /dev/userfaultfd, or "
                   "vm.unprivileged_userfaultfd=1");
    } else if (err == ENOSYS) {
        error_setg(errp, "live dump: this kernel has no userfaultfd");
    } else {
        error_setg_errno(errp, err, "live dump: userfaultfd failed");
    }
    return -1;
}

static bool uffd_api(int fd, uint64_t features, uint64_t *supported, GError **errp)
{
    struct uffdio_api api = { .api = UFFD_API, .features = features };

    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        error_setg_errno(errp, errno, "live dump: UFFDIO_API failed");
        return false;
    }
    *supported = api.features;
    return true;
}

static bool needs_shmem_wp(const GuestMemory *mem)
{
    for (guint i = 0; i < guest_memory_count(mem); i++) {
        if (!guest_memory_block(mem, i)->anonymous) {
            return true;
        }
    }
    return false;
}

/* A userfaultfd with write protection for every kind of RAM `mem` has. */
static int uffd_for(const GuestMemory *mem, uint64_t *features, GError **errp)
{
    uint64_t supported;
    int probe = uffd_open(errp);

    if (probe < 0) {
        return -1;
    }
    bool ok = uffd_api(probe, 0, &supported, errp);
    close(probe);
    if (!ok) {
        return -1;
    }
    if (!(supported & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
        error_setg(errp, "live dump: this kernel's userfaultfd cannot write-protect "
                   "(Linux 5.7 or later)");
        return -1;
    }
    if (needs_shmem_wp(mem) && !(supported & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)) {
        error_setg(errp, "live dump: this kernel cannot write-protect -mem-path memory "
                   "(shared memory needs Linux 5.19 or later)");
        return -1;
    }
    *features = supported & (UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED |
                             UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    int fd = uffd_open(errp);
    if (fd >= 0 && !uffd_api(fd, *features, &supported, errp)) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool uffd_register(int fd, const RamBlock *b, GError **errp)
{
    struct uffdio_register reg = {
        .range = { (uintptr_t)b->host, b->size },
        .mode = UFFDIO_REGISTER_MODE_WP,
    };

    if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
        int err = errno;
        error_setg(errp, "live dump: guest RAM '%s' cannot be write-protected: %s%s", b->name,
                   g_strerror(err), b->anonymous ? "" :
                   " (-mem-path on a file system without userfaultfd write protection: "
                   "tmpfs and hugetlbfs have it)");
        return false;
    }
    if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
        error_setg(errp, "live dump: guest RAM '%s' cannot be write-protected", b->name);
        return false;
    }
    return true;
}

static void uffd_unregister(int fd, const uint8_t *host, uint64_t size)
{
    struct uffdio_range r = { (uintptr_t)host, size };

    ioctl(fd, UFFDIO_UNREGISTER, &r);    /* closing the fd unregisters anyway */
}

/* Protect or unprotect [host, host + len); unprotecting wakes the writers blocked
 * there. EAGAIN: the address space is changing under us; try again. */
static bool uffd_protect(int fd, const uint8_t *host, uint64_t len, bool protect)
{
    struct uffdio_writeprotect wp = {
        .range = { (uintptr_t)host, len },
        .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
    };
    int r;

    do {
        r = ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
    } while (r < 0 && (errno == EAGAIN || errno == EINTR));
    return r == 0;
}

bool live_available(const GuestMemory *mem, GError **errp)
{
    uint64_t features;
    int fd = uffd_for(mem, &features, errp);
    bool ok = fd >= 0;

    for (guint i = 0; ok && i < guest_memory_count(mem); i++) {
        const RamBlock *b = guest_memory_block(mem, i);
        ok = uffd_register(fd, b, errp);
        if (ok) {
            uffd_unregister(fd, b->host, b->size);
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* ---- where pages are ---- */

static LiveArea *area_of_gpa(LiveTracker *t, uint64_t gpa)
{
    for (guint i = 0; i < t->nareas; i++) {
        if (gpa - t->areas[i].gpa < t->areas[i].size) {
            return &t->areas[i];
        }
    }
    return NULL;
}

static LiveArea *area_of_host(LiveTracker *t, uint64_t addr)
{
    for (guint i = 0; i < t->nareas; i++) {
        if (addr - (uintptr_t)t->areas[i].host < t->areas[i].size) {
            return &t->areas[i];
        }
    }
    return NULL;
}

static bool in_ranges(const LiveTracker *t, uint64_t gpa)
{
    for (guint i = 0; i < t->ranges->len; i++) {
        const DumpRange *r = &g_array_index(t->ranges, DumpRange, i);
        if (gpa - (r->gpa & ~(PAGE - 1)) < r->size + (r->gpa & (PAGE - 1))) {
            return true;
        }
    }
    return false;
}

/* Will the dump still read the page at gpa? (With the lock held.) */
static bool still_needed(const LiveTracker *t, uint64_t gpa)
{
    return in_ranges(t, gpa) ? gpa >= t->released : !t->outside_done;
}

static bool test_saved(const LiveArea *a, uint64_t page)
{
    return (__atomic_load_n(&a->saved[page / 64], __ATOMIC_ACQUIRE) >> (page % 64)) & 1;
}

/* ---- the pool (with the lock held) ---- */

static uint8_t *slot_page(const LiveTracker *t, guint slot)
{
    return t->pool + (size_t)slot * PAGE;
}

static void save_page(LiveTracker *t, LiveArea *a, uint64_t page)
{
    guint slot = t->free_slots[--t->nfree];

    memcpy(slot_page(t, slot), a->host + page * PAGE, PAGE);
    g_hash_table_insert(t->slots, GSIZE_TO_POINTER((a->gpa >> 12) + page),
                        GUINT_TO_POINTER(slot + 1));
    __atomic_fetch_or(&a->saved[page / 64], 1ULL << (page % 64), __ATOMIC_RELEASE);
    t->stats.saved++;
    t->stats.peak = MAX(t->stats.peak, t->stats.pool_pages - t->nfree);
}

static void drop_page(LiveTracker *t, LiveArea *a, uint64_t page)
{
    gpointer key = GSIZE_TO_POINTER((a->gpa >> 12) + page);
    guint slot = GPOINTER_TO_UINT(g_hash_table_lookup(t->slots, key)) - 1;

    g_hash_table_remove(t->slots, key);
    t->free_slots[t->nfree++] = slot;
    __atomic_fetch_and(&a->saved[page / 64], ~(1ULL << (page % 64)), __ATOMIC_RELAXED);
}

/* Free the copies of pages in [lo, hi) of area a that the dump no longer needs. */
static guint drop_unneeded(LiveTracker *t, LiveArea *a, uint64_t lo, uint64_t hi)
{
    guint dropped = 0;

    for (uint64_t w = lo / 64; w < (hi + 63) / 64; w++) {
        for (uint64_t bits = a->saved[w]; bits; bits &= bits - 1) {
            uint64_t page = w * 64 + (uint64_t)__builtin_ctzll(bits);
            if (page >= lo && page < hi && !still_needed(t, a->gpa + page * PAGE)) {
                drop_page(t, a, page);
                dropped++;
            }
        }
    }
    return dropped;
}

/* ---- the handler thread ---- */

static void handler_error(LiveTracker *t, const char *what)
{
    int err = errno;

    g_mutex_lock(&t->lock);
    if (!t->error) {
        g_set_error(&t->error, G_IO_ERROR, g_io_error_from_errno(err), "live dump: %s: %s",
                    what, g_strerror(err));
    }
    g_mutex_unlock(&t->lock);
}

/* What a fault at `page` of area a saves and unprotects: the whole unit around it. */
static void fault_span(const LiveArea *a, uint64_t page, uint64_t *first, uint64_t *n)
{
    uintptr_t h = ((uintptr_t)a->host + page * PAGE) & ~(uintptr_t)(a->unit - 1);

    *first = page;
    *n = 1;
    if (h >= (uintptr_t)a->host && h + a->unit <= (uintptr_t)a->host + a->size) {
        *first = (h - (uintptr_t)a->host) / PAGE;
        *n = a->unit / PAGE;
    }
}

/* Pages of [first, first + n) the dump still needs that are not saved yet. */
static guint pages_to_save(const LiveTracker *t, const LiveArea *a, uint64_t first, uint64_t n)
{
    guint want = 0;

    for (uint64_t p = first; p < first + n; p++) {
        want += still_needed(t, a->gpa + p * PAGE) && !test_saved(a, p);
    }
    return want;
}

static void save_span(LiveTracker *t, LiveArea *a, uint64_t first, uint64_t n)
{
    for (uint64_t p = first; p < first + n; p++) {
        if (still_needed(t, a->gpa + p * PAGE) && !test_saved(a, p)) {
            save_page(t, a, p);
        }
    }
}

/* A write fault on guest RAM at host address addr: save what the dump still needs,
 * waiting for room in the pool if there is none, then let the write go on. */
static void handle_fault(LiveTracker *t, uint64_t addr)
{
    LiveArea *a = area_of_host(t, addr);

    if (!a) {
        return;
    }
    uint64_t first, n;
    bool waited = false;
    g_mutex_lock(&t->lock);
    fault_span(a, (addr - (uintptr_t)a->host) / PAGE, &first, &n);
    while (!t->stopping) {
        if (pages_to_save(t, a, first, n) <= t->nfree) {
            save_span(t, a, first, n);
            break;
        }
        t->stats.waits += !waited;
        waited = true;
        g_cond_wait(&t->room, &t->lock);
    }
    g_mutex_unlock(&t->lock);
    if (!uffd_protect(t->uffd, a->host + first * PAGE, n * PAGE, false)) {
        handler_error(t, "cannot unprotect guest RAM");
    }
}

static gpointer handler_thread(gpointer opaque)
{
    LiveTracker *t = opaque;
    struct uffd_msg msgs[FAULT_BATCH];

    for (;;) {
        struct pollfd p[2] = { { .fd = t->uffd, .events = POLLIN },
                               { .fd = t->stop_fd, .events = POLLIN } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            handler_error(t, "poll failed");
            break;
        }
        if (p[1].revents) {
            break;
        }
        ssize_t n = read(t->uffd, msgs, sizeof(msgs));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            handler_error(t, "reading the fault queue failed");
            break;
        }
        for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
            if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
                handle_fault(t, msgs[i].arg.pagefault.address);
            }
        }
    }
    if (!live_check(t, NULL)) {
        /* no one will serve faults any more: let every writer go (the dump fails) */
        for (guint i = 0; i < t->nareas; i++) {
            uffd_protect(t->uffd, t->areas[i].host, t->areas[i].size, false);
        }
    }
    return NULL;
}

/* ---- setup ---- */

/*
 * Before Linux 6.4 (no UFFD_FEATURE_WP_UNPOPULATED), write protection skips page
 * table entries that are empty, so every page never touched must be made present
 * first: reading it maps the zero page. Since 6.4 the kernel protects empty
 * entries too (with markers, in the pause: 25 ms per 4 GiB here), so only huge
 * page sized runs that are wholly untouched are read, once each: on transparent
 * huge pages that maps the huge zero page, which protects in one entry.
 */
static void make_present(const LiveArea *a, bool unpopulated_ok)
{
    uint8_t vec[HUGE_PAGE / PAGE];
    uintptr_t start = (uintptr_t)a->host, end = start + a->size;

    for (uintptr_t chunk = start; chunk < end; chunk = (chunk & ~(HUGE_PAGE - 1)) + HUGE_PAGE) {
        size_t len = MIN(end, (chunk & ~(HUGE_PAGE - 1)) + HUGE_PAGE) - chunk;
        if (mincore((void *)chunk, len, vec) < 0) {
            continue;
        }
        size_t pages = len / PAGE, resident = 0;
        for (size_t i = 0; i < pages; i++) {
            resident += vec[i] & 1;
        }
        for (size_t i = 0; i < pages && resident < pages; i++) {
            if (!(vec[i] & 1) && (!unpopulated_ok || !resident)) {
                (void)*(volatile const uint8_t *)(chunk + i * PAGE);
                if (unpopulated_ok) {
                    break;
                }
            }
        }
    }
}

static void areas_free(LiveTracker *t)
{
    for (guint i = 0; i < t->nareas; i++) {
        g_free(t->areas[i].saved);
    }
    g_free(t->areas);
}

/*
 * The unit of a RAM block: hugetlbfs pages can only be unprotected whole. On
 * transparent huge pages, a whole huge page when the pool can hold one: unprotecting
 * part of a huge page splits its mapping, and protecting split RAM at the next live
 * dump's pause costs what 4 KiB pages cost (measured with the live-counter guest: in
 * 4 KiB units the second live dump of 1 GiB paused 20-25 ms and of 4 GiB 83-89 ms,
 * against 0.4-1.5 ms in huge pages); and a guest that writes one page of a huge page
 * mostly writes the others, with one fault instead of 512.
 */
static bool area_unit(LiveTracker *t, LiveArea *a, const RamBlock *b, int fd, GError **errp)
{
    struct statfs st;

    a->unit = b->huge && t->stats.pool_pages >= HUGE_PAGE / PAGE ? HUGE_PAGE : PAGE;
    if (!b->anonymous && fstatfs(fd, &st) == 0 && st.f_type == HUGETLBFS_MAGIC) {
        a->unit = (uint64_t)st.f_bsize;
        if (a->unit / PAGE > t->stats.pool_pages) {
            error_setg(errp, "live dump: 'live-pool' must hold a whole page of guest RAM '%s' "
                       "(%" PRIu64 " KiB, on hugetlbfs)", b->name, a->unit >> 10);
            return false;
        }
    }
    return true;
}

static bool areas_init(LiveTracker *t, const GuestMemory *mem, uint64_t features,
                       GError **errp)
{
    t->nareas = guest_memory_count(mem);
    t->areas = g_new0(LiveArea, t->nareas);
    for (guint i = 0; i < t->nareas; i++) {
        const RamBlock *b = guest_memory_block(mem, i);
        LiveArea *a = &t->areas[i];
        *a = (LiveArea){ .name = b->name, .host = b->host, .gpa = b->gpa, .size = b->size,
                         .anonymous = b->anonymous,
                         .saved = g_new0(uint64_t, (b->size / PAGE + 63) / 64) };
        if (!area_unit(t, a, b, mem->fd, errp) || !uffd_register(t->uffd, b, errp)) {
            return false;
        }
        if (a->anonymous) {
            make_present(a, features & UFFD_FEATURE_WP_UNPOPULATED);
        }
    }
    return true;
}

static bool pool_init(LiveTracker *t, uint64_t pool_bytes, GError **errp)
{
    guint n = (guint)MIN(MAX(pool_bytes / PAGE, 1), G_MAXUINT32 / 2);

    t->pool = mmap(NULL, (size_t)n * PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (t->pool == MAP_FAILED) {
        t->pool = NULL;
        error_setg_errno(errp, errno, "live dump: cannot map a pool of %u pages", n);
        return false;
    }
    t->free_slots = g_new(guint, n);
    for (guint i = 0; i < n; i++) {
        t->free_slots[i] = n - 1 - i;       /* slot 0 first: the pool is touched in order */
    }
    t->nfree = n;
    t->stats.pool_pages = n;
    t->slots = g_hash_table_new(g_direct_hash, g_direct_equal);
    return true;
}

LiveTracker *live_tracker_new(const GuestMemory *mem, const GArray *ranges, uint64_t pool_bytes,
                              GError **errp)
{
    LiveTracker *t = g_new0(LiveTracker, 1);
    uint64_t features;

    g_mutex_init(&t->lock);
    g_cond_init(&t->room);
    t->stop_fd = -1;
    t->ranges = g_array_copy((GArray *)ranges);
    t->uffd = uffd_for(mem, &features, errp);
    if (t->uffd < 0 || !pool_init(t, pool_bytes, errp) || !areas_init(t, mem, features, errp)) {
        live_tracker_free(t);
        return NULL;
    }
    t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->stop_fd < 0) {
        error_setg_errno(errp, errno, "live dump: cannot create an eventfd");
        live_tracker_free(t);
        return NULL;
    }
    t->thread = g_thread_try_new("live-dump-faults", handler_thread, t, errp);
    if (!t->thread) {
        live_tracker_free(t);
        return NULL;
    }
    return t;
}

bool live_tracker_arm(LiveTracker *t, GError **errp)
{
    for (guint i = 0; i < t->nareas; i++) {
        if (!uffd_protect(t->uffd, t->areas[i].host, t->areas[i].size, true)) {
            error_setg_errno(errp, errno, "live dump: cannot write-protect guest RAM '%s'",
                             t->areas[i].name);
            return false;
        }
    }
    t->armed = true;
    return true;
}

/* ---- what the dump calls ---- */

static void read_page_part(LiveTracker *t, LiveArea *a, uint64_t off, uint8_t *dst, size_t len)
{
    uint64_t page = off / PAGE;

    memcpy(dst, a->host + off, len);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (!t->armed || !test_saved(a, page)) {
        return;
    }
    g_mutex_lock(&t->lock);
    gpointer v = g_hash_table_lookup(t->slots, GSIZE_TO_POINTER((a->gpa >> 12) + page));
    if (v) {
        memcpy(dst, slot_page(t, GPOINTER_TO_UINT(v) - 1) + off % PAGE, len);
    }
    g_mutex_unlock(&t->lock);
}

bool live_saved(LiveTracker *t, uint64_t gpa)
{
    LiveArea *a = area_of_gpa(t, gpa);

    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return a && test_saved(a, (gpa - a->gpa) / PAGE);
}

bool live_read(LiveTracker *t, uint64_t gpa, void *dst, uint64_t len)
{
    uint8_t *out = dst;

    while (len) {
        LiveArea *a = area_of_gpa(t, gpa);
        if (!a) {
            return false;
        }
        uint64_t off = gpa - a->gpa;
        size_t n = (size_t)MIN(len, PAGE - off % PAGE);
        read_page_part(t, a, off, out, n);
        out += n;
        gpa += n;
        len -= n;
    }
    return true;
}

/* Unprotect what the dump is done with in area a, [lo, hi) as offsets. */
static void unprotect_span(LiveTracker *t, LiveArea *a, uint64_t lo, uint64_t hi)
{
    if (lo < hi && !uffd_protect(t->uffd, a->host + lo, hi - lo, false)) {
        handler_error(t, "cannot unprotect guest RAM");
    }
}

/* Unprotect the whole units of area a in [lo, hi) (gpa); a unit that is partly outside
 * stays protected until the handler or live_release deals with it. */
static void unprotect_units(LiveTracker *t, LiveArea *a, uint64_t lo, uint64_t hi)
{
    uintptr_t h = (uintptr_t)a->host - a->gpa, mask = (uintptr_t)a->unit - 1;
    uintptr_t from = (h + lo + mask) & ~mask, to = (h + hi) & ~mask;

    if (from < to) {
        unprotect_span(t, a, from - (uintptr_t)a->host, to - (uintptr_t)a->host);
    }
}

/* Unprotect the pages of area a that lie outside the dump's ranges. */
static void unprotect_outside(LiveTracker *t, LiveArea *a)
{
    uint64_t pos = a->gpa, end = a->gpa + a->size;

    for (guint j = 0; j < t->ranges->len && pos < end; j++) {
        const DumpRange *r = &g_array_index(t->ranges, DumpRange, j);
        uint64_t lo = r->gpa & ~(PAGE - 1), hi = (r->gpa + r->size + PAGE - 1) & ~(PAGE - 1);
        if (lo > pos) {
            unprotect_units(t, a, pos, MIN(lo, end));
        }
        pos = MAX(pos, hi);
    }
    if (pos < end) {
        unprotect_units(t, a, pos, end);
    }
}

/* The dump has started on its ranges: it reads nothing outside them any more (its
 * headers, which read kernel data and page tables anywhere, are behind it). */
static void outside_done(LiveTracker *t)
{
    guint dropped = 0;

    g_mutex_lock(&t->lock);
    t->outside_done = true;
    for (guint i = 0; i < t->nareas; i++) {
        dropped += drop_unneeded(t, &t->areas[i], 0, t->areas[i].size / PAGE);
    }
    if (dropped) {
        g_cond_broadcast(&t->room);
    }
    g_mutex_unlock(&t->lock);
    for (guint i = 0; i < t->nareas; i++) {
        unprotect_outside(t, &t->areas[i]);
    }
}

void live_release(LiveTracker *t, uint64_t gpa)
{
    if (!t->outside_done) {
        outside_done(t);
    }
    gpa &= ~(PAGE - 1);
    g_mutex_lock(&t->lock);
    uint64_t from = t->released;
    guint dropped = 0;
    t->released = MAX(t->released, gpa);
    for (guint i = 0; i < t->nareas; i++) {
        LiveArea *a = &t->areas[i];
        uint64_t lo = MAX(from, a->gpa), hi = MIN(t->released, a->gpa + a->size);
        if (lo < hi) {
            dropped += drop_unneeded(t, a, (lo - a->gpa) / PAGE, (hi - a->gpa + PAGE - 1) / PAGE);
        }
    }
    if (dropped) {
        g_cond_broadcast(&t->room);
    }
    g_mutex_unlock(&t->lock);

    /* Unprotect in whole units (huge pages): what lags behind is unprotected by the
     * next call, or by the handler when the guest writes there. */
    for (guint i = 0; i < t->nareas; i++) {
        LiveArea *a = &t->areas[i];
        uint64_t lo = MAX(t->unprotected, a->gpa), hi = MIN(gpa, a->gpa + a->size);
        if (lo >= hi) {
            continue;
        }
        uint64_t end = hi - a->gpa;
        if (hi < a->gpa + a->size) {
            uintptr_t h = ((uintptr_t)a->host + end) & ~(uintptr_t)(a->unit - 1);
            end = h > (uintptr_t)a->host + (lo - a->gpa) ? h - (uintptr_t)a->host : lo - a->gpa;
        }
        unprotect_span(t, a, lo - a->gpa, end);
        t->unprotected = a->gpa + end;
    }
}

bool live_check(LiveTracker *t, GError **errp)
{
    g_mutex_lock(&t->lock);
    bool ok = t->error == NULL;
    if (!ok) {
        g_propagate_error(errp, g_error_copy(t->error));
    }
    g_mutex_unlock(&t->lock);
    return ok;
}

DumpLiveStats live_stats(LiveTracker *t)
{
    g_mutex_lock(&t->lock);
    DumpLiveStats s = t->stats;
    g_mutex_unlock(&t->lock);
    return s;
}

void live_tracker_free(LiveTracker *t)
{
    if (!t) {
        return;
    }
    g_mutex_lock(&t->lock);
    t->stopping = true;
    g_cond_broadcast(&t->room);
    g_mutex_unlock(&t->lock);
    if (t->thread) {
        uint64_t one = 1;
        if (write(t->stop_fd, &one, sizeof(one)) != sizeof(one)) {
            /* an eventfd write of 1 cannot fail short of overflow */
        }
        g_thread_join(t->thread);
    }
    /* unprotecting wakes every writer still blocked; closing the fd would too */
    for (guint i = 0; t->uffd >= 0 && i < t->nareas; i++) {
        if (t->armed) {
            uffd_protect(t->uffd, t->areas[i].host, t->areas[i].size, false);
        }
        uffd_unregister(t->uffd, t->areas[i].host, t->areas[i].size);
    }
    if (t->uffd >= 0) {
        close(t->uffd);
    }
    if (t->stop_fd >= 0) {
        close(t->stop_fd);
    }
    areas_free(t);
    if (t->pool) {
        munmap(t->pool, (size_t)t->stats.pool_pages * PAGE);
    }
    g_free(t->free_slots);
    if (t->slots) {
        g_hash_table_destroy(t->slots);
    }
    g_array_free(t->ranges, TRUE);
    g_clear_error(&t->error);
    g_mutex_clear(&t->lock);
    g_cond_clear(&t->room);
    g_free(t);
}
