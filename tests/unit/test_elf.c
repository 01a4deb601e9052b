/* Unit tests for the ELF core writer: layout, notes, memory, PN_XNUM, ELF32. */
#include "dump/dump-internal.h"
#include "dump/zeromap.h"
#include "util.h"

#include <sys/mman.h>

#include <elf.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct Fixture {
    char *path;
    DumpJob job;
    GArray *ranges;
    uint8_t *mem;
    X86CPUState cpus[2];
} Fixture;

static void make_cpus(X86CPUState *cpus, bool long_mode)
{
    for (int i = 0; i < 2; i++) {
        memset(&cpus[i], 0, sizeof(cpus[i]));
        for (int r = 0; r < 16; r++) {
            cpus[i].regs[r] = 0x1000ULL * (i + 1) + r;
        }
        cpus[i].rip = 0x200000 + i;
        cpus[i].rflags = 0x3002;
        cpus[i].cs.selector = 0x1b;
        cpus[i].ss.selector = 0x23;
        cpus[i].cs.flags = long_mode ? SEG_FLAG_L | SEG_FLAG_P : SEG_FLAG_P | SEG_FLAG_DB;
        cpus[i].cr[3] = 0x8000;
        cpus[i].cr[4] = 0x620;
        cpus[i].idt = (X86Table){ 0xffffffff81000000ULL, 0xfff };
        cpus[i].efer = long_mode ? (EFER_LMA | EFER_LME) : 0;
        cpus[i].kernel_gs_base = 0xffff888000000000ULL + i;
    }
}

static void fixture_init(Fixture *f, guint nranges, uint64_t range_size, bool long_mode,
                         bool distinct_memory)
{
    memset(f, 0, sizeof(*f));
    int fd = g_file_open_tmp("minivm-elf-XXXXXX", &f->path, NULL);
    g_assert_cmpint(fd, >=, 0);
    f->mem = g_malloc0(distinct_memory ? nranges * range_size : range_size);
    for (uint64_t i = 0; distinct_memory && i < nranges * range_size; i += 8) {
        if ((i / 4096) % 3 != 0) {                /* every third page stays zero */
            uint64_t v = i * 0x9e3779b97f4a7c15ULL;
            memcpy(f->mem + i, &v, 8);
        }
    }
    f->ranges = g_array_new(FALSE, FALSE, sizeof(DumpRange));
    for (guint i = 0; i < nranges; i++) {
        DumpRange r = { .gpa = 0x100000ULL * i, .size = range_size,
                        .host = f->mem + (distinct_memory ? i * range_size : 0) };
        g_array_append_val(f->ranges, r);
    }
    make_cpus(f->cpus, long_mode);
    f->job.format = DUMP_FORMAT_ELF;
    f->job.ranges = f->ranges;
    f->job.ncpus = 2;
    f->job.cpus = f->cpus;
    arch_dump_info(&f->cpus[0], 0x100000ULL * nranges, &f->job.arch);
    g_assert_true(dump_sink_open(&f->job.sink, fd, false, NULL));
}

static void fixture_write(Fixture *f)
{
    GError *err = NULL;
    g_assert_true(elf_dump_write(&f->job, &err));
    g_assert_no_error(err);
    dump_sink_close(&f->job.sink);
}

static void fixture_free(Fixture *f)
{
    unlink(f->path);
    g_free(f->path);
    g_array_free(f->ranges, TRUE);
    g_free(f->mem);
    if (f->job.guest_note) {
        g_bytes_unref(f->job.guest_note);
    }
}

static GBytes *read_file(const char *path)
{
    gchar *data;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return g_bytes_new_take(data, len);
}

typedef struct Note {
    const char *name;
    uint32_t type, descsz;
    const uint8_t *desc;
} Note;

static guint parse_notes(const uint8_t *p, uint64_t size, Note *out, guint max)
{
    guint n = 0;
    uint64_t off = 0;

    while (off + 12 <= size && n < max) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, p + off, 4);
        memcpy(&descsz, p + off + 4, 4);
        memcpy(&type, p + off + 8, 4);
        out[n].name = (const char *)p + off + 12;
        out[n].type = type;
        out[n].descsz = descsz;
        out[n].desc = p + off + 12 + ELF_NOTE_ALIGN(namesz);
        off += 12 + ELF_NOTE_ALIGN(namesz) + ELF_NOTE_ALIGN(descsz);
        n++;
    }
    g_assert_cmpuint(off, ==, size);
    return n;
}

