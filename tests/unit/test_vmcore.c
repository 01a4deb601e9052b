/*
 * Unit tests for the vmcore reader (system/vmcore.c): small synthetic ELF,
 * kdump-compressed and flattened files written by the tiny writers below,
 * then every bad-file case with its one-line error.
 */
#include "config.h"
#include "vmcore.h"
#include "util.h"

#include <elf.h>
#include <glib/gstdio.h>
#include <string.h>
#include <zlib.h>
#if CONFIG_LZO
#include <lzo/lzo1x.h>
#endif
#if CONFIG_SNAPPY
#include <snappy-c.h>
#endif
#if CONFIG_ZSTD
#include <zstd.h>
#endif

#define PAGE 4096u
#define NCPUS 2
#define VMCOREINFO_TEXT "OSRELEASE=6.1.0-test\nPAGESIZE=4096\nNUMBER(phys_base)=-16\n"

static char *tmpdir;

/* ---- byte helpers ---- */

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    memcpy(p, &v, 8);
}

static void patch32(GByteArray *b, size_t off, uint32_t v)
{
    g_assert_cmpuint(off + 4, <=, b->len);
    put32(b->data + off, v);
}

static void patch64(GByteArray *b, size_t off, uint64_t v)
{
    g_assert_cmpuint(off + 8, <=, b->len);
    put64(b->data + off, v);
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void append_zeros(GByteArray *b, size_t n)
{
    g_byte_array_set_size(b, b->len + n);
    memset(b->data + b->len - n, 0, n);
}

static char *write_file(const char *name, const GByteArray *b)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    GError *err = NULL;

    g_file_set_contents(path, (const char *)b->data, b->len, &err);
    g_assert_no_error(err);
    return path;
}

/* ---- guest page contents: compressible, two zero pages, one random page ---- */

static bool page_is_zero_pfn(uint64_t pfn)
{
    return pfn == 3 || pfn == 30;
}

static void page_fill(uint64_t pfn, uint8_t *out)
{
    if (page_is_zero_pfn(pfn)) {
        memset(out, 0, PAGE);
    } else if (pfn == 50) {
        GRand *r = g_rand_new_with_seed(50);
        for (unsigned i = 0; i < PAGE; i += 4) {
            put32(out + i, g_rand_int(r));
        }
        g_rand_free(r);
    } else {
        for (unsigned i = 0; i < PAGE; i += 8) {
            put64(out + i, (pfn * 0x0101010101010101ULL) ^ (i / 128));
        }
    }
}

/* ---- vCPU state and its notes ---- */

static X86Segment seg(uint32_t sel, uint32_t limit, uint32_t flags, uint64_t base)
{
    return (X86Segment){ .selector = sel, .limit = limit, .flags = flags, .base = base };
}

static X86CPUState make_cpu(guint i, bool long_mode, bool kgs)
{
    X86CPUState s = { 0 };

    for (int r = 0; r < 16; r++) {
        s.regs[r] = long_mode ? 0xffff888000000000ULL + i * 0x100 + r
                              : (r < 8 ? 0x1000u + i * 0x100 + r : 0);
    }
    s.rip = long_mode ? 0xffffffff81000000ULL + i : 0xc0100000u + i;
    s.rflags = 0x246;
    uint32_t code = long_mode ? 0x00a09b00 : 0x00cf9b00;
    s.cs = seg(0x10, 0xffffffff, code, 0);
    s.ss = seg(0x18, 0xffffffff, 0x00c09300, 0);
    s.ds = seg(0x18, 0xffffffff, 0x00c09300, 0);
    s.es = seg(0, 0, 0, 0);
    s.fs = seg(0, 0, 0, 0x7f0000001000ULL + i);
    s.gs = seg(0, 0, 0, long_mode ? 0xffff88800f800000ULL + i * 0x100000 : 0x1000 + i);
    s.ldt = seg(0, 0, 0x8200, 0);
    s.tr = seg(0x40, 0x4087, 0x8b00, 0xfffffe0000003000ULL + i * 0x3b000);
    s.gdt = (X86Table){ .base = 0xfffffe0000001000ULL + i, .limit = 0x7f };
    s.idt = (X86Table){ .base = 0xfffffe0000000000ULL, .limit = 0xfff };
    s.cr[0] = long_mode ? 0x80050033 : 0x11;
    s.cr[2] = 0x1234 + i;
    s.cr[3] = 0x1ac6000 + i * 0x1000;
    s.cr[4] = long_mode ? 0x6b0 : 0;
    s.efer = long_mode ? EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE : 0;
    s.apic_base = i == 0 ? 0xfee00900 : 0xfee00800;
    s.kernel_gs_base = kgs ? 0x7ff000 + i : 0;
    return s;
}

static void note_add(GByteArray *out, const char *name, uint32_t type, const void *desc,
                     size_t descsz)
{
    uint8_t hdr[12];
    size_t namesz = strlen(name) + 1;

    put32(hdr, (uint32_t)namesz);
    put32(hdr + 4, (uint32_t)descsz);
    put32(hdr + 8, type);
    g_byte_array_append(out, hdr, 12);
    g_byte_array_append(out, (const guint8 *)name, (guint)namesz);
    append_zeros(out, ((namesz + 3) & ~3u) - namesz);
    g_byte_array_append(out, desc, (guint)descsz);
    append_zeros(out, ((descsz + 3) & ~3u) - descsz);
}

static void prstatus64(const X86CPUState *s, guint i, uint8_t d[336])
{
    const uint64_t regs[27] = {
        s->regs[R_R15], s->regs[R_R14], s->regs[R_R13], s->regs[R_R12], s->regs[R_EBP],
        s->regs[R_EBX], s->regs[R_R11], s->regs[R_R10], s->regs[R_R9], s->regs[R_R8],
        s->regs[R_EAX], s->regs[R_ECX], s->regs[R_EDX], s->regs[R_ESI], s->regs[R_EDI], 0,
        s->rip, s->cs.selector, s->rflags, s->regs[R_ESP], s->ss.selector, s->fs.base,
        s->gs.base, s->ds.selector, s->es.selector, s->fs.selector, s->gs.selector,
    };

    memset(d, 0, 336);
    put32(d + 32, i + 1);
    for (int r = 0; r < 27; r++) {
        put64(d + 112 + 8 * r, regs[r]);
    }
}

static void prstatus32(const X86CPUState *s, guint i, uint8_t d[144])
{
    const uint32_t regs[17] = {
        (uint32_t)s->regs[R_EBX], (uint32_t)s->regs[R_ECX], (uint32_t)s->regs[R_EDX],
        (uint32_t)s->regs[R_ESI], (uint32_t)s->regs[R_EDI], (uint32_t)s->regs[R_EBP],
        (uint32_t)s->regs[R_EAX], s->ds.selector, s->es.selector, s->fs.selector,
        s->gs.selector, 0, (uint32_t)s->rip, s->cs.selector, (uint32_t)s->rflags,
        (uint32_t)s->regs[R_ESP], s->ss.selector,
    };

    memset(d, 0, 144);
    put32(d + 24, i + 1);
    for (int r = 0; r < 17; r++) {
        put32(d + 72 + 4 * r, regs[r]);
    }
}

static uint8_t *qemu_seg(uint8_t *p, const X86Segment *s)
{
    put32(p, s->selector);
    put32(p + 4, s->limit);
    put32(p + 8, s->flags);
    put64(p + 16, s->base);
    return p + 24;
}

