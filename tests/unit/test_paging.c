/* Unit tests for the x86 page-table walker behind paging=true dumps. */
#include "paging.h"

#include <string.h>

#define P 0x1ULL
#define RW 0x2ULL
#define PS 0x80ULL

typedef struct Collected {
    GArray *maps;
} Collected;

static bool collect(void *opaque, const GuestMapping *m, GError **errp)
{
    g_array_append_val(((Collected *)opaque)->maps, *m);
    return true;
}

static uint64_t *table(GuestMemory *mem, uint64_t pa)
{
    return guest_memory_ptr(mem, pa, 4096);
}

static GuestMemory *make_memory(uint64_t size)
{
    GuestMemory *mem = guest_memory_new(NULL, NULL);
    g_assert_nonnull(guest_memory_add(mem, "ram", 0, size, NULL));
    return mem;
}

static X86CPUState long_mode_cpu(uint64_t cr3)
{
    X86CPUState s = { 0 };
    s.cr[0] = CR0_PE | CR0_PG;
    s.cr[3] = cr3;
    s.cr[4] = CR4_PAE;
    s.efer = EFER_LMA | EFER_LME;
    return s;
}

static GArray *walk(const X86CPUState *cpu, GuestMemory *mem, GError **err)
{
    Collected c = { g_array_new(FALSE, FALSE, sizeof(GuestMapping)) };
    GuestReader reader = { .mem = mem };
    if (!x86_walk_mappings(cpu, &reader, collect, &c, err)) {
        g_array_free(c.maps, TRUE);
        return NULL;
    }
    return c.maps;
}

static void test_long_mode(void)
{
    GuestMemory *mem = make_memory(64 << 20);
    uint64_t *pml4 = table(mem, 0x1000), *pdpt = table(mem, 0x2000), *pd = table(mem, 0x3000);
    uint64_t *pt = table(mem, 0x4000), *hi_pdpt = table(mem, 0x5000);

    pml4[0] = 0x2000 | P | RW;
    pdpt[0] = 0x3000 | P | RW;
    pd[0] = 0x4000 | P | RW;
    for (int i = 0; i < 4; i++) {
        pt[i] = (0x100000 + i * 0x1000) | P;      /* 4 contiguous 4 KiB pages: one run */
    }
    pt[8] = 0x300000 | P;                        /* not physically contiguous: own run */
    pd[1] = 0x200000 | P | PS;                   /* 2 MiB page */
    pd[2] = 0x400000 | P | PS;                   /* continues the previous one */
    pdpt[1] = 0x80000000ULL | P | PS;            /* 1 GiB page beyond RAM: not RAM */
    pml4[511] = 0x5000 | P | RW;                 /* kernel half: canonical addresses */
    hi_pdpt[510] = 0x0 | P | PS;                 /* 1 GiB at 0: RAM, then beyond RAM */

    X86CPUState cpu = long_mode_cpu(0x1000);
    GError *err = NULL;
    g_autoptr(GArray) maps = walk(&cpu, mem, &err);
    g_assert_no_error(err);
    const GuestMapping want[] = {
        { 0x0, 0x100000, 0x4000, true },
        { 0x8000, 0x300000, 0x1000, true },
        { 0x200000, 0x200000, 0x400000, true },
        { 0x40000000, 0x80000000ULL, 0x40000000, false },
        { 0xffffffff80000000ULL, 0, 64 << 20, true },
        { 0xffffffff80000000ULL + (64 << 20), 64 << 20, (1ULL << 30) - (64 << 20), false },
    };
    g_assert_cmpuint(maps->len, ==, G_N_ELEMENTS(want));
    for (guint i = 0; i < maps->len; i++) {
        const GuestMapping *m = &g_array_index(maps, GuestMapping, i);
        g_assert_cmphex(m->vaddr, ==, want[i].vaddr);
        g_assert_cmphex(m->paddr, ==, want[i].paddr);
        g_assert_cmphex(m->size, ==, want[i].size);
        g_assert_cmpint(m->ram, ==, want[i].ram);
    }
    guest_memory_free(mem);
}

static void test_cyclic(void)
{
    GuestMemory *mem = make_memory(16 << 20);
    uint64_t *pml4 = table(mem, 0x1000);

    for (int i = 0; i < 512; i++) {
        pml4[i] = 0x1000 | P | RW;               /* every entry points back at the PML4 */
    }
    X86CPUState cpu = long_mode_cpu(0x1000);
    GError *err = NULL;
    GArray *maps = walk(&cpu, mem, &err);
    g_assert_null(maps);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "corrupt or cyclic"));
    g_error_free(err);
    guest_memory_free(mem);
}

static void test_pae_and_legacy(void)
{
    GuestMemory *mem = make_memory(16 << 20);
    uint64_t *pdpt = guest_memory_ptr(mem, 0x1000, 32), *pd = table(mem, 0x2000);
    uint32_t *pd32 = guest_memory_ptr(mem, 0x3000, 4096), *pt32 = guest_memory_ptr(mem, 0x4000, 4096);

    pdpt[3] = 0x2000 | P;
    pd[0] = 0x600000 | P | PS;
    X86CPUState cpu = { .cr = { CR0_PE | CR0_PG, 0, 0, 0x1000, CR4_PAE } };
    g_autoptr(GArray) maps = walk(&cpu, mem, NULL);
    g_assert_cmpuint(maps->len, ==, 1);
    g_assert_cmphex(g_array_index(maps, GuestMapping, 0).vaddr, ==, 0xc0000000ULL);
    g_assert_cmphex(g_array_index(maps, GuestMapping, 0).paddr, ==, 0x600000);

    pd32[0] = 0x4000 | P;
    pt32[1] = 0x5000 | P;
    pd32[768] = 0x400000 | P | PS;               /* 4 MiB page with CR4.PSE */
    X86CPUState legacy = { .cr = { CR0_PE | CR0_PG, 0, 0, 0x3000, 0x10 } };
    g_autoptr(GArray) maps32 = walk(&legacy, mem, NULL);
    g_assert_cmpuint(maps32->len, ==, 2);
    g_assert_cmphex(g_array_index(maps32, GuestMapping, 0).vaddr, ==, 0x1000);
    g_assert_cmphex(g_array_index(maps32, GuestMapping, 0).paddr, ==, 0x5000);
    g_assert_cmphex(g_array_index(maps32, GuestMapping, 1).vaddr, ==, 0xc0000000ULL);
    g_assert_cmphex(g_array_index(maps32, GuestMapping, 1).size, ==, 4 << 20);
    guest_memory_free(mem);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/paging/long-mode", test_long_mode);
    g_test_add_func("/paging/cyclic", test_cyclic);
    g_test_add_func("/paging/pae-and-legacy", test_pae_and_legacy);
    return g_test_run();
}
