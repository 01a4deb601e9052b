#include "zeromap.h"
#include "dump-internal.h"
#include "util.h"

#include <fcntl.h>
#include <unistd.h>

#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)

void zeromap_init(ZeroMap *z)
{
    z->fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    z->first = 0;
    z->count = 0;
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

bool zeromap_page_absent(ZeroMap *z, const void *page)
{
    uint64_t vpn = (uintptr_t)page / 4096;

    if (z->fd < 0 || ((uintptr_t)page & 4095)) {
        return false;
    }
    if ((vpn < z->first || vpn >= z->first + z->count) && !refill(z, vpn)) {
        return false;
    }
    return !(z->entries[vpn - z->first] & (PM_PRESENT | PM_SWAPPED));
}

bool zeromap_page_is_zero(ZeroMap *z, const uint8_t *page, size_t size, bool anon)
{
    return (anon && size == 4096 && zeromap_page_absent(z, page)) ||
           buffer_is_zero(page, size);
}
