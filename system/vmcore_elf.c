/*
 * The ELF core reader: ELFCLASS64 (x86_64 or i386) and ELFCLASS32 (i386) cores,
 * QEMU's, minivm's, or a copy of Linux's /proc/vmcore, PN_XNUM included
 * (docs/formats.md, "ELF core"). PT_LOADs make the memory map and the extents
 * of the file that hold RAM; PT_NOTEs hold the vCPUs and VMCOREINFO.
 */
#include "vmcore-internal.h"
#include "util.h"

#include <elf.h>
#include <stddef.h>

#define VMCORE_MAX_PHNUM    (1u << 22)

/* File bytes [offset, offset+size) hold guest-physical [paddr, paddr+size). */
typedef struct ElfExtent {
    uint64_t paddr;
    uint64_t offset;
    uint64_t size;
} ElfExtent;

typedef struct ElfInfo {
    bool is64;
    uint64_t phoff;
    uint32_t phnum;
    uint32_t phentsize;
} ElfInfo;

typedef struct ElfSegment {
    uint32_t type;
    uint32_t index;
    uint64_t offset, paddr, filesz, memsz;
} ElfSegment;

static uint64_t elf32_wide(uint32_t v)
{
    return v == UINT32_MAX ? ALL_ONES : v;
}

static ElfSegment elf_segment(const ElfInfo *ei, const uint8_t *p, uint32_t index)
{
    if (ei->is64) {
        Elf64_Phdr ph;
        memcpy(&ph, p, sizeof(ph));
        return (ElfSegment){ ph.p_type, index, ph.p_offset, ph.p_paddr, ph.p_filesz,
                             ph.p_memsz };
    }
    Elf32_Phdr ph;
    memcpy(&ph, p, sizeof(ph));
    return (ElfSegment){ ph.p_type, index, elf32_wide(ph.p_offset), elf32_wide(ph.p_paddr),
                         ph.p_filesz, ph.p_memsz };
}

/* PN_XNUM: the real program header count is sh_info of section 0. */
static bool elf_xnum(VmcoreImage *img, ElfInfo *ei, uint64_t shoff, GError **errp)
{
    size_t shsize = ei->is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
    uint8_t sh[sizeof(Elf64_Shdr)];

    if (shoff == 0) {
        return vmcore_fail(img, errp, "e_phnum is PN_XNUM but there is no section header");
    }
    if (!range_fits(shoff, shsize, img->size)) {
        return vmcore_fail(img, errp, "the section header lies past the end of the file");
    }
    if (!vmcore_read_at(img, sh, shsize, shoff, errp)) {
        return false;
    }
    ei->phnum = get32(sh + (ei->is64 ? offsetof(Elf64_Shdr, sh_info)
                                     : offsetof(Elf32_Shdr, sh_info)));
    return true;
}

static bool elf_check_ident(VmcoreImage *img, const uint8_t *ident, GError **errp)
{
    if (ident[EI_CLASS] != ELFCLASS32 && ident[EI_CLASS] != ELFCLASS64) {
        return vmcore_fail(img, errp, "unsupported ELF class %u", ident[EI_CLASS]);
    }
    if (ident[EI_DATA] == ELFDATA2MSB) {
        return vmcore_fail(img, errp, "big-endian ELF files are not supported");
    }
    if (ident[EI_DATA] != ELFDATA2LSB || ident[EI_VERSION] != EV_CURRENT) {
        return vmcore_fail(img, errp, "bad ELF identification (data %u, version %u)",
                           ident[EI_DATA], ident[EI_VERSION]);
    }
    return true;
}

static bool elf_check_type(VmcoreImage *img, bool is64, uint16_t type, uint16_t machine,
                           uint16_t phentsize, GError **errp)
{
    size_t want = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);

    if (type != ET_CORE) {
        return vmcore_fail(img, errp, "not an ELF core file (e_type %u)", type);
    }
    if (machine != EM_386 && (machine != EM_X86_64 || !is64)) {
        return vmcore_fail(img, errp, "unsupported e_machine %u for ELFCLASS%d", machine,
                           is64 ? 64 : 32);
    }
    if (phentsize != want) {
        return vmcore_fail(img, errp, "e_phentsize is %u, not %zu", phentsize, want);
    }
    img->machine = machine;
    return true;
}