static void test_elf64_layout(void)
{
    Fixture f;
    static const char vmcoreinfo[] = "OSRELEASE=6.1.0\nPAGESIZE=4096\n";
    GByteArray *note = g_byte_array_new();

    fixture_init(&f, 3, 64 * 4096, true, true);
    dump_note_append(note, "VMCOREINFO", 0, vmcoreinfo, sizeof(vmcoreinfo) - 1);
    f.job.guest_note = g_byte_array_free_to_bytes(note);
    fixture_write(&f);

    g_autoptr(GBytes) file = read_file(f.path);
    gsize len;
    const uint8_t *d = g_bytes_get_data(file, &len);
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)d;
    g_assert_cmpmem(eh->e_ident, SELFMAG, ELFMAG, SELFMAG);
    g_assert_cmpint(eh->e_ident[EI_CLASS], ==, ELFCLASS64);
    g_assert_cmpint(eh->e_type, ==, ET_CORE);
    g_assert_cmpint(eh->e_machine, ==, EM_X86_64);
    g_assert_cmpuint(eh->e_phoff, ==, 64);
    g_assert_cmpint(eh->e_ehsize, ==, 64);
    g_assert_cmpint(eh->e_phentsize, ==, 56);
    g_assert_cmpint(eh->e_phnum, ==, 4);
    g_assert_cmpint(eh->e_shnum, ==, 0);

    const Elf64_Phdr *ph = (const Elf64_Phdr *)(d + eh->e_phoff);
    g_assert_cmpint(ph[0].p_type, ==, PT_NOTE);
    g_assert_cmpuint(ph[0].p_align, ==, 0);
    Note notes[8];
    guint n = parse_notes(d + ph[0].p_offset, ph[0].p_filesz, notes, 8);
    g_assert_cmpuint(n, ==, 5);
    for (int i = 0; i < 2; i++) {
        g_assert_cmpstr(notes[i].name, ==, "CORE");
        g_assert_cmpuint(notes[i].type, ==, NT_PRSTATUS);
        g_assert_cmpuint(notes[i].descsz, ==, 336);
        uint32_t pid;
        uint64_t rip, r15;
        memcpy(&pid, notes[i].desc + 32, 4);
        memcpy(&r15, notes[i].desc + 112, 8);
        memcpy(&rip, notes[i].desc + 112 + 16 * 8, 8);
        g_assert_cmpuint(pid, ==, i + 1);
        g_assert_cmphex(rip, ==, f.cpus[i].rip);
        g_assert_cmphex(r15, ==, f.cpus[i].regs[R_R15]);
        g_assert_cmpstr(notes[2 + i].name, ==, "QEMU");
        g_assert_cmpuint(notes[2 + i].type, ==, 0);
        g_assert_cmpuint(notes[2 + i].descsz, ==, 440);
        uint64_t cr3, idt_base, kgs;
        memcpy(&cr3, notes[2 + i].desc + 416, 8);
        memcpy(&idt_base, notes[2 + i].desc + 384, 8);
        memcpy(&kgs, notes[2 + i].desc + 432, 8);
        g_assert_cmphex(cr3, ==, 0x8000);
        g_assert_cmphex(idt_base, ==, f.cpus[i].idt.base);
        g_assert_cmphex(kgs, ==, f.cpus[i].kernel_gs_base);
    }
    g_assert_cmpstr(notes[4].name, ==, "VMCOREINFO");
    g_assert_cmpmem(notes[4].desc, notes[4].descsz, vmcoreinfo, sizeof(vmcoreinfo) - 1);

    uint64_t expect_off = (ph[0].p_offset + ph[0].p_filesz + 4095) & ~4095ULL;
    for (int i = 1; i < 4; i++) {
        const DumpRange *r = &g_array_index(f.ranges, DumpRange, i - 1);
        g_assert_cmpint(ph[i].p_type, ==, PT_LOAD);
        g_assert_cmpuint(ph[i].p_align, ==, 0);
        g_assert_cmphex(ph[i].p_paddr, ==, r->gpa);
        g_assert_cmphex(ph[i].p_vaddr, ==, r->gpa);
        g_assert_cmpuint(ph[i].p_filesz, ==, r->size);
        g_assert_cmpuint(ph[i].p_memsz, ==, r->size);
        g_assert_cmpuint(ph[i].p_offset, ==, expect_off);
        g_assert_cmpuint(ph[i].p_offset + ph[i].p_filesz, <=, len);
        g_assert_cmpmem(d + ph[i].p_offset, r->size, r->host, r->size);
        expect_off += r->size;
    }
    g_assert_cmpuint(len, ==, expect_off);
    fixture_free(&f);
}

