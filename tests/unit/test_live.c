/* Unit tests for the live dump's write tracker (dump/live.c): writes by this process
 * stand in for the guest's. */
#include "dump/live.h"

#include <string.h>

#define PAGE 4096u
#define MIB (1u << 20)

typedef struct Fixture {
    GuestMemory *mem;
    GArray *ranges;
    LiveTracker *t;
} Fixture;

/* Two RAM blocks (8 MiB at 0, 4 MiB at 16 MiB), every page of the first 6 MiB of the
 * first one written with its own number; `huge` as the blocks' THP request. */
static void fixture_init(Fixture *f, bool huge)
{
    f->mem = guest_memory_new(NULL, NULL);
    g_assert_nonnull(guest_memory_add(f->mem, "low", 0, 8 * MIB, NULL));
    g_assert_nonnull(guest_memory_add(f->mem, "high", 16 * MIB, 4 * MIB, NULL));
    f->ranges = g_array_new(FALSE, FALSE, sizeof(DumpRange));
    for (guint i = 0; i < guest_memory_count(f->mem); i++) {
        RamBlock *b = guest_memory_block(f->mem, i);
        b->huge = huge;
        DumpRange r = { b->gpa, b->size, b->host, b->anonymous };
        g_array_append_val(f->ranges, r);
    }
    for (uint32_t p = 0; p < 6 * MIB / PAGE; p++) {
        memset(guest_memory_ptr(f->mem, (uint64_t)p * PAGE, PAGE), (int)(p & 0xff) | 1, PAGE);
    }
}

/* false (and the test skipped) where userfaultfd write protection is not available */
static bool fixture_start(Fixture *f, uint64_t pool_bytes)
{
    GError *err = NULL;

    f->t = live_tracker_new(f->mem, f->ranges, pool_bytes, &err);
    if (!f->t) {
        g_test_skip(err->message);
        g_error_free(err);
        return false;
    }
    g_assert_true(live_tracker_arm(f->t, NULL));
    return true;
}

static void fixture_free(Fixture *f)
{
    live_tracker_free(f->t);
    g_array_free(f->ranges, TRUE);
    guest_memory_free(f->mem);
}

static uint8_t *ram(Fixture *f, uint64_t gpa)
{
    return guest_memory_ptr(f->mem, gpa, 1);
}

static void assert_instant_page(Fixture *f, uint64_t gpa, uint8_t old)
{
    uint8_t buf[PAGE], want[PAGE];

    memset(want, old, sizeof(want));
    g_assert_true(live_read(f->t, gpa, buf, PAGE));
    g_assert_cmpmem(buf, PAGE, want, PAGE);
}

/* Writes after arming reach guest RAM; live_read still gives the bytes of the instant,
 * for pages written before and for a page never touched before. */
static void test_live_instant(void)
{
    Fixture f;

    fixture_init(&f, false);
    if (fixture_start(&f, 64 * PAGE)) {
        memset(ram(&f, 5 * PAGE), 0xee, PAGE);
        memset(ram(&f, 7 * MIB), 0xee, 100);             /* never touched before */
        memset(ram(&f, 17 * MIB + 3 * PAGE), 0xee, 1);   /* the second block */
        g_assert_cmpuint(ram(&f, 5 * PAGE)[0], ==, 0xee);
        assert_instant_page(&f, 5 * PAGE, 5 | 1);
        assert_instant_page(&f, 7 * MIB, 0);
        assert_instant_page(&f, 17 * MIB + 3 * PAGE, 0);
        assert_instant_page(&f, 6 * PAGE, 6 | 1);        /* not written: guest RAM */
        g_assert_cmpuint(live_stats(f.t).saved, ==, 3);
        /* a read across two pages, one saved */
        uint8_t two[2 * PAGE];
        g_assert_true(live_read(f.t, 4 * PAGE + 100, two, PAGE));
        g_assert_cmpuint(two[0], ==, 4 | 1);
        g_assert_cmpuint(two[PAGE - 1], ==, 5 | 1);
        g_assert_false(live_read(f.t, 8 * MIB, two, 1));  /* not RAM */
    }
    fixture_free(&f);
}

/* Behind live_release, pages are the guest's again: no copy, nothing waits. */
static void test_live_release(void)
{
    Fixture f;

    fixture_init(&f, false);
    if (fixture_start(&f, 64 * PAGE)) {
        memset(ram(&f, 2 * PAGE), 0xee, 1);
        g_assert_cmpuint(live_stats(f.t).saved, ==, 1);
        live_release(f.t, 4 * PAGE);
        memset(ram(&f, 2 * PAGE), 0xdd, 1);
        memset(ram(&f, 3 * PAGE), 0xdd, 1);
        g_assert_cmpuint(live_stats(f.t).saved, ==, 1);
        memset(ram(&f, 4 * PAGE), 0xdd, 1);               /* not released yet */
        g_assert_cmpuint(live_stats(f.t).saved, ==, 2);
        assert_instant_page(&f, 4 * PAGE, 4 | 1);
    }
    fixture_free(&f);
}