static bool elf_read_header(VmcoreImage *img, ElfInfo *ei, GError **errp)
{
    uint8_t buf[sizeof(Elf64_Ehdr)];
    Elf64_Ehdr h64;
    Elf32_Ehdr h32;

    if (!vmcore_read_at(img, buf, EI_NIDENT, 0, errp) || !elf_check_ident(img, buf, errp)) {
        return false;
    }
    ei->is64 = buf[EI_CLASS] == ELFCLASS64;
    size_t ehsize = ei->is64 ? sizeof(h64) : sizeof(h32);
    if (img->size < ehsize) {
        return vmcore_fail(img, errp, "truncated ELF header");
    }
    if (!vmcore_read_at(img, buf, ehsize, 0, errp)) {
        return false;
    }
    memcpy(ei->is64 ? (void *)&h64 : (void *)&h32, buf, ehsize);
    if (!ei->is64) {
        h64 = (Elf64_Ehdr){ .e_type = h32.e_type, .e_machine = h32.e_machine,
                            .e_phoff = h32.e_phoff, .e_shoff = h32.e_shoff,
                            .e_phentsize = h32.e_phentsize, .e_phnum = h32.e_phnum };
    }
    if (!elf_check_type(img, ei->is64, h64.e_type, h64.e_machine, h64.e_phentsize, errp)) {
        return false;
    }
    ei->phoff = h64.e_phoff;
    ei->phentsize = h64.e_phentsize;
    ei->phnum = h64.e_phnum;
    return h64.e_phnum != PN_XNUM || elf_xnum(img, ei, h64.e_shoff, errp);
}

static bool elf_check_phdrs(VmcoreImage *img, const ElfInfo *ei, GError **errp)
{
    if (ei->phnum == 0) {
        return vmcore_fail(img, errp, "no program headers");
    }
    if (ei->phnum > VMCORE_MAX_PHNUM) {
        return vmcore_fail(img, errp, "absurd number of program headers (%u)", ei->phnum);
    }
    if (!range_fits(ei->phoff, (uint64_t)ei->phnum * ei->phentsize, img->size)) {
        return vmcore_fail(img, errp, "the program headers lie past the end of the file");
    }
    return true;
}

/* Validate one PT_LOAD; *use is false for loads that describe no RAM. */
static bool elf_check_load(VmcoreImage *img, const ElfSegment *s, bool *use, GError **errp)
{
    *use = s->memsz && s->paddr != ALL_ONES && !(s->offset == ALL_ONES && s->filesz == 0);
    if (!*use) {
        return true;
    }
    if (s->filesz > s->memsz) {
        return vmcore_fail(img, errp, "PT_LOAD %u has p_filesz 0x%" PRIx64 " larger than p_memsz "
                           "0x%" PRIx64, s->index, s->filesz, s->memsz);
    }
    if (!range_fits(s->paddr, s->memsz, VMCORE_MAX_GPA)) {
        return vmcore_fail(img, errp, "PT_LOAD %u has an absurd physical range 0x%" PRIx64 "+0x%"
                           PRIx64 " (guest RAM must end below 1 TiB)", s->index, s->paddr,
                           s->memsz);
    }
    if (!range_fits(s->offset, s->filesz, img->size)) {
        return vmcore_fail(img, errp, "PT_LOAD %u lies past the end of the file", s->index);
    }
    return true;
}

static bool elf_scan_phdrs(VmcoreImage *img, const ElfInfo *ei, GArray *loads, GArray *notes,
                           GError **errp)
{
    g_autofree uint8_t *buf = g_malloc(IO_BATCH);
    uint32_t per_batch = IO_BATCH / ei->phentsize;

    for (uint32_t i = 0; i < ei->phnum;) {
        uint32_t n = MIN(per_batch, ei->phnum - i);
        if (!vmcore_read_at(img, buf, (uint64_t)n * ei->phentsize,
                      ei->phoff + (uint64_t)i * ei->phentsize, errp)) {
            return false;
        }
        for (uint32_t j = 0; j < n; j++, i++) {
            ElfSegment s = elf_segment(ei, buf + (size_t)j * ei->phentsize, i);
            bool use = false;
            if (s.type == PT_NOTE) {
                g_array_append_val(notes, s);
            } else if (s.type == PT_LOAD && !elf_check_load(img, &s, &use, errp)) {
                return false;
            }
            if (use) {
                g_array_append_val(loads, s);
            }
        }
    }
    return true;
}

