/*
 * x86_64 guest set-up: identity-mapped page tables with user access, a GDT with
 * ring-3 segments and a TSS, boot information, and the ELF image itself.
 * Every vCPU enters the guest directly at CPL3 (see demo_abi.h).
 */
#include "loader.h"
#include "demo_abi.h"
#include "util.h"

#include <elf.h>
#include <string.h>

extern const unsigned char demo_guest_elf[];
extern const size_t demo_guest_elf_size;

#define PTE_P  0x1ULL
#define PTE_RW 0x2ULL
#define PTE_US 0x4ULL
#define PTE_PS 0x80ULL
#define PAGE_2M (2ULL << 20)
#define TSS_GPA 0x4000ULL
#define TSS_IOMAP_OFFSET 0x68
/* A TSS followed by an all-zero I/O permission bitmap (every port allowed) and
 * the terminating 0xff byte: ring-3 port I/O works even where the bitmap is
 * consulted although IOPL is 3. */
#define TSS_LIMIT (TSS_IOMAP_OFFSET + 65536 / 8)

enum { GDT_NULL, GDT_KCODE, GDT_KDATA, GDT_UCODE, GDT_UDATA, GDT_TSS, GDT_TSS_HI, GDT_ENTRIES };

static const uint64_t gdt_template[GDT_TSS] = {
    [GDT_KCODE] = 0x00af9b000000ffffULL,
    [GDT_KDATA] = 0x00cf93000000ffffULL,
    [GDT_UCODE] = 0x00affb000000ffffULL,
    [GDT_UDATA] = 0x00cff3000000ffffULL,
};

static X86Segment segment_from_descriptor(uint64_t desc, unsigned index, unsigned rpl)
{
    uint32_t hi = (uint32_t)(desc >> 32);
    uint32_t limit = (uint32_t)(desc & 0xffff) | (hi & 0xf0000);
    uint32_t flags = hi & 0x00f0ff00;

    if (flags & SEG_FLAG_G) {
        limit = (limit << 12) | 0xfff;
    }
    return (X86Segment){
        .selector = index * 8 | rpl,
        .limit = limit,
        .flags = flags,
        .base = ((desc >> 16) & 0xffffff) | ((uint64_t)(hi >> 24) << 24),
    };
}

static uint64_t tss_descriptor_low(void)
{
    uint64_t base = TSS_GPA, limit = TSS_LIMIT;

    return limit | (base & 0xffffff) << 16 | 0x8bULL << 40 | ((base >> 24) & 0xff) << 56;
}

static bool write_gdt(VM *vm, GError **errp)
{
    uint64_t *gdt = guest_memory_ptr(vm->mem, MINIVM_GDT_GPA, GDT_ENTRIES * 8);

    if (!gdt) {
        error_setg(errp, "guest RAM too small for the boot structures");
        return false;
    }
    memcpy(gdt, gdt_template, sizeof(gdt_template));
    gdt[GDT_TSS] = tss_descriptor_low();
    gdt[GDT_TSS_HI] = 0;
    uint8_t *tss = guest_memory_ptr(vm->mem, TSS_GPA, TSS_LIMIT + 1);
    if (!tss) {
        error_setg(errp, "guest RAM too small for the boot structures");
        return false;
    }
    memset(tss, 0, TSS_LIMIT + 1);
    tss[0x66] = TSS_IOMAP_OFFSET;
    tss[TSS_LIMIT] = 0xff;
    return true;
}

/* Identity-map every 2 MiB page that overlaps RAM, user-accessible. */
static bool write_page_tables(VM *vm, GError **errp)
{
    uint64_t end = guest_memory_end(vm->mem);
    uint64_t gib = (end + G_GiB - 1) / G_GiB;
    uint64_t *pml4 = guest_memory_ptr(vm->mem, MINIVM_PML4_GPA, (2 + gib) * 4096);

    if (!pml4 || MINIVM_PML4_GPA + (2 + gib) * 4096 > MINIVM_STACKS_GPA) {
        error_setg(errp, "guest RAM layout does not fit the boot page tables");
        return false;
    }
    uint64_t *pdpt = pml4 + 512;
    uint64_t *pd = pdpt + 512;
    pml4[0] = (MINIVM_PML4_GPA + 4096) | PTE_P | PTE_RW | PTE_US;
    for (uint64_t g = 0; g < gib; g++) {
        pdpt[g] = (MINIVM_PML4_GPA + (2 + g) * 4096) | PTE_P | PTE_RW | PTE_US;
    }
    for (guint i = 0; i < guest_memory_count(vm->mem); i++) {
        RamBlock *b = guest_memory_block(vm->mem, i);
        for (uint64_t a = b->gpa & ~(PAGE_2M - 1); a < b->gpa + b->size; a += PAGE_2M) {
            pd[a / PAGE_2M] = a | PTE_P | PTE_RW | PTE_US | PTE_PS;
        }
    }
    return true;
}