static void qemu_cpu_state(const X86CPUState *s, uint32_t size, uint8_t d[440])
{
    static const int order[16] = { R_EAX, R_EBX, R_ECX, R_EDX, R_ESI, R_EDI, R_ESP, R_EBP,
                                   R_R8, R_R9, R_R10, R_R11, R_R12, R_R13, R_R14, R_R15 };
    const X86Segment *segs[8] = { &s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->ldt,
                                  &s->tr };
    X86Segment gdt = seg(0, s->gdt.limit, 0, s->gdt.base);
    X86Segment idt = seg(0, s->idt.limit, 0, s->idt.base);
    uint8_t *p = d + 8;

    memset(d, 0, 440);
    put32(d, 1);
    put32(d + 4, size);
    for (int i = 0; i < 16; i++, p += 8) {
        put64(p, s->regs[order[i]]);
    }
    put64(p, s->rip);
    put64(p + 8, s->rflags);
    p += 16;
    for (int i = 0; i < 8; i++) {
        p = qemu_seg(p, segs[i]);
    }
    p = qemu_seg(qemu_seg(p, &gdt), &idt);
    for (int i = 0; i < 5; i++, p += 8) {
        put64(p, s->cr[i]);
    }
    if (size >= 440) {
        put64(p, s->kernel_gs_base);
    }
}

typedef enum { CPU_X86_64, CPU_I386 } CpuKind;

/* QEMU's note order: PRSTATUS per vCPU, QEMU per vCPU (qemu_size 0: none), VMCOREINFO. */
static GByteArray *make_notes(CpuKind kind, uint32_t qemu_size)
{
    GByteArray *notes = g_byte_array_new();
    uint8_t d[440];

    for (guint i = 0; i < NCPUS; i++) {
        X86CPUState s = make_cpu(i, kind == CPU_X86_64, qemu_size >= 440);
        if (kind == CPU_X86_64) {
            prstatus64(&s, i, d);
            note_add(notes, "CORE", NT_PRSTATUS, d, 336);
        } else {
            prstatus32(&s, i, d);
            note_add(notes, "CORE", NT_PRSTATUS, d, 144);
        }
    }
    for (guint i = 0; qemu_size && i < NCPUS; i++) {
        X86CPUState s = make_cpu(i, kind == CPU_X86_64, qemu_size >= 440);
        qemu_cpu_state(&s, qemu_size, d);
        note_add(notes, "QEMU", 0, d, qemu_size);
    }
    note_add(notes, "VMCOREINFO", 0, VMCOREINFO_TEXT, strlen(VMCOREINFO_TEXT));
    return notes;
}

static GBytes *expected_guest_note(void)
{
    g_autoptr(GByteArray) b = g_byte_array_new();

    note_add(b, "VMCOREINFO", 0, VMCOREINFO_TEXT, strlen(VMCOREINFO_TEXT));
    return g_byte_array_free_to_bytes(g_steal_pointer(&b));
}

static void assert_seg(const X86Segment *a, const X86Segment *b)
{
    g_assert_cmphex(a->selector, ==, b->selector);
    g_assert_cmphex(a->limit, ==, b->limit);
    g_assert_cmphex(a->flags, ==, b->flags);
    g_assert_cmphex(a->base, ==, b->base);
}

static void assert_cpu(const X86CPUState *got, const X86CPUState *want)
{
    for (int r = 0; r < 16; r++) {
        g_assert_cmphex(got->regs[r], ==, want->regs[r]);
    }
    g_assert_cmphex(got->rip, ==, want->rip);
    g_assert_cmphex(got->rflags, ==, want->rflags);
    assert_seg(&got->es, &want->es);
    assert_seg(&got->cs, &want->cs);
    assert_seg(&got->ss, &want->ss);
    assert_seg(&got->ds, &want->ds);
    assert_seg(&got->fs, &want->fs);
    assert_seg(&got->gs, &want->gs);
    assert_seg(&got->ldt, &want->ldt);
    assert_seg(&got->tr, &want->tr);
    g_assert_cmphex(got->gdt.base, ==, want->gdt.base);
    g_assert_cmphex(got->gdt.limit, ==, want->gdt.limit);
    g_assert_cmphex(got->idt.base, ==, want->idt.base);
    g_assert_cmphex(got->idt.limit, ==, want->idt.limit);
    for (int c = 0; c < 5; c++) {
        g_assert_cmphex(got->cr[c], ==, want->cr[c]);
    }
    g_assert_cmphex(got->efer, ==, want->efer);
    g_assert_cmphex(got->apic_base, ==, want->apic_base);
    g_assert_cmphex(got->kernel_gs_base, ==, want->kernel_gs_base);
}

static void check_cpus(const VmcoreImage *img, CpuKind kind, uint32_t qemu_size)
{
    g_assert_cmpuint(vmcore_cpu_count(img), ==, NCPUS);
    for (guint i = 0; i < NCPUS; i++) {
        X86CPUState want = make_cpu(i, kind == CPU_X86_64, qemu_size >= 440);
        assert_cpu(vmcore_cpu(img, i), &want);
    }
}

static void check_note(const VmcoreImage *img)
{
    g_autoptr(GBytes) want = expected_guest_note();
    GBytes *got = vmcore_guest_note(img);

    g_assert_nonnull(got);
    g_assert_true(g_bytes_equal(got, want));
}

/* ---- opening, loading and checking memory ---- */

static VmcoreImage *open_ok(const char *path)
{
    GError *err = NULL;
    VmcoreImage *img = vmcore_open(path, &err);

    g_assert_no_error(err);
    g_assert_nonnull(img);
    return img;
}

static GuestMemory *memory_for(const VmcoreImage *img)
{
    GError *err = NULL;
    GuestMemory *mem = guest_memory_new(NULL, &err);

    g_assert_no_error(err);
    for (guint i = 0; i < vmcore_block_count(img); i++) {
        VmcoreBlock b = vmcore_block(img, i);
        g_assert_nonnull(guest_memory_add(mem, "ram", b.gpa, b.size, &err));
        g_assert_no_error(err);
    }
    return mem;
}

static GuestMemory *load_ok(VmcoreImage *img)
{
    GError *err = NULL;
    GuestMemory *mem = memory_for(img);

    g_assert_true(vmcore_read_memory(img, mem, &err));
    g_assert_no_error(err);
    return mem;
}

static void check_page(const GuestMemory *mem, uint64_t gpa, bool zero)
{
    uint8_t want[PAGE];
    const uint8_t *got = guest_memory_ptr(mem, gpa, PAGE);

    g_assert_nonnull(got);
    if (zero) {
        memset(want, 0, PAGE);
    } else {
        page_fill(gpa / PAGE, want);
    }
    if (memcmp(got, want, PAGE) != 0) {
        g_error("guest page 0x%" PRIx64 " differs", gpa);
    }
}

static void check_blocks(const VmcoreImage *img, const VmcoreBlock *want, guint n)
{
    g_assert_cmpuint(vmcore_block_count(img), ==, n);
    for (guint i = 0; i < n; i++) {
        VmcoreBlock b = vmcore_block(img, i);
        g_assert_cmphex(b.gpa, ==, want[i].gpa);
        g_assert_cmphex(b.size, ==, want[i].size);
    }
}