static void test_elf_pn_xnum(void)
{
    Fixture f;
    const guint nranges = 70000;

    fixture_init(&f, nranges, 4096, true, false);
    fixture_write(&f);
    g_autoptr(GBytes) file = read_file(f.path);
    gsize len;
    const uint8_t *d = g_bytes_get_data(file, &len);
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)d;
    g_assert_cmpint(eh->e_phnum, ==, PN_XNUM);
    g_assert_cmpint(eh->e_shnum, ==, 1);
    g_assert_cmpint(eh->e_shentsize, ==, 64);
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(d + eh->e_shoff);
    g_assert_cmpuint(sh->sh_info, ==, nranges + 1);
    g_assert_cmpuint(eh->e_shoff, ==, 64 + (nranges + 1) * 56ULL);
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(d + eh->e_phoff);
    g_assert_cmpuint(ph[0].p_offset, ==, eh->e_shoff + 64);
    g_assert_cmpuint(ph[1].p_offset % 4096, ==, 0);
    g_assert_cmphex(ph[nranges].p_paddr, ==, 0x100000ULL * (nranges - 1));
    g_assert_cmpuint(len, ==, ph[nranges].p_offset + 4096);
    fixture_free(&f);
}

/* paging=true: a mapping of something other than RAM gets no PT_LOAD, as in QEMU.
 * Here it is the lowest virtual address: a PT_LOAD for it with p_offset 0 first
 * would leave crash no headers (it sizes them from the first p_offset). */
static void test_elf_paging_leaves_out_non_ram(void)
{
    Fixture f;
    const uint64_t size = 2 << 20;
    GuestMemory *mem = guest_memory_new(NULL, NULL);
    g_assert_nonnull(guest_memory_add(mem, "ram", 0, size, NULL));
    uint64_t *pml4 = guest_memory_ptr(mem, 0x1000, 4096), *pdpt = guest_memory_ptr(mem, 0x2000, 4096);
    uint64_t *pd = guest_memory_ptr(mem, 0x3000, 4096), *pt = guest_memory_ptr(mem, 0x4000, 4096);
    pml4[0] = 0x2000 | 3;
    pdpt[0] = 0x3000 | 3;
    pd[0] = 0x4000 | 3;
    pt[0] = 0xfee00000 | 1;                      /* the local APIC at virtual 0 */
    pt[1] = 0x100000 | 1;                        /* RAM at virtual 0x1000 */
    memset(guest_memory_ptr(mem, 0x100000, 4096), 0xa5, 4096);

    fixture_init(&f, 1, size, true, false);
    g_array_index(f.ranges, DumpRange, 0).host = guest_memory_ptr(mem, 0, size);
    VM vm = { .mem = mem };
    f.cpus[0].cr[0] = CR0_PE | CR0_PG;
    f.cpus[0].cr[3] = 0x1000;
    f.job.vm = &vm;
    f.job.reader = (GuestReader){ .mem = mem };
    f.job.paging_cpu = &f.cpus[0];
    f.job.filter_end = UINT64_MAX;
    fixture_write(&f);

    g_autoptr(GBytes) file = read_file(f.path);
    gsize len;
    const uint8_t *d = g_bytes_get_data(file, &len);
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)d;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(d + eh->e_phoff);
    g_assert_cmpint(eh->e_phnum, ==, 2);
    g_assert_cmpint(ph[1].p_type, ==, PT_LOAD);
    g_assert_cmphex(ph[1].p_vaddr, ==, 0x1000);
    g_assert_cmphex(ph[1].p_paddr, ==, 0x100000);
    g_assert_cmpuint(ph[1].p_filesz, ==, 4096);
    g_assert_cmpuint(ph[1].p_offset + 4096, <=, len);
    for (int i = 0; i < 4096; i++) {
        g_assert_cmpint(d[ph[1].p_offset + i], ==, 0xa5);
    }
    fixture_free(&f);
    guest_memory_free(mem);
}

