/*
 * minivm's built-in demo guest. Runs in ring 3 with IOPL 3 (see demo_abi.h).
 * Each vCPU fills its share of RAM from MINIVM_FILL_START_GPA up with pages
 * derived from (pfn, seed), prints "minivm demo guest: cpu N ready", then
 * increments its heartbeat counter forever, yielding to the host in between.
 */
#include "demo_abi.h"
#include "demo_pattern.h"

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static void serial_putc(char c)
{
    while (!(inb(0x3f8 + 5) & 0x20)) {
    }
    outb(0x3f8, (uint8_t)c);
}

static void serial_puts(const char *s)
{
    while (*s) {
        serial_putc(*s++);
    }
}

static void serial_putu(uint32_t v)
{
    char buf[12];
    int n = 0;

    do {
        buf[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) {
        serial_putc(buf[--n]);
    }
}

static void lock(volatile uint64_t *l)
{
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) {
        __asm__ volatile("pause");
    }
}

static void unlock(volatile uint64_t *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* Number of fill pages in block b (pages at or above MINIVM_FILL_START_GPA). */
static uint64_t fill_pages(const struct minivm_boot_block *b, uint64_t *first)
{
    uint64_t start = b->start, end = b->start + b->size;

    if (start < MINIVM_FILL_START_GPA) {
        start = MINIVM_FILL_START_GPA;
    }
    *first = start >> 12;
    return end > start ? (end - start) >> 12 : 0;
}

static void fill(uint32_t cpu, const struct minivm_boot_info *info)
{
    uint64_t total = 0, first;

    for (uint32_t b = 0; b < info->nblocks; b++) {
        total += fill_pages(&info->blocks[b], &first);
    }
    uint64_t lo = total * cpu / info->ncpus, hi = total * (cpu + 1) / info->ncpus;
    uint64_t index = 0;

    for (uint32_t b = 0; b < info->nblocks; b++) {
        uint64_t n = fill_pages(&info->blocks[b], &first);
        for (uint64_t i = 0; i < n; i++, index++) {
            if (index < lo || index >= hi) {
                continue;
            }
            uint64_t pfn = first + i;
            unsigned kind = demo_page_kind(pfn, info->seed);
            void *page = (void *)(pfn << 12);
            if (kind == 2) {
                demo_fill_text(page, pfn, info->seed);
            } else if (kind == 3) {
                demo_fill_random(page, pfn, info->seed);
            }
        }
    }
}

__attribute__((noreturn)) void guest_start(uint64_t cpu, const struct minivm_boot_info *info)
{
    volatile uint64_t *hb = (volatile uint64_t *)info->heartbeat_gpa;

    fill((uint32_t)cpu, info);
    lock(&hb[0]);
    serial_puts("minivm demo guest: cpu ");
    serial_putu((uint32_t)cpu);
    serial_puts(" ready\n");
    unlock(&hb[0]);
    for (;;) {
        hb[8 + cpu]++;
        outb(MINIVM_PORT_IDLE, 0);
    }
}
