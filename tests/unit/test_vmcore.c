/*
 * Unit tests for the vmcore readers (system/vmcore*.c): small synthetic ELF,
 * kdump-compressed and flattened files written by tiny writers, one file per
 * format as the readers are (test_vmcore.h), then every bad-file case with its
 * one-line error. This file holds the helpers they share and main().
 */
#include "test_vmcore.h"

#include <glib/gstdio.h>
#if CONFIG_LZO
#include <lzo/lzo1x.h>
#endif

char *tmpdir;

char *write_file(const char *name, const GByteArray *b)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    GError *err = NULL;

    g_file_set_contents(path, (const char *)b->data, b->len, &err);
    g_assert_no_error(err);
    return path;
}


/* ---- guest page contents: compressible, two zero pages, one random page ---- */

bool page_is_zero_pfn(uint64_t pfn)
{
    return pfn == 3 || pfn == 30;
}

void page_fill(uint64_t pfn, uint8_t *out)
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

X86Segment seg(uint32_t sel, uint32_t limit, uint32_t flags, uint64_t base)
{
    return (X86Segment){ .selector = sel, .limit = limit, .flags = flags, .base = base };
}

X86CPUState make_cpu(guint i, bool long_mode, bool kgs)
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

void note_add(GByteArray *out, const char *name, uint32_t type, const void *desc,
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

void prstatus64(const X86CPUState *s, guint i, uint8_t d[336])
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

void qemu_cpu_state(const X86CPUState *s, uint32_t size, uint8_t d[440])
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

GByteArray *make_notes(CpuKind kind, uint32_t qemu_size)
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

void assert_cpu(const X86CPUState *got, const X86CPUState *want)
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

void check_cpus(const VmcoreImage *img, CpuKind kind, uint32_t qemu_size)
{
    g_assert_cmpuint(vmcore_cpu_count(img), ==, NCPUS);
    for (guint i = 0; i < NCPUS; i++) {
        X86CPUState want = make_cpu(i, kind == CPU_X86_64, qemu_size >= 440);
        assert_cpu(vmcore_cpu(img, i), &want);
    }
}

void check_note(const VmcoreImage *img)
{
    g_autoptr(GBytes) want = expected_guest_note();
    GBytes *got = vmcore_guest_note(img);

    g_assert_nonnull(got);
    g_assert_true(g_bytes_equal(got, want));
}

/* ---- opening, loading and checking memory ---- */

VmcoreImage *open_ok(const char *path)
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

GuestMemory *load_ok(VmcoreImage *img)
{
    GError *err = NULL;
    GuestMemory *mem = memory_for(img);

    g_assert_true(vmcore_read_memory(img, mem, &err));
    g_assert_no_error(err);
    return mem;
}

void check_page(const GuestMemory *mem, uint64_t gpa, bool zero)
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

void check_blocks(const VmcoreImage *img, const VmcoreBlock *want, guint n)
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

void bad_open(const char *name, GByteArray *file, const char *what)
{
    g_autofree char *path = write_file(name, file);

    expect_open_error(path, what);
}

void bad_read(const char *name, GByteArray *file, const char *what)
{
    g_autofree char *path = write_file(name, file);

    expect_read_error(path, what);
}

/* ---- files that are no vmcore ---- */

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
    for (guint i = 0; i < n_kdump_cases; i++) {
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
    for (guint i = 0; i < n_short_cases; i++) {
        g_autofree char *name = g_strdup_printf("/vmcore/bad/kdump-%s", short_cases[i].name);
        g_test_add_data_func(name, &short_cases[i], test_bad_kdump_short_page);
    }
    g_test_add_func("/vmcore/bad/flattened", test_bad_flattened);
    int rc = g_test_run();
    rm_tmpdir();
    g_free(tmpdir);
    return rc;
}