static void assert_error(GError *err, const char *path, const char *what)
{
    g_assert_nonnull(err);
    g_assert_true(g_str_has_prefix(err->message, path));
    g_assert_null(strchr(err->message, '\n'));
    if (!strstr(err->message, what)) {
        g_error("error \"%s\" does not mention \"%s\"", err->message, what);
    }
}

static void expect_open_error(const char *path, const char *what)
{
    GError *err = NULL;
    VmcoreImage *img = vmcore_open(path, &err);

    g_assert_null(img);
    assert_error(err, path, what);
    g_error_free(err);
}

static void expect_read_error(const char *path, const char *what)
{
    GError *err = NULL;
    VmcoreImage *img = open_ok(path);
    GuestMemory *mem = memory_for(img);

    g_assert_false(vmcore_read_memory(img, mem, &err));
    assert_error(err, path, what);
    g_error_free(err);
    guest_memory_free(mem);
    vmcore_close(img);
}

/* ---- a tiny ELF core writer ---- */

typedef struct TestLoad {
    uint64_t paddr, memsz, filesz;
    uint64_t offset;        /* ELF_DATA_AUTO: next bytes of the data area */
} TestLoad;

#define ELF_DATA_AUTO UINT64_MAX
#define ELF_NO_OFFSET (UINT64_MAX - 1)  /* p_offset = all-ones, as QEMU's unbacked mappings */

typedef struct ElfSpec {
    bool is64;
    uint16_t machine;
    const TestLoad *loads;
    guint nloads;
    GByteArray *notes;
    uint64_t identity_len;  /* data area starts with page_fill() of gpa [0, identity_len) */
} ElfSpec;

typedef struct ElfLayout {
    size_t ehsize, phentsize, shsize;
    uint64_t phnum, note_off, data_off;
    bool xnum;
} ElfLayout;

static ElfLayout elf_layout(const ElfSpec *s)
{
    ElfLayout l = { .ehsize = s->is64 ? 64 : 52, .phentsize = s->is64 ? 56 : 32,
                    .shsize = s->is64 ? 64 : 40, .phnum = 1 + s->nloads };

    l.xnum = l.phnum >= PN_XNUM;
    l.note_off = l.ehsize + l.phnum * l.phentsize + (l.xnum ? l.shsize : 0);
    l.data_off = l.note_off + s->notes->len;
    return l;
}

static void elf_header(GByteArray *b, const ElfSpec *s, const ElfLayout *l)
{
    uint8_t *h = b->data;
    uint64_t shoff = l->xnum ? l->ehsize + l->phnum * l->phentsize : 0;

    memcpy(h, ELFMAG, SELFMAG);
    h[EI_CLASS] = s->is64 ? ELFCLASS64 : ELFCLASS32;
    h[EI_DATA] = ELFDATA2LSB;
    h[EI_VERSION] = EV_CURRENT;
    put16(h + 16, ET_CORE);
    put16(h + 18, s->machine);
    put32(h + 20, EV_CURRENT);
    if (s->is64) {
        put64(h + 32, l->ehsize);
        put64(h + 40, shoff);
    } else {
        put32(h + 28, (uint32_t)l->ehsize);
        put32(h + 32, (uint32_t)shoff);
    }
    size_t o = s->is64 ? 52 : 40;
    put16(h + o, (uint16_t)l->ehsize);
    put16(h + o + 2, (uint16_t)l->phentsize);
    put16(h + o + 4, l->xnum ? PN_XNUM : (uint16_t)l->phnum);
    put16(h + o + 6, l->xnum ? (uint16_t)l->shsize : 0);
    put16(h + o + 8, l->xnum ? 1 : 0);
    if (l->xnum) {
        put32(h + shoff + (s->is64 ? 44 : 28), (uint32_t)l->phnum);
    }
}

static void elf_phdr(uint8_t *p, bool is64, uint32_t type, uint64_t off, uint64_t paddr,
                     uint64_t filesz, uint64_t memsz)
{
    if (is64) {
        put32(p, type);
        put64(p + 8, off);
        put64(p + 16, paddr);
        put64(p + 24, paddr);
        put64(p + 32, filesz);
        put64(p + 40, memsz);
    } else {
        put32(p, type);
        put32(p + 4, (uint32_t)off);
        put32(p + 8, (uint32_t)paddr);
        put32(p + 12, (uint32_t)paddr);
        put32(p + 16, (uint32_t)filesz);
        put32(p + 20, (uint32_t)memsz);
    }
}

/* Header, PT_NOTE, PT_LOADs, (PN_XNUM section), notes, the identity data, then
 * the data of every load with an automatic offset, in order. Explicit offsets
 * are relative to the data area. */
static GByteArray *elf_build(const ElfSpec *s)
{
    ElfLayout l = elf_layout(s);
    GByteArray *b = g_byte_array_new();
    uint64_t data_end = l.data_off + s->identity_len;

    append_zeros(b, l.note_off);
    elf_header(b, s, &l);
    elf_phdr(b->data + l.ehsize, s->is64, PT_NOTE, l.note_off, 0, s->notes->len,
             s->notes->len);
    g_byte_array_append(b, s->notes->data, s->notes->len);
    append_zeros(b, s->identity_len);
    for (uint64_t p = 0; p < s->identity_len; p += PAGE) {
        page_fill(p / PAGE, b->data + l.data_off + p);
    }
    for (guint i = 0; i < s->nloads; i++) {
        const TestLoad *t = &s->loads[i];
        uint64_t off = t->offset == ELF_DATA_AUTO ? data_end :
                       t->offset == ELF_NO_OFFSET ? UINT64_MAX : l.data_off + t->offset;
        if (t->offset == ELF_DATA_AUTO) {
            append_zeros(b, t->filesz);
            for (uint64_t p = 0; p < t->filesz; p += PAGE) {
                page_fill((t->paddr + p) / PAGE, b->data + data_end + p);
            }
            data_end += t->filesz;
        }
        elf_phdr(b->data + l.ehsize + (i + 1) * l.phentsize, s->is64, PT_LOAD, off, t->paddr,
                 t->filesz, t->memsz);
    }
    return b;
}

static const TestLoad basic_loads[] = {
    { 0, 0x10000, 0x10000, ELF_DATA_AUTO },
    { 0x10000, 0x10000, 0x10000, ELF_DATA_AUTO },       /* adjacent: merged */
    { 0x100000, 0x8000, 0x4000, ELF_DATA_AUTO },        /* zero tail */
    { 0x100000000ULL, 0x4000, 0x4000, ELF_DATA_AUTO },  /* above 4 GiB */
};

static void check_loads_memory(const GuestMemory *mem, const TestLoad *loads, guint n)
{
    for (guint i = 0; i < n; i++) {
        for (uint64_t p = 0; p < loads[i].memsz; p += PAGE) {
            uint64_t gpa = loads[i].paddr + p;
            check_page(mem, gpa, p >= loads[i].filesz || page_is_zero_pfn(gpa / PAGE));
        }
    }
}

static void run_elf(const char *name, bool is64, uint16_t machine, CpuKind kind,
                    uint32_t qemu_size, guint nloads)
{
    g_autoptr(GByteArray) notes = make_notes(kind, qemu_size);
    ElfSpec spec = { is64, machine, basic_loads, nloads, notes, 0 };
    g_autoptr(GByteArray) file = elf_build(&spec);
    g_autofree char *path = write_file(name, file);
    const VmcoreBlock want[] = { { 0, 0x20000 }, { 0x100000, 0x8000 },
                                 { 0x100000000ULL, 0x4000 } };
    VmcoreImage *img = open_ok(path);

    check_blocks(img, want, nloads == 4 ? 3 : 2);
    check_cpus(img, kind, qemu_size);
    check_note(img);
    GuestMemory *mem = load_ok(img);
    check_loads_memory(mem, basic_loads, nloads);
    guest_memory_free(mem);
    vmcore_close(img);
}