static bool write_boot_info(VM *vm, GError **errp)
{
    struct minivm_boot_info *info =
        guest_memory_ptr(vm->mem, MINIVM_BOOT_INFO_GPA, sizeof(*info));

    if (!info || guest_memory_count(vm->mem) > MINIVM_MAX_BOOT_BLOCKS) {
        error_setg(errp, "guest RAM layout does not fit the boot information");
        return false;
    }
    info->magic = MINIVM_BOOT_MAGIC;
    info->seed = MINIVM_DEMO_SEED;
    info->ncpus = vm->ncpus;
    info->nblocks = guest_memory_count(vm->mem);
    info->heartbeat_gpa = MINIVM_HEARTBEAT_GPA;
    for (guint i = 0; i < info->nblocks; i++) {
        RamBlock *b = guest_memory_block(vm->mem, i);
        info->blocks[i] = (struct minivm_boot_block){ b->gpa, b->size };
    }
    return true;
}

static void set_ring3_state(VCPU *cpu, uint64_t entry)
{
    X86CPUState *s = &cpu->state;

    memset(s, 0, sizeof(*s));
    s->rip = entry;
    s->rflags = 0x3002;                          /* IOPL 3, reserved bit 1 */
    s->regs[R_EDI] = cpu->index;
    s->regs[R_ESI] = MINIVM_BOOT_INFO_GPA;
    s->regs[R_ESP] = MINIVM_STACKS_GPA + (cpu->index + 1) * MINIVM_STACK_SIZE - 8;
    s->cs = segment_from_descriptor(gdt_template[GDT_UCODE], GDT_UCODE, 3);
    s->ss = segment_from_descriptor(gdt_template[GDT_UDATA], GDT_UDATA, 3);
    s->ds = s->es = s->fs = s->gs = s->ss;
    s->tr = segment_from_descriptor(tss_descriptor_low(), GDT_TSS, 0);
    s->ldt = (X86Segment){ .flags = 0x2 << SEG_FLAG_TYPE_SHIFT | SEG_FLAG_P };
    s->gdt = (X86Table){ MINIVM_GDT_GPA, GDT_ENTRIES * 8 - 1 };
    s->idt = (X86Table){ 0, 0 };
    s->cr[0] = 0x80050033;                       /* PE MP ET NE WP AM PG */
    s->cr[3] = MINIVM_PML4_GPA;
    s->cr[4] = 0x620;                            /* PAE OSFXSR OSXMMEXCPT */
    s->efer = EFER_LME | EFER_LMA;
    s->apic_base = 0xfee00000 | (cpu->index == 0 ? 0x100 : 0) | 0x800;
    cpu->state_dirty = true;
}

bool loader_load_elf(VM *vm, const uint8_t *image, size_t size, const char *what,
                     uint64_t *entry, GError **errp)
{
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)image;

    if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
        eh->e_machine != EM_X86_64 || eh->e_type != ET_EXEC) {
        error_setg(errp, "%s: not a static x86_64 ELF executable", what);
        return false;
    }
    if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > size ||
        (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff) {
        error_setg(errp, "%s: program headers lie outside the file", what);
        return false;
    }
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(image + eh->e_phoff);
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD) {
            continue;
        }
        if (ph[i].p_filesz > ph[i].p_memsz || ph[i].p_offset > size ||
            ph[i].p_filesz > size - ph[i].p_offset) {
            error_setg(errp, "%s: segment %u lies outside the file", what, i);
            return false;
        }
        if (ph[i].p_paddr < MINIVM_GUEST_LOAD_GPA) {
            error_setg(errp, "%s: segment %u at 0x%" PRIx64 " overlaps the loader area "
                       "below 0x%llx", what, i, (uint64_t)ph[i].p_paddr, MINIVM_GUEST_LOAD_GPA);
            return false;
        }
        uint8_t *dst = guest_memory_ptr(vm->mem, ph[i].p_paddr, ph[i].p_memsz);
        if (!dst) {
            error_setg(errp, "%s: segment %u at 0x%" PRIx64 " does not fit in guest RAM",
                       what, i, (uint64_t)ph[i].p_paddr);
            return false;
        }
        memcpy(dst, image + ph[i].p_offset, ph[i].p_filesz);
        memset(dst + ph[i].p_filesz, 0, ph[i].p_memsz - ph[i].p_filesz);
    }
    *entry = eh->e_entry;
    return true;
}

bool loader_boot_x86(VM *vm, const char *kernel, GError **errp)
{
    g_autofree char *contents = NULL;
    const uint8_t *image = demo_guest_elf;
    size_t size = demo_guest_elf_size;
    uint64_t entry;

    if (vm->ncpus > MINIVM_MAX_CPUS) {
        error_setg(errp, "Invalid SMP CPUs %u. The max CPUs supported by this guest is %d",
                   vm->ncpus, MINIVM_MAX_CPUS);
        return false;
    }
    if (kernel) {
        GError *err = NULL;
        if (!g_file_get_contents(kernel, &contents, &size, &err)) {
            error_setg(errp, "could not load kernel '%s': %s", kernel, err->message);
            g_error_free(err);
            return false;
        }
        image = (const uint8_t *)contents;
    }
    if (guest_memory_end(vm->mem) < MINIVM_FILL_START_GPA) {
        error_setg(errp, "guest RAM must be at least %llu MiB", MINIVM_FILL_START_GPA >> 20);
        return false;
    }
    if (!write_gdt(vm, errp) || !write_page_tables(vm, errp) || !write_boot_info(vm, errp) ||
        !loader_load_elf(vm, image, size, kernel ? kernel : "demo guest", &entry, errp)) {
        return false;
    }
    for (guint i = 0; i < vm->ncpus; i++) {
        set_ring3_state(vm->cpus[i], entry);
    }
    return true;
}
