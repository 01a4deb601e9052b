/* Unit tests of the ELF core reader (system/vmcore_elf.c): a tiny ELF core
 * writer, the cores it writes, and bad ELF files. */
#include "test_vmcore.h"

/* ---- a tiny ELF core writer ---- */

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
GByteArray *elf_build(const ElfSpec *s)
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

/* ---- cores that read back ---- */

const TestLoad basic_loads[4] = {
    { 0, 0x10000, 0x10000, ELF_DATA_AUTO },
    { 0x10000, 0x10000, 0x10000, ELF_DATA_AUTO },       /* adjacent: merged */
    { 0x100000, 0x8000, 0x4000, ELF_DATA_AUTO },        /* zero tail */
    { 0x100000000ULL, 0x4000, 0x4000, ELF_DATA_AUTO },  /* above 4 GiB */
};

void check_loads_memory(const GuestMemory *mem, const TestLoad *loads, guint n)
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

void test_elf64(void)
{
    run_elf("elf64", true, EM_X86_64, CPU_X86_64, 440, 4);
}

void test_elf64_qemu432(void)
{
    run_elf("elf64-432", true, EM_X86_64, CPU_X86_64, 432, 4);
}

void test_elf32(void)
{
    run_elf("elf32", false, EM_386, CPU_I386, 432, 3);
}

void test_elf64_i386(void)
{
    run_elf("elf64-i386", true, EM_386, CPU_I386, 440, 4);
}

/* No QEMU note: flat descriptors for the prstatus selectors, long mode from CS. */
void test_elf_prstatus_only(void)
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
void test_elf_compat_mode_cpu(void)
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
void test_elf_paging_duplicates(void)
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
void test_elf_kernel_text_load(void)
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
void test_elf_first_load_keeps_overlap(void)
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

void test_elf_pn_xnum(void)
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

/* ---- bad ELF files ---- */

static GByteArray *basic_elf(void)
{
    g_autoptr(GByteArray) notes = make_notes(CPU_X86_64, 440);
    ElfSpec spec = { true, EM_X86_64, basic_loads, 4, notes, 0 };

    return elf_build(&spec);
}

#define PHDR(i) (64 + 56 * (size_t)(i))
#define NOTE_OFF (64 + 56 * 5)

void test_bad_elf_header(void)
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

void test_bad_elf_loads(void)
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

void test_bad_elf_notes(void)
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