static void test_elf64(void)
{
    run_elf("elf64", true, EM_X86_64, CPU_X86_64, 440, 4);
}

static void test_elf64_qemu432(void)
{
    run_elf("elf64-432", true, EM_X86_64, CPU_X86_64, 432, 4);
}

static void test_elf32(void)
{
    run_elf("elf32", false, EM_386, CPU_I386, 432, 3);
}

static void test_elf64_i386(void)
{
    run_elf("elf64-i386", true, EM_386, CPU_I386, 440, 4);
}

/* No QEMU note: flat descriptors for the prstatus selectors, long mode from CS. */
static void test_elf_prstatus_only(void)
{
    g_autoptr(GByteArray) notes = make_notes(CPU_X86_64, 0);
    ElfSpec spec = { true, EM_X86_64, basic_loads, 1, notes, 0 };
    g_autoptr(GByteArray) file = elf_build(&spec);
    g_autofree char *path = write_file("prstatus-only", file);
    VmcoreImage *img = open_ok(path);

    g_assert_cmpuint(vmcore_cpu_count(img), ==, NCPUS);
    for (guint i = 0; i < NCPUS; i++) {
        const X86CPUState *s = vmcore_cpu(img, i);
        X86CPUState want = make_cpu(i, true, false);
        g_assert_cmphex(s->regs[R_EAX], ==, want.regs[R_EAX]);
        g_assert_cmphex(s->regs[R_ESP], ==, want.regs[R_ESP]);
        g_assert_cmphex(s->rip, ==, want.rip);
        g_assert_cmphex(s->cs.selector, ==, 0x10);
        g_assert_true(s->cs.flags & SEG_FLAG_L);
        g_assert_true(s->cs.flags & SEG_FLAG_P);
        g_assert_cmphex(s->ss.selector, ==, 0x18);
        g_assert_cmphex(s->fs.base, ==, want.fs.base);
        g_assert_cmphex(s->gs.base, ==, want.gs.base);
        g_assert_true(s->tr.flags & SEG_FLAG_P);
        g_assert_cmphex(s->efer, ==, EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE);
        g_assert_true(s->cr[0] & CR0_PG);
        g_assert_true(s->cr[4] & CR4_PAE);
        g_assert_cmphex(s->apic_base, ==, i == 0 ? 0xfee00900 : 0xfee00800);
    }
    vmcore_close(img);
}

/* A vCPU caught in a 32-bit process of a 64-bit kernel: CS.L clear, yet long mode
 * (an x86_64 prstatus, paging with PAE); a re-dump must stay ELFCLASS64. */
static void test_elf_compat_mode_cpu(void)
{
    g_autoptr(GByteArray) notes = g_byte_array_new();
    uint8_t d[440];
    X86CPUState want = make_cpu(0, true, true);

    want.cs = seg(0x23, 0xffffffff, 0x00cffb00, 0);     /* 32-bit user code */
    want.rip = 0x8048000;
    prstatus64(&want, 0, d);
    note_add(notes, "CORE", NT_PRSTATUS, d, 336);
    qemu_cpu_state(&want, 440, d);
    note_add(notes, "QEMU", 0, d, 440);
    ElfSpec spec = { true, EM_X86_64, basic_loads, 4, notes, 0 };
    g_autoptr(GByteArray) out = elf_build(&spec);
    g_autofree char *path = write_file("compat-mode", out);
    VmcoreImage *img = open_ok(path);

    g_assert_cmpuint(vmcore_cpu_count(img), ==, 1);
    assert_cpu(vmcore_cpu(img, 0), &want);
    g_assert_true(x86_cpu_long_mode(vmcore_cpu(img, 0)));
    vmcore_close(img);
}

/* An x86_64 core of these loads (identity_len bytes of data first), opened, with one
 * block, want, and its memory loaded. */
static VmcoreImage *open_x86_64_loads(const char *name, const TestLoad *loads, guint n,
                                      uint64_t identity_len, const VmcoreBlock *want,
                                      GuestMemory **mem)
{
    g_autoptr(GByteArray) notes = make_notes(CPU_X86_64, 440);
    ElfSpec spec = { true, EM_X86_64, loads, n, notes, identity_len };
    g_autoptr(GByteArray) out = elf_build(&spec);
    g_autofree char *path = write_file(name, out);
    VmcoreImage *img = open_ok(path);

    check_blocks(img, want, 1);
    *mem = load_ok(img);
    return img;
}

/* Paging dumps: duplicate and nested loads over the same bytes, unbacked mappings. */
static void test_elf_paging_duplicates(void)
{
    const TestLoad loads[] = {
        { 0, 0x20000, 0x20000, 0 },
        { 0x4000, 0x2000, 0x2000, 0x4000 },          /* nested, same bytes */
        { 0x4000, 0x2000, 0x2000, 0x4000 },          /* identical duplicate */
        { 0, 0x20000, 0x20000, 0 },                  /* identical duplicate */
        { 0xfee00000, 0x1000, 0, ELF_NO_OFFSET },    /* not RAM: skipped */
        { UINT64_MAX, 0x1000, 0x1000, 0 },           /* p_paddr all-ones: skipped */
        { 0x18000, 0x10000, 0x8000, 0x18000 },       /* overlaps, runs on with zeros */
    };
    const VmcoreBlock want = { 0, 0x28000 };
    GuestMemory *mem;
    VmcoreImage *img = open_x86_64_loads("paging", loads, G_N_ELEMENTS(loads), 0x20000, &want,
                                         &mem);

    check_loads_memory(mem, loads, 1);
    for (uint64_t gpa = 0x20000; gpa < 0x28000; gpa += PAGE) {
        check_page(mem, gpa, true);
    }
    guest_memory_free(mem);
    vmcore_close(img);
}

/* Linux's /proc/vmcore on x86_64: the kernel's text has a PT_LOAD of its own (written
 * first, at its own file offset) inside the RAM one; a load that reaches past the one
 * before it adds what lies beyond. Every copy holds the same bytes, as in a real core. */
static void test_elf_kernel_text_load(void)
{
    const TestLoad loads[] = {
        { 0x8000, 0x4000, 0x4000, ELF_DATA_AUTO },      /* kernel text */
        { 0, 0x20000, 0x20000, ELF_DATA_AUTO },         /* the RAM around it */
        { 0x1c000, 0x8000, 0x6000, ELF_DATA_AUTO },     /* past it, then a zero tail */
    };
    const VmcoreBlock want = { 0, 0x24000 };
    GuestMemory *mem;
    VmcoreImage *img = open_x86_64_loads("kernel-text", loads, G_N_ELEMENTS(loads), 0, &want,
                                         &mem);

    check_loads_memory(mem, loads, G_N_ELEMENTS(loads));
    guest_memory_free(mem);
    vmcore_close(img);
}

/* Overlapping loads with different bytes (an inconsistent core): the load met first
 * keeps its addresses, a later one gives only what lies beyond, and a third inside
 * the second's clipped part adds nothing. */
