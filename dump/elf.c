/*
 * The ELF core writer, in QEMU's classic layout (FORMATS.md §1):
 *   Ehdr | PT_NOTE | PT_LOAD... | (one Shdr when PN_XNUM) | notes | memory
 * One writer for ELF32 and ELF64: fields are placed by class-dependent offsets.
 * Memory is streamed from guest RAM in large writes; zero pages become holes
 * on sparse-capable sinks.
 */
#include "dump-internal.h"
#include "util.h"

#include <elf.h>
#include <string.h>

#define ELF_STREAM_CHUNK (8u << 20)

typedef struct ElfLayout {
    bool is64;
    uint32_t ehsize, phentsize, shentsize;
    uint64_t phnum;            /* real count, PT_NOTE included */
    bool xnum;
    uint64_t phoff, shoff, note_offset, memory_offset;
} ElfLayout;

static void put(GByteArray *b, size_t off, uint64_t v, unsigned size)
{
    uint64_t le = GUINT64_TO_LE(v);

    g_assert(off + size <= b->len);
    memcpy(b->data + off, &le, size);
}

/* Put an address-sized field (Elf64_Addr/Off/Xword or Elf32_Word). */
static void put_addr(GByteArray *b, const ElfLayout *l, size_t off, uint64_t v)
{
    put(b, off, v, l->is64 ? 8 : 4);
}

static void write_ehdr(GByteArray *b, const ElfLayout *l, const ArchDumpInfo *arch)
{
    b->data[EI_MAG0] = ELFMAG0;
    b->data[EI_MAG1] = ELFMAG1;
    b->data[EI_MAG2] = ELFMAG2;
    b->data[EI_MAG3] = ELFMAG3;
    b->data[EI_CLASS] = l->is64 ? ELFCLASS64 : ELFCLASS32;
    b->data[EI_DATA] = (uint8_t)arch->elf_data;
    b->data[EI_VERSION] = EV_CURRENT;
    put(b, 16, ET_CORE, 2);
    put(b, 18, (uint64_t)arch->elf_machine, 2);
    put(b, 20, EV_CURRENT, 4);
    /* e_entry stays 0 */
    put_addr(b, l, l->is64 ? 32 : 28, l->phoff);
    put_addr(b, l, l->is64 ? 40 : 32, l->shoff);
    size_t rest = l->is64 ? 52 : 40;      /* e_ehsize onwards */
    put(b, rest, l->ehsize, 2);
    put(b, rest + 2, l->phentsize, 2);
    put(b, rest + 4, l->xnum ? PN_XNUM : l->phnum, 2);
    put(b, rest + 6, l->xnum ? l->shentsize : 0, 2);
    put(b, rest + 8, l->xnum ? 1 : 0, 2);
    /* e_shstrndx stays 0 */
}

typedef struct ElfPhdr {
    uint32_t type;
    uint64_t offset, vaddr, paddr, filesz, memsz;
} ElfPhdr;

static void write_phdr(GByteArray *b, const ElfLayout *l, uint64_t index, const ElfPhdr *p)
{
    size_t o = l->phoff + index * l->phentsize;

    put(b, o, p->type, 4);
    if (l->is64) {
        /* p_flags @4 and p_align @48 stay 0 */
        put(b, o + 8, p->offset, 8);
        put(b, o + 16, p->vaddr, 8);
        put(b, o + 24, p->paddr, 8);
        put(b, o + 32, p->filesz, 8);
        put(b, o + 40, p->memsz, 8);
    } else {
        put(b, o + 4, p->offset, 4);
        put(b, o + 8, p->vaddr, 4);
        put(b, o + 12, p->paddr, 4);
        put(b, o + 16, p->filesz, 4);
        put(b, o + 20, p->memsz, 4);
    }
}

static void write_xnum_shdr(GByteArray *b, const ElfLayout *l)
{
    /* all zero but sh_info = the real phnum */
    put(b, l->shoff + (l->is64 ? 44 : 28), MIN(l->phnum, UINT32_MAX), 4);
}

static void plan_layout(ElfLayout *l, const DumpJob *job, size_t note_size)
{
    l->is64 = job->arch.elf_class == ELFCLASS64;
    l->ehsize = l->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    l->phentsize = l->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    l->shentsize = l->is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
    l->phnum = 1 + job->ranges->len;
    l->xnum = l->phnum >= PN_XNUM;
    l->phoff = l->ehsize;
    l->shoff = l->xnum ? l->phoff + l->phnum * l->phentsize : 0;
    l->note_offset = l->phoff + l->phnum * l->phentsize + (l->xnum ? l->shentsize : 0);
    l->memory_offset = l->note_offset + note_size;
}

static GByteArray *build_headers(const DumpJob *job, const ElfLayout *l, size_t note_size)
{
    GByteArray *b = g_byte_array_sized_new((guint)l->note_offset);
    uint64_t offset = l->memory_offset;

    g_byte_array_set_size(b, (guint)l->note_offset);
    memset(b->data, 0, b->len);
    write_ehdr(b, l, &job->arch);
    write_phdr(b, l, 0, &(ElfPhdr){ .type = PT_NOTE, .offset = l->note_offset,
                                    .filesz = note_size, .memsz = note_size });
    for (guint i = 0; i < job->ranges->len; i++) {
        const DumpRange *r = &g_array_index(job->ranges, DumpRange, i);
        write_phdr(b, l, i + 1, &(ElfPhdr){ .type = PT_LOAD, .offset = offset,
                                            .vaddr = r->gpa, .paddr = r->gpa,
                                            .filesz = r->size, .memsz = r->size });
        offset += r->size;
    }
    if (l->xnum) {
        write_xnum_shdr(b, l);
    }
    return b;
}

/* Write one range: runs of data pages as large writes, runs of zero pages as holes. */
static bool write_range(DumpJob *job, const DumpRange *r, GError **errp)
{
    DumpSink *sink = &job->sink;
    uint64_t pos = 0;

    while (pos < r->size) {
        uint64_t limit = MIN(r->size, pos + ELF_STREAM_CHUNK), end = limit;
        bool zero = false;
        if (sink->sparse) {
            end = pos + MIN(4096, r->size - pos);
            zero = dump_page_is_zero(r->host + pos, end - pos);
            while (end < limit) {
                size_t n = (size_t)MIN(4096, r->size - end);
                if (dump_page_is_zero(r->host + end, n) != zero) {
                    break;
                }
                end += n;
            }
        }
        bool ok = zero ? dump_sink_skip_zeros(sink, end - pos, errp)
                       : dump_sink_write(sink, r->host + pos, end - pos, errp);
        if (!ok) {
            return false;
        }
        dump_job_progress(job, end - pos);
        if (dump_job_check_cancel(job, errp)) {
            return false;
        }
        pos = end;
    }
    return true;
}

bool elf_dump_write(DumpJob *job, GError **errp)
{
    g_autoptr(GByteArray) notes = dump_build_notes(job);
    ElfLayout layout;

    plan_layout(&layout, job, notes->len);
    g_autoptr(GByteArray) headers = build_headers(job, &layout, notes->len);
    if (!dump_sink_write(&job->sink, headers->data, headers->len, errp) ||
        !dump_sink_write(&job->sink, notes->data, notes->len, errp)) {
        return false;
    }
    for (guint i = 0; i < job->ranges->len; i++) {
        if (!write_range(job, &g_array_index(job->ranges, DumpRange, i), errp)) {
            return false;
        }
    }
    return dump_sink_finish(&job->sink, errp);
}