typedef struct Writer {
    Fixture *f;
    uint64_t gpa;
    gint done;
} Writer;

static gpointer write_page(gpointer opaque)
{
    Writer *w = opaque;

    memset(ram(w->f, w->gpa), 0x77, PAGE);
    g_atomic_int_set(&w->done, 1);
    return NULL;
}

/* With room for two copies, a third write waits until the dump releases a copy. */
static void test_live_pool_full_waits(void)
{
    Fixture f;

    fixture_init(&f, false);
    if (fixture_start(&f, 2 * PAGE)) {
        memset(ram(&f, 10 * PAGE), 0xee, 1);
        memset(ram(&f, 20 * PAGE), 0xee, 1);
        Writer w = { .f = &f, .gpa = 30 * PAGE };
        GThread *th = g_thread_new("writer", write_page, &w);
        g_usleep(200 * 1000);
        g_assert_cmpint(g_atomic_int_get(&w.done), ==, 0);
        g_assert_cmpuint(live_stats(f.t).waits, ==, 1);
        assert_instant_page(&f, 10 * PAGE, 10 | 1);
        live_release(f.t, 11 * PAGE);                     /* the copy of page 10 is free */
        g_thread_join(th);
        g_assert_cmpint(g_atomic_int_get(&w.done), ==, 1);
        assert_instant_page(&f, 20 * PAGE, 20 | 1);
        assert_instant_page(&f, 30 * PAGE, 30 | 1);
        DumpLiveStats s = live_stats(f.t);
        g_assert_cmpuint(s.saved, ==, 3);
        g_assert_cmpuint(s.peak, ==, 2);
    }
    fixture_free(&f);
}

/* On transparent huge pages a fault saves the whole huge page around it. */
static void test_live_huge_page_saved_whole(void)
{
    Fixture f;

    fixture_init(&f, true);
    if (fixture_start(&f, 1024 * PAGE)) {
        uintptr_t base = (uintptr_t)ram(&f, 0);
        uint64_t huge = ((base + 2 * MIB) & ~(uintptr_t)(2 * MIB - 1)) - base;  /* <= 4 MiB */
        memset(ram(&f, huge + 5 * PAGE), 0xee, 1);
        g_assert_cmpuint(live_stats(f.t).saved, ==, 512);
        memset(ram(&f, huge + 300 * PAGE), 0xee, 1);      /* no second fault there */
        g_assert_cmpuint(live_stats(f.t).saved, ==, 512);
        assert_instant_page(&f, huge + 300 * PAGE, ((huge / PAGE + 300) & 0xff) | 1);
    }
    fixture_free(&f);
}

/* Outside the dump's ranges, pages are kept until the dump starts on its ranges (it may
 * read page tables anywhere before), and left to the guest after. */
static void test_live_outside_ranges(void)
{
    Fixture f;

    fixture_init(&f, false);
    g_array_set_size(f.ranges, 1);
    g_array_index(f.ranges, DumpRange, 0).size = 1 * MIB;
    if (fixture_start(&f, 64 * PAGE)) {
        memset(ram(&f, 3 * MIB), 0xee, 1);
        g_assert_cmpuint(live_stats(f.t).saved, ==, 1);
        assert_instant_page(&f, 3 * MIB, ((3 * MIB / PAGE) & 0xff) | 1);
        live_release(f.t, 0);
        memset(ram(&f, 3 * MIB + PAGE), 0xee, 1);
        memset(ram(&f, 17 * MIB), 0xee, 1);
        g_assert_cmpuint(live_stats(f.t).saved, ==, 1);
        memset(ram(&f, 5 * PAGE), 0xee, 1);               /* in the range: kept */
        g_assert_cmpuint(live_stats(f.t).saved, ==, 2);
    }
    fixture_free(&f);
}

/* Freeing the tracker leaves guest RAM writable and as the guest wrote it. */
static void test_live_free_unprotects(void)
{
    Fixture f;

    fixture_init(&f, false);
    if (fixture_start(&f, 64 * PAGE)) {
        live_tracker_free(f.t);
        f.t = NULL;
        memset(ram(&f, 9 * PAGE), 0xab, PAGE);
        g_assert_cmpuint(ram(&f, 9 * PAGE)[PAGE - 1], ==, 0xab);
    }
    fixture_free(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/live/instant", test_live_instant);
    g_test_add_func("/live/release", test_live_release);
    g_test_add_func("/live/pool-full-waits", test_live_pool_full_waits);
    g_test_add_func("/live/huge-page-saved-whole", test_live_huge_page_saved_whole);
    g_test_add_func("/live/outside-ranges", test_live_outside_ranges);
    g_test_add_func("/live/free-unprotects", test_live_free_unprotects);
    return g_test_run();
}