static void test_elf_first_load_keeps_overlap(void)
{
    const TestLoad loads[] = {
        { 0, 0x10000, 0x10000, 0 },              /* A: the identity bytes, pfn 0-15 */
        { 0x8000, 0x10000, 0x10000, 0 },         /* B: the bytes of pfn 0-15 again */
        { 0x9000, 0x1000, 0x1000, 0x1000 },      /* C: B's delta, inside A */
    };
    const VmcoreBlock want = { 0, 0x18000 };
    GuestMemory *mem;
    VmcoreImage *img = open_x86_64_loads("first-keeps", loads, G_N_ELEMENTS(loads), 0x10000,
                                         &want, &mem);
    uint8_t page[PAGE];

    for (uint64_t pfn = 0; pfn < 0x18; pfn++) {
        page_fill(pfn < 0x10 ? pfn : pfn - 8, page);    /* beyond A: B's bytes there */
        g_assert_cmpmem(guest_memory_ptr(mem, pfn * PAGE, PAGE), PAGE, page, PAGE);
    }
    guest_memory_free(mem);
    vmcore_close(img);
}

/* PN_XNUM: 70000 PT_LOADs of 4 KiB; one in 1024 carries data, the others are zero. */
#define XNUM_LOADS 70000u

static void test_elf_pn_xnum(void)
{
    g_autofree TestLoad *loads = g_new0(TestLoad, XNUM_LOADS);
    g_autoptr(GByteArray) notes = make_notes(CPU_X86_64, 440);

    for (guint i = 0; i < XNUM_LOADS; i++) {
        bool data = i % 1024 == 0;
        loads[i] = (TestLoad){ (uint64_t)i * PAGE, PAGE, data ? PAGE : 0,
                               data ? ELF_DATA_AUTO : 0 };
    }
    ElfSpec spec = { true, EM_X86_64, loads, XNUM_LOADS, notes, 0 };
    g_autoptr(GByteArray) file = elf_build(&spec);
    g_assert_cmphex(file->data[56] | file->data[57] << 8, ==, PN_XNUM);
    g_autofree char *path = write_file("pn-xnum", file);
    const VmcoreBlock want[] = { { 0, (uint64_t)XNUM_LOADS * PAGE } };
    VmcoreImage *img = open_ok(path);

    check_blocks(img, want, 1);
    check_cpus(img, CPU_X86_64, 440);
    check_note(img);
    GuestMemory *mem = load_ok(img);
    for (guint i = 0; i < XNUM_LOADS; i += 512) {
        check_page(mem, (uint64_t)i * PAGE, i % 1024 != 0 || page_is_zero_pfn(i));
    }
    check_page(mem, (uint64_t)(XNUM_LOADS - 1) * PAGE, true);
    guest_memory_free(mem);
    vmcore_close(img);
}

/* ---- a tiny kdump-compressed writer ---- */

#define KD_MAPNR 64u
#define KD_NOT_DUMPED 25u

static bool kd_present(uint64_t pfn)
{
    return pfn < 16 || (pfn >= 20 && pfn < 40) || (pfn >= 48 && pfn < KD_MAPNR);
}

static bool kd_dumped(uint64_t pfn)
{
    return kd_present(pfn) && pfn != KD_NOT_DUMPED;
}

typedef struct KdumpSpec {
    bool i386;
    uint32_t flags;          /* compression of pages that shrink */
    int32_t version;
    uint64_t short_pfn;      /* this page is compressed from half a page (bad file) */
    bool qemu_x86_64;        /* i386 as qemu-system-x86_64 writes it: machine "x86_64",
                              * max_mapnr to 4 GiB (v6 readers take the sub-header's) */
} KdumpSpec;

typedef struct KdumpGeometry {
    uint64_t bitmap1, bitmap2, desc, data;
    uint32_t sub_blocks, bitmap_blocks, ndumped;
} KdumpGeometry;

static size_t compress_page(uint32_t flags, const uint8_t *in, size_t in_len, uint8_t *out,
                            size_t cap)
{
    switch (flags) {
    case 0x1: {
        uLongf n = cap;
        g_assert_cmpint(compress2(out, &n, in, in_len, 1), ==, Z_OK);
        return n;
    }
#if CONFIG_LZO
    case 0x2: {
        lzo_uint n = cap;
        g_autofree void *work = g_malloc(LZO1X_1_MEM_COMPRESS);
        g_assert_cmpint(lzo1x_1_compress(in, in_len, out, &n, work), ==, LZO_E_OK);
        return n;
    }
#endif
#if CONFIG_SNAPPY
    case 0x4: {
        size_t n = cap;
        g_assert_cmpint(snappy_compress((const char *)in, in_len, (char *)out, &n), ==,
                        SNAPPY_OK);
        return n;
    }
#endif
#if CONFIG_ZSTD
    case 0x20:
        return ZSTD_compress(out, cap, in, in_len, 1);
#endif
    default:
        return in_len + 1;   /* store raw */
    }
}

static void kd_bitmaps(GByteArray *b, const KdumpGeometry *g)
{
    for (uint64_t pfn = 0; pfn < KD_MAPNR; pfn++) {
        if (kd_present(pfn)) {
            b->data[g->bitmap1 + pfn / 8] |= 1u << (pfn % 8);
        }
        if (kd_dumped(pfn)) {
            b->data[g->bitmap2 + pfn / 8] |= 1u << (pfn % 8);
        }
    }
}

static void kd_headers(GByteArray *b, const KdumpSpec *s, const KdumpGeometry *g,
                       const GByteArray *notes)
{
    uint8_t *h = b->data, *sub = b->data + PAGE;
    unsigned st = s->i386 ? 412 : 424;

    memcpy(h, "KDUMP   ", 8);
    put32(h + 8, (uint32_t)s->version);
    strcpy((char *)h + 12 + 4 * 65, s->i386 && !s->qemu_x86_64 ? "i686" : "x86_64");
    put32(h + st, s->flags);
    put32(h + st + 4, PAGE);
    put32(h + st + 8, g->sub_blocks);
    put32(h + st + 12, g->bitmap_blocks);
    put32(h + st + 16, s->qemu_x86_64 ? 0x100000 : KD_MAPNR);
    put32(h + st + 36, NCPUS);
    uint64_t note_off = PAGE + (s->i386 ? 80 : 104);
    put64(sub + (s->i386 ? 32 : 48), note_off);
    if (s->i386) {
        put32(sub + 40, notes->len);
        put64(sub + 72, KD_MAPNR);
    } else {
        put64(sub + 56, notes->len);
        put64(sub + 96, KD_MAPNR);
    }
    memcpy(b->data + note_off, notes->data, notes->len);
}

static void kd_add_desc(GByteArray *b, uint64_t at, uint64_t off, uint32_t size, uint32_t flags)
{
    put64(b->data + at, off);
    put32(b->data + at + 8, size);
    put32(b->data + at + 12, flags);
}

/* The shared zero page, then every other dumped page, compressed when it shrinks. */
static void kd_pages(GByteArray *b, const KdumpSpec *s, const KdumpGeometry *g)
{
    uint8_t page[PAGE], out[2 * PAGE];
    uint64_t desc = g->desc;

    append_zeros(b, PAGE);
    for (uint64_t pfn = 0; pfn < KD_MAPNR; pfn++) {
        if (!kd_dumped(pfn)) {
            continue;
        }
        page_fill(pfn, page);
        if (page_is_zero_pfn(pfn)) {
            kd_add_desc(b, desc, g->data, PAGE, 0);
        } else {
            size_t len = pfn == s->short_pfn ? PAGE / 2 : PAGE;
            size_t n = compress_page(s->flags, page, len, out, sizeof(out));
            bool raw = n >= PAGE;
            kd_add_desc(b, desc, b->len, raw ? PAGE : (uint32_t)n, raw ? 0 : s->flags);
            g_byte_array_append(b, raw ? page : out, raw ? PAGE : (guint)n);
        }
        desc += 24;
    }
}

