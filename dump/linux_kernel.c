/* VMCOREINFO values, and the kernel's virtual memory read through its own page tables. */
#include "linux_kernel.h"
#include "vmcoreinfo.h"
#include "util.h"

#include <string.h>

static const struct {
    const char *key;
    bool hex;                       /* SYMBOL(): hex without 0x; the rest: decimal */
} kernel_fields[KF__COUNT] = {
    [KF_INIT_TOP_PGT] = { "SYMBOL(init_top_pgt)", true },
    [KF_PHYS_BASE] = { "NUMBER(phys_base)", false },
    [KF_PGTABLE_L5] = { "NUMBER(pgtable_l5_enabled)", false },
    [KF_SME_MASK] = { "NUMBER(sme_mask)", false },
    [KF_PAGESIZE] = { "PAGESIZE", false },
    [KF_MEM_SECTION] = { "SYMBOL(mem_section)", true },
    [KF_MEM_SECTION_LEN] = { "LENGTH(mem_section)", false },
    [KF_MEM_SECTION_SIZE] = { "SIZE(mem_section)", false },
    [KF_SECTION_MEM_MAP] = { "OFFSET(mem_section.section_mem_map)", false },
    [KF_SECTION_SIZE_BITS] = { "NUMBER(SECTION_SIZE_BITS)", false },
    [KF_MAX_PHYSMEM_BITS] = { "NUMBER(MAX_PHYSMEM_BITS)", false },
    [KF_PAGE_SIZE] = { "SIZE(page)", false },
    [KF_PAGE_FLAGS] = { "OFFSET(page.flags)", false },
    [KF_PAGE_MAPPING] = { "OFFSET(page.mapping)", false },
    [KF_PAGE_PRIVATE] = { "OFFSET(page.private)", false },
    [KF_PAGE_MAPCOUNT] = { "OFFSET(page._mapcount)", false },
    [KF_PAGE_COMPOUND_HEAD] = { "OFFSET(page.compound_head)", false },
    [KF_PAGE_COMPOUND_ORDER] = { "OFFSET(page.compound_order)", false },
    [KF_PAGE_COMPOUND_DTOR] = { "OFFSET(page.compound_dtor)", false },
    [KF_FREE_AREA_LEN] = { "LENGTH(zone.free_area)", false },
    [KF_PG_LRU] = { "NUMBER(PG_lru)", false },
    [KF_PG_PRIVATE] = { "NUMBER(PG_private)", false },
    [KF_PG_SWAPCACHE] = { "NUMBER(PG_swapcache)", false },
    [KF_PG_SWAPBACKED] = { "NUMBER(PG_swapbacked)", false },
    [KF_PG_SLAB] = { "NUMBER(PG_slab)", false },
    [KF_PG_HWPOISON] = { "NUMBER(PG_hwpoison)", false },
    [KF_PG_HEAD_MASK] = { "NUMBER(PG_head_mask)", false },
    [KF_BUDDY_MAPCOUNT] = { "NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)", false },
    [KF_OFFLINE_MAPCOUNT] = { "NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)", false },
    [KF_HUGETLB_DTOR] = { "NUMBER(HUGETLB_PAGE_DTOR)", false },
};

const char *kernel_field_key(KernelField f)
{
    return kernel_fields[f].key;
}

void kernel_info_parse(KernelInfo *ki, const char *text, size_t len)
{
    memset(ki, 0, sizeof(*ki));
    for (int f = 0; f < KF__COUNT; f++) {
        int64_t n;
        bool ok = kernel_fields[f].hex
                      ? vmcoreinfo_hex(text, len, kernel_fields[f].key, &ki->value[f])
                      : vmcoreinfo_number(text, len, kernel_fields[f].key, &n);
        if (ok && !kernel_fields[f].hex) {
            ki->value[f] = (uint64_t)n;
        }
        ki->found |= (uint64_t)ok << f;
    }
}

bool kernel_reader_init(KernelReader *kr, const GuestReader *r, const KernelInfo *ki,
                        GError **errp)
{
    uint64_t top_va = ki->value[KF_INIT_TOP_PGT];
    uint64_t pa, size;

    if (!kernel_info_has(ki, KF_INIT_TOP_PGT) || !kernel_info_has(ki, KF_PHYS_BASE)) {
        error_setg(errp, "the guest's VMCOREINFO lacks SYMBOL(init_top_pgt) or "
                   "NUMBER(phys_base): its page tables cannot be found");
        return false;
    }
    if (kernel_info_has(ki, KF_SME_MASK) && ki->value[KF_SME_MASK]) {
        error_setg(errp, "the guest's memory is encrypted (NUMBER(sme_mask) is not 0): "
                   "its kernel data cannot be read");
        return false;
    }
    memset(kr, 0, sizeof(*kr));
    kr->reader = r;
    kr->cpu.cr[0] = CR0_PE | CR0_PG;
    kr->cpu.cr[4] = CR4_PAE | (ki->value[KF_PGTABLE_L5] == 1 ? CR4_LA57 : 0);
    kr->cpu.efer = EFER_LME | EFER_LMA;
    kr->cpu.cr[3] = top_va - LINUX_START_KERNEL_MAP + ki->value[KF_PHYS_BASE];
    if (top_va < LINUX_START_KERNEL_MAP || (kr->cpu.cr[3] & 0xfff) ||
        !x86_cpu_translate(&kr->cpu, r, top_va, &pa, &size) || pa != kr->cpu.cr[3]) {
        error_setg(errp, "the guest kernel's page tables (SYMBOL(init_top_pgt) %#" PRIx64
                   ", NUMBER(phys_base) %" PRId64 ") do not map themselves",
                   top_va, (int64_t)ki->value[KF_PHYS_BASE]);
        return false;
    }
    return true;
}

/* The physical address of va, from the cached translation or a walk. */
static bool translate(KernelReader *kr, uint64_t va, uint64_t *pa, uint64_t *left)
{
    if (!kr->cached_size || va - kr->cached_va >= kr->cached_size) {
        uint64_t p, size;
        if (!x86_cpu_translate(&kr->cpu, kr->reader, va, &p, &size)) {
            return false;
        }
        kr->cached_size = size;
        kr->cached_va = va & ~(size - 1);
        kr->cached_pa = p & ~(size - 1);
    }
    *pa = kr->cached_pa + (va - kr->cached_va);
    *left = kr->cached_size - (va - kr->cached_va);
    return true;
}

bool kernel_read(KernelReader *kr, uint64_t va, void *buf, size_t len)
{
    uint8_t *out = buf;

    while (len) {
        uint64_t pa, left;
        if (!translate(kr, va, &pa, &left)) {
            return false;
        }
        size_t n = (size_t)MIN(len, left);
        if (!guest_reader_read(kr->reader, pa, out, n)) {
            return false;
        }
        out += n;
        va += n;
        len -= n;
    }
    return true;
}