static gint elf_segment_cmp(gconstpointer a, gconstpointer b)
{
    const ElfSegment *x = a, *y = b;

    if (x->paddr != y->paddr) {
        return x->paddr < y->paddr ? -1 : 1;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

static void elf_add_extent(GArray *extents, const ElfSegment *s)
{
    if (!s->filesz) {
        return;
    }
    if (extents->len) {          /* loads come clipped: never before the last extent's end */
        ElfExtent *last = &g_array_index(extents, ElfExtent, extents->len - 1);
        if (s->paddr == last->paddr + last->size && s->offset == last->offset + last->size) {
            last->size += s->filesz;
            return;
        }
    }
    ElfExtent e = { s->paddr, s->offset, s->filesz };
    g_array_append_val(extents, e);
}

/* Sorted by paddr; blocks are the page-aligned union, extents the file-backed
 * parts, each read once. Overlapping loads are usual: paging dumps repeat physical
 * ranges at the same file bytes, and Linux's /proc/vmcore gives the kernel's text
 * a PT_LOAD of its own, at its own file offset, inside the RAM one. The load met
 * first keeps an address (its zero tail included); a later one adds only what lies
 * beyond all before it (crash and makedumpfile also take one load per address; in
 * a real core both hold the same bytes). */
static bool elf_build_map(VmcoreImage *img, GArray *loads, GError **errp)
{
    uint64_t mapped_end = 0;        /* end of everything mapped so far */

    if (!loads->len) {
        return vmcore_fail(img, errp, "no PT_LOAD describes guest RAM");
    }
    g_array_sort(loads, elf_segment_cmp);
    for (guint i = 0; i < loads->len; i++) {
        ElfSegment s = g_array_index(loads, ElfSegment, i);
        if (i && s.paddr < mapped_end) {
            if (s.paddr + s.memsz <= mapped_end) {
                continue;
            }
            uint64_t skip = mapped_end - s.paddr;
            s.paddr = mapped_end;
            s.memsz -= skip;
            s.offset += MIN(skip, s.filesz);
            s.filesz -= MIN(skip, s.filesz);
        }
        mapped_end = MAX(mapped_end, s.paddr + s.memsz);
        vmcore_map_add(img, s.paddr, s.paddr + s.memsz);
        elf_add_extent(img->extents, &s);
    }
    return true;
}

static bool elf_read_notes(VmcoreImage *img, GArray *notes, GPtrArray *keep, GError **errp)
{
    for (guint i = 0; i < notes->len; i++) {
        const ElfSegment *s = &g_array_index(notes, ElfSegment, i);
        g_autofree char *where = g_strdup_printf("PT_NOTE %u", s->index);
        if (!vmcore_notes_read(img, s->offset, s->filesz, where, keep, errp)) {
            return false;
        }
    }
    return vmcore_cpus_finish(img, errp);
}

bool vmcore_elf_open(VmcoreImage *img, GError **errp)
{
    g_autoptr(GArray) loads = g_array_new(FALSE, FALSE, sizeof(ElfSegment));
    g_autoptr(GArray) notes = g_array_new(FALSE, FALSE, sizeof(ElfSegment));
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(g_free);
    ElfInfo ei;

    img->format = VMCORE_ELF;
    img->extents = g_array_new(FALSE, FALSE, sizeof(ElfExtent));
    return elf_read_header(img, &ei, errp) && elf_check_phdrs(img, &ei, errp) &&
           elf_scan_phdrs(img, &ei, loads, notes, errp) && elf_build_map(img, loads, errp) &&
           elf_read_notes(img, notes, keep, errp);
}

/* Guest RAM for [gpa, gpa+len): the host pointer and how many bytes fit. */
static uint8_t *guest_span(const GuestMemory *mem, uint64_t gpa, uint64_t len, uint64_t *n)
{
    for (guint i = 0; i < guest_memory_count(mem); i++) {
        RamBlock *b = guest_memory_block(mem, i);
        if (gpa >= b->gpa && gpa - b->gpa < b->size) {
            *n = MIN(len, b->size - (gpa - b->gpa));
            return b->host + (gpa - b->gpa);
        }
    }
    return NULL;
}

/* Copy src into zeroed guest RAM a guest page at a time, leaving out the pages
 * that are all zero. */
static void copy_pages(uint8_t *dst, const uint8_t *src, uint64_t len)
{
    for (uint64_t off = 0, step; off < len; off += step) {
        step = MIN(len - off, GUEST_PAGE_SIZE - ((uintptr_t)(dst + off) & (GUEST_PAGE_SIZE - 1)));
        if (!buffer_is_zero(src + off, step)) {
            memcpy(dst + off, src + off, step);
        }
    }
}

/* Through a bounce buffer, so that zero pages (file holes included) are never
 * written into guest RAM (see vmcore_read_memory). */
bool vmcore_elf_load(VmcoreImage *img, GuestMemory *mem, GError **errp)
{
    g_autofree uint8_t *bounce = g_malloc(IO_BATCH);

    for (guint i = 0; i < img->extents->len; i++) {
        const ElfExtent *e = &g_array_index(img->extents, ElfExtent, i);
        for (uint64_t done = 0, n; done < e->size; done += n) {
            uint8_t *host = guest_span(mem, e->paddr + done, e->size - done, &n);
            if (!host) {
                return vmcore_fail(img, errp, "guest RAM does not cover address 0x%" PRIx64,
                                   e->paddr + done);
            }
            for (uint64_t k = 0, m; k < n; k += m) {
                m = MIN(IO_BATCH, n - k);
                memset(bounce, 0, m);               /* holes in the file read as zeros */
                if (!vmcore_read_sparse(img, bounce, m, e->offset + done + k, errp)) {
                    return false;
                }
                copy_pages(host + k, bounce, m);
            }
        }
    }
    return true;
}