static GByteArray *kdump_build(const KdumpSpec *s)
{
    g_autoptr(GByteArray) notes = make_notes(s->i386 ? CPU_I386 : CPU_X86_64,
                                             s->i386 ? 432 : 440);
    GByteArray *b = g_byte_array_new();
    KdumpGeometry g = { 0 };

    g.sub_blocks = (uint32_t)((s->i386 ? 80 : 104) + notes->len + PAGE - 1) / PAGE;
    g.bitmap_blocks = 2;
    g.bitmap1 = (1 + g.sub_blocks) * PAGE;
    g.bitmap2 = g.bitmap1 + PAGE;
    g.desc = g.bitmap2 + PAGE;
    for (uint64_t pfn = 0; pfn < KD_MAPNR; pfn++) {
        g.ndumped += kd_dumped(pfn);
    }
    g.data = g.desc + 24 * g.ndumped;
    append_zeros(b, g.data);
    kd_headers(b, s, &g, notes);
    kd_bitmaps(b, &g);
    kd_pages(b, s, &g);
    return b;
}

typedef struct FlatChunk {
    uint64_t off, size;
} FlatChunk;

/* makedumpfile flattened: records of assorted sizes, written in reverse order,
 * all-zero chunks left out (they must read back as zero). */
static GByteArray *flatten(const GByteArray *logical)
{
    static const size_t sizes[] = { 4096, 777, 10000, 1 };
    g_autoptr(GArray) recs = g_array_new(FALSE, FALSE, sizeof(FlatChunk));
    GByteArray *out = g_byte_array_new();
    uint8_t hdr[16];

    append_zeros(out, 4096);
    memcpy(out->data, "makedumpfile", 12);
    put_be64(out->data + 16, 1);
    put_be64(out->data + 24, 1);
    for (size_t off = 0, i = 0; off < logical->len; i++) {
        FlatChunk r = { off, MIN(sizes[i % 4], logical->len - off) };
        g_array_append_val(recs, r);
        off += r.size;
    }
    for (guint i = recs->len; i-- > 0;) {
        const FlatChunk *r = &g_array_index(recs, FlatChunk, i);
        bool zero = TRUE;
        for (uint64_t k = 0; k < r->size && zero; k++) {
            zero = logical->data[r->off + k] == 0;
        }
        if (zero && r->off + r->size < logical->len) {
            continue;
        }
        put_be64(hdr, r->off);
        put_be64(hdr + 8, r->size);
        g_byte_array_append(out, hdr, 16);
        g_byte_array_append(out, logical->data + r->off, (guint)r->size);
    }
    memset(hdr, 0xff, 16);
    g_byte_array_append(out, hdr, 16);
    return out;
}

static void check_kdump_memory(const GuestMemory *mem)
{
    for (uint64_t pfn = 0; pfn < KD_MAPNR; pfn++) {
        if (kd_present(pfn)) {
            check_page(mem, pfn * PAGE, !kd_dumped(pfn) || page_is_zero_pfn(pfn));
        }
    }
}

static void run_kdump(const char *name, const KdumpSpec *s, bool flattened)
{
    g_autoptr(GByteArray) logical = kdump_build(s);
    g_autoptr(GByteArray) file = flattened ? flatten(logical) : g_byte_array_ref(logical);
    g_autofree char *path = write_file(name, file);
    const VmcoreBlock want[] = { { 0, 16 * PAGE }, { 20 * PAGE, 20 * PAGE },
                                 { 48 * PAGE, 16 * PAGE } };
    VmcoreImage *img = open_ok(path);

    check_blocks(img, want, G_N_ELEMENTS(want));
    check_cpus(img, s->i386 ? CPU_I386 : CPU_X86_64, s->i386 ? 432 : 440);
    check_note(img);
    GuestMemory *mem = load_ok(img);
    check_kdump_memory(mem);
    guest_memory_free(mem);
    vmcore_close(img);
}

typedef struct KdumpCase {
    const char *name;
    uint32_t flags;
    bool i386;
    bool flattened;
} KdumpCase;

static void test_kdump_case(gconstpointer data)
{
    const KdumpCase *c = data;
    KdumpSpec s = { c->i386, c->flags, 6, UINT64_MAX };

    run_kdump(c->name, &s, c->flattened);
}

static void test_kdump_version4(void)
{
    KdumpSpec s = { false, 0x1, 4, UINT64_MAX };

    run_kdump("kdump-v4", &s, false);
}

/* qemu-system-x86_64's kdump of a 32-bit guest: the 32-bit header, whatever the
 * machine name says. */
static void test_kdump_i386_from_qemu_x86_64(void)
{
    KdumpSpec s = { true, 0x1, 6, UINT64_MAX, true };

    run_kdump("kdump-i386-qemu-x86_64", &s, false);
}

/* makedumpfile -F -E: a flattened ELF file. */
static void test_flat_elf(void)
{
    g_autoptr(GByteArray) notes = make_notes(CPU_X86_64, 440);
    ElfSpec spec = { true, EM_X86_64, basic_loads, 4, notes, 0 };
    g_autoptr(GByteArray) elf = elf_build(&spec);
    g_autoptr(GByteArray) file = flatten(elf);
    g_autofree char *path = write_file("flat-elf", file);
    VmcoreImage *img = open_ok(path);

    check_cpus(img, CPU_X86_64, 440);
    GuestMemory *mem = load_ok(img);
    check_loads_memory(mem, basic_loads, 4);
    guest_memory_free(mem);
    vmcore_close(img);
}

/* ---- bad files ---- */

static GByteArray *basic_elf(void)
{
    g_autoptr(GByteArray) notes = make_notes(CPU_X86_64, 440);
    ElfSpec spec = { true, EM_X86_64, basic_loads, 4, notes, 0 };

    return elf_build(&spec);
}

#define PHDR(i) (64 + 56 * (size_t)(i))
#define NOTE_OFF (64 + 56 * 5)

static void bad_open(const char *name, GByteArray *file, const char *what)
{
    g_autofree char *path = write_file(name, file);

    expect_open_error(path, what);
}

static void bad_read(const char *name, GByteArray *file, const char *what)
{
    g_autofree char *path = write_file(name, file);

    expect_read_error(path, what);
}

static void test_bad_generic(void)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_autofree char *missing = g_build_filename(tmpdir, "missing", NULL);

    g_byte_array_append(b, (const guint8 *)"\177ELF", 4);
    bad_open("tiny", b, "truncated");
    append_zeros(b, 100);
    memcpy(b->data, "NOT A VMCORE AT ALL", 19);
    bad_open("magic", b, "not a vmcore");
    expect_open_error(missing, "No such file");
    expect_open_error(tmpdir, "not a regular file");
}