static void test_elf32_i386(void)
{
    Fixture f;

    fixture_init(&f, 2, 16 * 4096, false, true);
    fixture_write(&f);
    g_autoptr(GBytes) file = read_file(f.path);
    gsize len;
    const uint8_t *d = g_bytes_get_data(file, &len);
    const Elf32_Ehdr *eh = (const Elf32_Ehdr *)d;
    g_assert_cmpint(eh->e_ident[EI_CLASS], ==, ELFCLASS32);
    g_assert_cmpint(eh->e_machine, ==, EM_386);
    g_assert_cmpuint(eh->e_phoff, ==, 52);
    g_assert_cmpint(eh->e_phnum, ==, 3);
    const Elf32_Phdr *ph = (const Elf32_Phdr *)(d + eh->e_phoff);
    Note notes[8];
    g_assert_cmpuint(parse_notes(d + ph[0].p_offset, ph[0].p_filesz, notes, 8), ==, 4);
    g_assert_cmpuint(notes[0].descsz, ==, 144);
    uint32_t pid, eip;
    memcpy(&pid, notes[1].desc + 24, 4);
    memcpy(&eip, notes[1].desc + 72 + 12 * 4, 4);
    g_assert_cmpuint(pid, ==, 2);
    g_assert_cmphex(eip, ==, (uint32_t)f.cpus[1].rip);
    for (int i = 1; i < 3; i++) {
        const DumpRange *r = &g_array_index(f.ranges, DumpRange, i - 1);
        g_assert_cmphex(ph[i].p_paddr, ==, r->gpa);
        g_assert_cmpmem(d + ph[i].p_offset, r->size, r->host, r->size);
    }
    fixture_free(&f);
}

static void test_elf_to_pipe(void)
{
    int p[2];
    Fixture f;

    fixture_init(&f, 2, 8 * 4096, true, true);
    dump_sink_close(&f.job.sink);
    g_assert_cmpint(pipe(p), ==, 0);
    g_assert_true(dump_sink_open(&f.job.sink, p[1], false, NULL));
    g_assert_false(f.job.sink.sparse);
    /* the pipe holds 64 KiB by default: the dump is smaller than that plus headers */
    g_assert_cmpint(fcntl(p[1], F_SETPIPE_SZ, 1 << 20), >=, 1 << 20);
    fixture_write(&f);
    g_autofree uint8_t *buf = g_malloc(1 << 20);
    ssize_t n = read(p[0], buf, 1 << 20);
    close(p[0]);
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(buf + eh->e_phoff);
    g_assert_cmpint(n, ==, (ssize_t)(ph[2].p_offset + ph[2].p_filesz));
    g_assert_cmpmem(buf + ph[1].p_offset, 8 * 4096, f.mem, 8 * 4096);
    fixture_free(&f);
}

static void test_zero_page(void)
{
    uint8_t page[4096] = { 0 };

    g_assert_true(buffer_is_zero(page, sizeof(page)));
    for (size_t i = 0; i < sizeof(page); i += 511) {
        page[i] = 1;
        g_assert_false(buffer_is_zero(page, sizeof(page)));
        page[i] = 0;
    }
    page[4095] = 1;
    g_assert_false(buffer_is_zero(page, sizeof(page)));
    g_assert_true(buffer_is_zero(page, 4095));
    g_assert_false(buffer_is_zero(page + 4090, 6));
}

static void test_zeromap(void)
{
    size_t len = 64 * 4096;
    uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ZeroMap *z = g_new(ZeroMap, 1);

    g_assert_true(m != MAP_FAILED);
    zeromap_init(z);
    if (z->fd < 0) {
        g_test_skip("/proc/self/pagemap is not readable here");
    } else {
        m[5 * 4096 + 17] = 1;                 /* present, non-zero */
        m[9 * 4096] = 0;                      /* present, zero */
        (void)*(volatile uint8_t *)(m + 12 * 4096);   /* maps the zero page */
        g_assert_true(zeromap_page_known_zero(z, m));
        g_assert_false(zeromap_page_known_zero(z, m + 5 * 4096));
        g_assert_false(zeromap_page_known_zero(z, m + 9 * 4096));      /* must be scanned */
        g_assert_false(zeromap_page_known_zero(z, m + 1));             /* unaligned: scan */
        g_assert_true(zeromap_page_known_zero(z, m + 63 * 4096));
        /* the zero page is recognised where the kernel shows frames (root) */
        g_assert_true(zeromap_page_known_zero(z, m + 12 * 4096) == (z->zero_pfn != 0));
        if (getuid() == 0) {
            g_assert_cmpuint(z->zero_pfn, !=, 0);
        }
    }
    zeromap_destroy(z);
    g_free(z);
    munmap(m, len);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/elf/elf64-layout", test_elf64_layout);
    g_test_add_func("/elf/pn-xnum", test_elf_pn_xnum);
    g_test_add_func("/elf/elf32-i386", test_elf32_i386);
    g_test_add_func("/elf/paging-leaves-out-non-ram", test_elf_paging_leaves_out_non_ram);
    g_test_add_func("/elf/pipe", test_elf_to_pipe);
    g_test_add_func("/dump/zero-page", test_zero_page);
    g_test_add_func("/dump/zeromap", test_zeromap);
    return g_test_run();
}
