#include "zeromap.h"
#include "dump-internal.h"
#include "util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_PFN_MASK ((1ULL << 55) - 1)
#define KPF_ZERO_PAGE (1ULL << 24)
#define HUGE_SIZE (2u << 20)
#define HUGE_FRAMES (HUGE_SIZE / 4096)

/* The frame a page of ours maps, when the kernel says it is a zero page; else 0. */
static uint64_t zero_frame_of(int pagemap, const volatile uint8_t *p)
{
    uint64_t entry = 0, flags = 0;

    (void)*p;                                  /* a read fault maps a zero page */
    if (pread(pagemap, &entry, 8, (off_t)((uintptr_t)p / 4096 * 8)) != 8 ||
        !(entry & PM_PRESENT) || !(entry & PM_PFN_MASK)) {
        return 0;                              /* frame numbers are shown to root only */
    }
    uint64_t pfn = entry & PM_PFN_MASK;
    int kpf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
    bool zero = kpf >= 0 && pread(kpf, &flags, 8, (off_t)(pfn * 8)) == 8 &&
                (flags & KPF_ZERO_PAGE);
    if (kpf >= 0) {
        close(kpf);
    }
    return zero ? pfn : 0;
}

/* Learn the frames of the zero page and of the huge zero page from a scratch
 * mapping of our own that is only read. */
static void learn_zero_frames(ZeroMap *z)
{
    size_t len = 2 * HUGE_SIZE;
    uint8_t *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    if (m == MAP_FAILED) {
        return;
    }
    uint8_t *huge = (uint8_t *)(((uintptr_t)m + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1));
    if (madvise(m, len, MADV_NOHUGEPAGE) == 0) {
        z->zero_pfn = zero_frame_of(z->fd, m + len - 4096);    /* past the huge page */
    }
    if (madvise(huge, HUGE_SIZE, MADV_HUGEPAGE) == 0) {
        uint64_t pfn = zero_frame_of(z->fd, huge);
        z->huge_zero_pfn = pfn != z->zero_pfn && pfn % HUGE_FRAMES == 0 ? pfn : 0;
    }
    munmap(m, len);
}

void zeromap_init(ZeroMap *z)
{
    z->fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    z->first = 0;
    z->count = 0;
    z->zero_pfn = z->huge_zero_pfn = 0;
    if (z->fd >= 0) {
        learn_zero_frames(z);
    }
}

void zeromap_destroy(ZeroMap *z)
{
    if (z->fd >= 0) {
        close(z->fd);
        z->fd = -1;
    }
}

static bool refill(ZeroMap *z, uint64_t vpn)
{
    ssize_t n = pread(z->fd, z->entries, sizeof(z->entries), (off_t)(vpn * 8));

    if (n < 8) {
        z->count = 0;
        return false;
    }
    z->first = vpn;
    z->count = (size_t)n / 8;
    return true;
}

bool zeromap_page_known_zero(ZeroMap *z, const void *page)
{
    uint64_t vpn = (uintptr_t)page / 4096;

    if (z->fd < 0 || ((uintptr_t)page & 4095)) {
        return false;
    }
    if ((vpn < z->first || vpn >= z->first + z->count) && !refill(z, vpn)) {
        return false;
    }
    uint64_t e = z->entries[vpn - z->first], pfn = e & PM_PFN_MASK;
    if (!(e & PM_PRESENT)) {
        return !(e & PM_SWAPPED);
    }
    return (z->zero_pfn && pfn == z->zero_pfn) ||
           (z->huge_zero_pfn && pfn - z->huge_zero_pfn < HUGE_FRAMES);
}