static void test_bad_elf_header(void)
{
    g_autoptr(GByteArray) b = basic_elf();

    g_byte_array_set_size(b, 40);
    bad_open("elf-short", b, "truncated ELF header");
    g_byte_array_unref(b);
    b = basic_elf();
    b->data[EI_DATA] = ELFDATA2MSB;
    bad_open("elf-msb", b, "big-endian");
    b->data[EI_DATA] = ELFDATA2LSB;
    put16(b->data + 16, ET_EXEC);
    bad_open("elf-exec", b, "not an ELF core file");
    put16(b->data + 16, ET_CORE);
    put16(b->data + 18, EM_AARCH64);
    bad_open("elf-arm", b, "unsupported e_machine 183");
    put16(b->data + 18, EM_X86_64);
    put16(b->data + 56, 0);
    bad_open("elf-nophdr", b, "no program headers");
    put16(b->data + 56, 5);
    patch64(b, 32, b->len - 100);
    bad_open("elf-phoff", b, "program headers lie past the end of the file");
    patch64(b, 32, 64);
    put16(b->data + 56, PN_XNUM);
    bad_open("elf-xnum", b, "PN_XNUM but there is no section header");
    patch64(b, 40, b->len - 10);
    bad_open("elf-xnum-sh", b, "section header lies past the end of the file");
}

static void test_bad_elf_loads(void)
{
    g_autoptr(GByteArray) b = basic_elf();
    uint64_t len = b->len;

    patch64(b, PHDR(3) + 24, 0x20000000000ULL);
    bad_open("load-absurd", b, "PT_LOAD 3 has an absurd physical range");
    patch64(b, PHDR(3) + 24, 0x100000);
    patch64(b, PHDR(3) + 32, 0x9000);
    bad_open("load-filesz", b, "PT_LOAD 3 has p_filesz 0x9000 larger than p_memsz 0x8000");
    patch64(b, PHDR(3) + 32, 0x4000);
    patch64(b, PHDR(4) + 8, len - 0x1000);
    bad_open("load-past-eof", b, "PT_LOAD 4 lies past the end of the file");
    patch64(b, PHDR(4) + 8, len - 0x4000);
    g_byte_array_set_size(b, len - 1);
    bad_open("load-truncated", b, "PT_LOAD 4 lies past the end of the file");
}

static void test_bad_elf_notes(void)
{
    g_autoptr(GByteArray) b = basic_elf();
    uint64_t notes_len = get64(b->data + PHDR(0) + 32);

    patch64(b, PHDR(0) + 8, b->len - 10);
    bad_open("note-past-eof", b, "PT_NOTE 0 lies past the end of the file");
    patch64(b, PHDR(0) + 8, NOTE_OFF);
    patch64(b, PHDR(0) + 32, 1ULL << 40);
    bad_open("note-absurd-seg", b, "PT_NOTE 0 has an absurd size");
    patch64(b, PHDR(0) + 32, notes_len - 8);
    bad_open("note-overrun", b, "note 4 in PT_NOTE 0 runs past the end of its segment");
    patch64(b, PHDR(0) + 32, notes_len);
    patch32(b, NOTE_OFF + 4, 0x7fffffff);
    bad_open("note-absurd", b, "note 0 in PT_NOTE 0 has an absurd size");
    patch32(b, NOTE_OFF + 4, 300);
    bad_open("note-prstatus-size", b, "NT_PRSTATUS note 0 in PT_NOTE 0 has size 300");
    patch32(b, NOTE_OFF + 4, 336);
    patch32(b, NOTE_OFF + 8, 77);
    patch32(b, NOTE_OFF + 356 + 8, 77);
    bad_open("note-no-prstatus", b, "no NT_PRSTATUS note");
    patch32(b, NOTE_OFF + 8, 1);
    patch32(b, NOTE_OFF + 356 + 8, 1);
    patch32(b, NOTE_OFF + 2 * 356 + 20, 2);
    bad_open("note-qemu-version", b, "QEMU note 2 in PT_NOTE 0 has version 2, not 1");
    patch32(b, NOTE_OFF + 2 * 356 + 20, 1);
    patch32(b, NOTE_OFF + 2 * 356 + 24, 1000);
    bad_open("note-qemu-size", b, "QEMU note 2 in PT_NOTE 0 has size 1000");
}

static GByteArray *basic_kdump(uint32_t flags)
{
    KdumpSpec s = { false, flags, 6, UINT64_MAX };

    return kdump_build(&s);
}

#define KD_BITMAP1 (2 * PAGE)
#define KD_BITMAP2 (3 * PAGE)
#define KD_DESC    (4 * PAGE)
#define KD_DESC_AT(i) (KD_DESC + 24 * (size_t)(i))

static void test_bad_kdump_header(void)
{
    g_autoptr(GByteArray) b = basic_kdump(0x1);

    patch32(b, 428, 1000);
    bad_open("kd-bs", b, "block_size 1000 is not a sane page size");
    patch32(b, 428, PAGE);
    patch32(b, 8, 7);
    bad_open("kd-v7", b, "unsupported kdump header_version 7");
    patch32(b, 8, 3);
    bad_open("kd-v3", b, "header_version 3 has no note area");
    patch32(b, 8, 6);
    patch64(b, PAGE + 96, 1ULL << 40);
    bad_open("kd-mapnr", b, "max_mapnr 1099511627776 is absurd");
    patch64(b, PAGE + 96, 0);
    bad_open("kd-mapnr0", b, "max_mapnr 0 is absurd");
    patch64(b, PAGE + 96, PAGE * 8 + 1);
    bad_open("kd-bitmap-small", b, "bitmap_blocks 2 is too small for max_mapnr 32769");
    patch64(b, PAGE + 96, KD_MAPNR);
    patch32(b, 436, 1000000);
    bad_open("kd-bitmap-eof", b, "bitmaps lie past the end of the file");
    patch32(b, 436, 2);
    patch64(b, PAGE + 56, 1ULL << 30);
    bad_open("kd-note-absurd", b, "the kdump note area has an absurd size");
    patch64(b, PAGE + 56, 100);
    bad_open("kd-note-overrun", b, "note 0 in the kdump note area runs past the end");
}

static void test_bad_kdump_bitmaps(void)
{
    g_autoptr(GByteArray) b = basic_kdump(0x1);
    uint64_t len = b->len;

    b->data[KD_BITMAP1 + 1] &= (uint8_t)~0x02;      /* pfn 9 dumped, not present */
    bad_open("kd-b2-not-b1", b, "PFN 0x9 is dumped (2nd bitmap) but not present");
    b->data[KD_BITMAP1 + 1] |= 0x02;
    memset(b->data + KD_BITMAP1, 0xff, 8);
    memset(b->data + KD_BITMAP2, 0xff, 8);           /* 16 more dumped pages */
    bad_open("kd-b2-extra", b, "the bitmaps disagree with the descriptors");
    g_byte_array_unref(b);

    b = basic_kdump(0x1);
    g_byte_array_set_size(b, KD_DESC + 24);
    bad_open("kd-desc-eof", b, "their descriptors would run past the end of the file");
    g_byte_array_unref(b);

    b = basic_kdump(0x1);
    g_assert_cmpuint(b->len, ==, len);
    b->data[KD_BITMAP2 + 1] &= (uint8_t)~0x01;      /* pfn 8 no longer dumped */
    bad_read("kd-b2-missing", b, "page data starts at");
}

