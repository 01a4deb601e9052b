/* Finding the guest kernel's VMCOREINFO note in guest RAM. */
#include "vmcoreinfo_scan.h"
#include "linux_kernel.h"
#include "vmcoreinfo.h"
#include "zeromap.h"

#include <string.h>

#define NOTE_HEADER 24                  /* Elf64_Nhdr and the padded name */
#define NOTE_NAME "VMCOREINFO"          /* 11 bytes with its NUL */
#define TEXT_START "OSRELEASE="
#define SCAN_PAGE 4096

/* Does a page start like the kernel's note? (namesz 11, type 0, the name) */
static bool header_matches(const uint8_t *p)
{
    uint32_t namesz, type;

    memcpy(&namesz, p, 4);
    memcpy(&type, p + 8, 4);
    return GUINT32_FROM_LE(namesz) == sizeof(NOTE_NAME) && type == 0 &&
           memcmp(p + 12, NOTE_NAME, sizeof(NOTE_NAME)) == 0;
}

/* KEY=value lines of printable text, the first one OSRELEASE. */
static bool text_is_vmcoreinfo(const uint8_t *text, size_t len)
{
    if (len <= strlen(TEXT_START) || memcmp(text, TEXT_START, strlen(TEXT_START)) ||
        text[len - 1] != '\n') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((text[i] < 0x20 || text[i] > 0x7e) && text[i] != '\n') {
            return false;
        }
    }
    return true;
}

/* A kernel with 4 KiB pages whose page tables map themselves. */
static bool kernel_is_plausible(const GuestReader *r, const char *text, size_t len)
{
    KernelInfo ki;
    KernelReader kr;

    kernel_info_parse(&ki, text, len);
    return kernel_info_has(&ki, KF_PAGESIZE) && ki.value[KF_PAGESIZE] == 4096 &&
           kernel_reader_init(&kr, r, &ki, NULL);
}

GBytes *vmcoreinfo_note_at(const GuestReader *r, uint64_t gpa)
{
    uint8_t header[NOTE_HEADER];
    uint32_t descsz;

    if (!guest_reader_read(r, gpa, header, sizeof(header)) || !header_matches(header)) {
        return NULL;
    }
    memcpy(&descsz, header + 4, 4);
    descsz = GUINT32_FROM_LE(descsz);
    if (descsz == 0 || descsz > VMCOREINFO_NOTE_MAX - NOTE_HEADER) {
        return NULL;
    }
    size_t size = NOTE_HEADER + ((descsz + 3) & ~3u);
    uint8_t *note = g_malloc0(size);
    memcpy(note, header, sizeof(header));
    if (!guest_reader_read(r, gpa + NOTE_HEADER, note + NOTE_HEADER, descsz) ||
        !text_is_vmcoreinfo(note + NOTE_HEADER, descsz) ||
        !kernel_is_plausible(r, (const char *)note + NOTE_HEADER, descsz)) {
        g_free(note);
        return NULL;
    }
    return g_bytes_new_take(note, size);
}

/* Does the vCPU translate SYMBOL(init_top_pgt) with the tables the note names? */
static bool cpu_runs_kernel(const X86CPUState *cpu, const GuestReader *r, GBytes *note)
{
    gsize size;
    const char *text = (const char *)g_bytes_get_data(note, &size) + NOTE_HEADER;
    KernelInfo ki;
    uint64_t pa, page;

    kernel_info_parse(&ki, text, size - NOTE_HEADER);
    uint64_t top = ki.value[KF_INIT_TOP_PGT];
    return cpu && x86_cpu_long_mode(cpu) && x86_cpu_translate(cpu, r, top, &pa, &page) &&
           pa == top - LINUX_START_KERNEL_MAP + ki.value[KF_PHYS_BASE];
}

/* The best note so far: the first the vCPU runs, else the first found. */
typedef struct Search {
    const GuestReader *reader;
    const X86CPUState *cpu;
    GBytes *note;
    uint64_t gpa;
    bool cpu_runs_it;
} Search;

/* Consider the candidate at gpa; true once the search can stop. */
static bool consider(Search *s, uint64_t gpa)
{
    GBytes *note = vmcoreinfo_note_at(s->reader, gpa);

    if (!note) {
        return false;
    }
    if (cpu_runs_kernel(s->cpu, s->reader, note)) {
        g_clear_pointer(&s->note, g_bytes_unref);
        s->cpu_runs_it = true;
    } else if (s->note) {
        g_bytes_unref(note);
        return false;
    }
    s->note = note;
    s->gpa = gpa;
    return s->cpu_runs_it;
}

/* Candidates in one RAM block, in address order; true once the search can stop. */
static bool scan_block(Search *s, const RamBlock *b, ZeroMap *zm)
{
    for (uint64_t off = 0; off + NOTE_HEADER <= b->size; off += SCAN_PAGE) {
        const uint8_t *page = b->host + off;
        if ((b->anonymous && zeromap_page_known_zero(zm, page)) || !header_matches(page)) {
            continue;
        }
        if (consider(s, b->gpa + off)) {
            return true;
        }
    }
    return false;
}

GBytes *vmcoreinfo_search(const GuestReader *r, const X86CPUState *cpu, uint64_t hint,
                          uint64_t *gpa)
{
    Search s = { .reader = r, .cpu = cpu };

    if (hint == UINT64_MAX || !consider(&s, hint)) {
        g_clear_pointer(&s.note, g_bytes_unref);
        ZeroMap *zm = g_new(ZeroMap, 1);
        zeromap_init(zm);
        for (guint i = 0; i < guest_memory_count(r->mem); i++) {
            if (scan_block(&s, guest_memory_block(r->mem, i), zm)) {
                break;
            }
        }
        zeromap_destroy(zm);
        g_free(zm);
    }
    *gpa = s.gpa;
    return s.note;
}