static void test_bad_kdump_descs(void)
{
    g_autoptr(GByteArray) b = basic_kdump(0x1);
    uint64_t len = b->len, desc0 = get64(b->data + KD_DESC_AT(0));

    patch64(b, KD_DESC_AT(0), len + 100);
    bad_open("kd-desc-first", b, "page descriptor of PFN 0x0 points outside the file");
    patch64(b, KD_DESC_AT(0), KD_DESC + 8);
    bad_open("kd-desc-inside", b, "page descriptor of PFN 0x0 points into the headers");
    patch64(b, KD_DESC_AT(0), desc0);
    patch64(b, KD_DESC_AT(10), len - 10);
    bad_read("kd-desc-outside", b, "page descriptor of PFN 0xa points outside the file");
    g_byte_array_unref(b);

    b = basic_kdump(0x1);
    patch32(b, KD_DESC_AT(3) + 8, 100);              /* the zero page, raw */
    bad_read("kd-raw-size", b, "the page of PFN 0x3 has size 100 (block size 4096, stored raw)");
    patch32(b, KD_DESC_AT(3) + 8, PAGE);
    patch32(b, KD_DESC_AT(4) + 12, 0x8);
    bad_read("kd-flags", b, "the page of PFN 0x4 has unknown compression flags 0x8");
    patch32(b, KD_DESC_AT(4) + 12, 0x1);
    b->data[get64(b->data + KD_DESC_AT(4))] ^= 0xff;
    bad_read("kd-corrupt", b, "the page of PFN 0x4 (flags 0x1) does not decompress to 4096 bytes");
}

static void test_bad_kdump_short_page(gconstpointer data)
{
    const KdumpCase *c = data;
    KdumpSpec s = { false, c->flags, 6, 7 };
    g_autoptr(GByteArray) b = kdump_build(&s);
    g_autofree char *want = g_strdup_printf("the page of PFN 0x7 (flags 0x%x) does not "
                                            "decompress to 4096 bytes", c->flags);

    bad_read(c->name, b, want);
}

static void test_bad_flattened(void)
{
    g_autoptr(GByteArray) logical = basic_kdump(0x1);
    g_autoptr(GByteArray) b = flatten(logical);
    uint64_t len = b->len;
    uint64_t first_size = GUINT64_FROM_BE(get64(b->data + 4096 + 8));

    g_byte_array_set_size(b, len - 16);
    bad_open("flat-no-end", b, "ends without its end marker");
    g_byte_array_set_size(b, len - 20);
    bad_open("flat-cut", b, "runs past the end of the file");
    g_byte_array_set_size(b, 2000);
    bad_open("flat-short", b, "truncated makedumpfile flattened header");
    g_byte_array_unref(b);

    b = flatten(logical);
    put_be64(b->data + 4096 + 8, (uint64_t)-5);
    bad_open("flat-negative", b, "flattened record at offset 0x1000 is corrupt");
    put_be64(b->data + 4096 + 8, first_size);
    put_be64(b->data + 4096 + 16 + first_size, GUINT64_FROM_BE(get64(b->data + 4096)));
    bad_open("flat-overlap", b, "flattened records overlap");
    put_be64(b->data + 16, 2);
    bad_open("flat-type", b, "makedumpfile flattened type 2 is not 1");
}

/* ---- main ---- */

static void rm_tmpdir(void)
{
    GDir *dir = g_dir_open(tmpdir, 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *p = g_build_filename(tmpdir, name, NULL);
        g_assert_cmpint(g_unlink(p), ==, 0);
    }
    if (dir) {
        g_dir_close(dir);
    }
    g_assert_cmpint(g_rmdir(tmpdir), ==, 0);
}

static const KdumpCase kdump_cases[] = {
    { "kdump-raw-none", 0, false, false },
    { "kdump-raw-zlib", 0x1, false, false },
    { "kdump-flat-zlib", 0x1, false, true },
    { "kdump-i386-zlib", 0x1, true, false },
    { "kdump-i386-flat", 0x1, true, true },
#if CONFIG_LZO
    { "kdump-raw-lzo", 0x2, false, false },
    { "kdump-flat-lzo", 0x2, false, true },
#endif
#if CONFIG_SNAPPY
    { "kdump-raw-snappy", 0x4, false, false },
    { "kdump-flat-snappy", 0x4, false, true },
#endif
#if CONFIG_ZSTD
    { "kdump-raw-zstd", 0x20, false, false },
    { "kdump-flat-zstd", 0x20, false, true },
#endif
};

static const KdumpCase short_cases[] = {
    { "short-zlib", 0x1, false, false },
#if CONFIG_LZO
    { "short-lzo", 0x2, false, false },
#endif
#if CONFIG_SNAPPY
    { "short-snappy", 0x4, false, false },
#endif
#if CONFIG_ZSTD
    { "short-zstd", 0x20, false, false },
#endif
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("minivm-vmcore-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
#if CONFIG_LZO
    g_assert_cmpint(lzo_init(), ==, LZO_E_OK);
#endif
    g_test_add_func("/vmcore/elf/x86_64", test_elf64);
    g_test_add_func("/vmcore/elf/x86_64-qemu-note-432", test_elf64_qemu432);
    g_test_add_func("/vmcore/elf/elf32-i386", test_elf32);
    g_test_add_func("/vmcore/elf/elf64-i386", test_elf64_i386);
    g_test_add_func("/vmcore/elf/prstatus-only", test_elf_prstatus_only);
    g_test_add_func("/vmcore/elf/paging-duplicates", test_elf_paging_duplicates);
    g_test_add_func("/vmcore/elf/kernel-text-load", test_elf_kernel_text_load);
    g_test_add_func("/vmcore/elf/compat-mode-cpu", test_elf_compat_mode_cpu);
    g_test_add_func("/vmcore/elf/first-load-keeps-overlap", test_elf_first_load_keeps_overlap);
    g_test_add_func("/vmcore/elf/pn-xnum", test_elf_pn_xnum);
    g_test_add_func("/vmcore/elf/flattened", test_flat_elf);
    for (guint i = 0; i < G_N_ELEMENTS(kdump_cases); i++) {
        g_autofree char *name = g_strdup_printf("/vmcore/kdump/%s", kdump_cases[i].name);
        g_test_add_data_func(name, &kdump_cases[i], test_kdump_case);
    }
    g_test_add_func("/vmcore/kdump/header-version-4", test_kdump_version4);
    g_test_add_func("/vmcore/kdump/i386-from-qemu-x86_64", test_kdump_i386_from_qemu_x86_64);
    g_test_add_func("/vmcore/bad/generic", test_bad_generic);
    g_test_add_func("/vmcore/bad/elf-header", test_bad_elf_header);
    g_test_add_func("/vmcore/bad/elf-loads", test_bad_elf_loads);
    g_test_add_func("/vmcore/bad/elf-notes", test_bad_elf_notes);
    g_test_add_func("/vmcore/bad/kdump-header", test_bad_kdump_header);
    g_test_add_func("/vmcore/bad/kdump-bitmaps", test_bad_kdump_bitmaps);
    g_test_add_func("/vmcore/bad/kdump-descriptors", test_bad_kdump_descs);
    for (guint i = 0; i < G_N_ELEMENTS(short_cases); i++) {
        g_autofree char *name = g_strdup_printf("/vmcore/bad/kdump-%s", short_cases[i].name);
        g_test_add_data_func(name, &short_cases[i], test_bad_kdump_short_page);
    }
    g_test_add_func("/vmcore/bad/flattened", test_bad_flattened);
    int rc = g_test_run();
    rm_tmpdir();
    g_free(tmpdir);
    return rc;
}
