/*
 * fuzz_pagefilter: guest RAM and a VMCOREINFO text as a dump of a Linux guest
 * meets them: the search for the kernel's VMCOREINFO note (vmcoreinfo_search), and
 * the dump-level decisions (page_filter_new, page_filter_decide) for every frame
 * that can have a struct page here, with the input's text and with the note found.
 * Guest memory is a 1 MiB buffer of exactly that size, so that ASan sees any read
 * past guest RAM; a hang is a bug (every walk is bounded).
 *
 * Input: level, flags (bit 0: a vCPU in long mode on the tables the text names;
 * bits 2..7: how many frames a call decides, +1, times 7), the text's length
 * (16 bits, little-endian) and the text, then records of a 16-bit frame number and
 * up to 4096 bytes put at that frame. tests/unit/test_filter.c writes the seeds
 * (MINIVM_FUZZ_SEED_DIR) from its synthetic kernels.
 */
#include "dump/linux_kernel.h"
#include "dump/page_filter.h"
#include "dump/vmcoreinfo.h"
#include "dump/vmcoreinfo_scan.h"

#include <string.h>

#define FUZZ_RAM (1u << 20)                 /* the synthetic kernels fit below 1 MiB */
#define FUZZ_FRAMES 8192                  /* struct pages of frames past RAM may be in RAM */
#define RECORD 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *copy(const uint8_t *data, size_t size)
{
    uint8_t *p = g_malloc(size ? size : 1);

    memcpy(p, data, size);
    return p;
}

/* Put the records at their frames. */
static void fill_ram(uint8_t *ram, const uint8_t *p, size_t len)
{
    while (len > 2) {
        size_t frame = (size_t)(p[0] | p[1] << 8) % (FUZZ_RAM / RECORD);
        size_t n = MIN(len - 2, RECORD);
        memcpy(ram + frame * RECORD, p + 2, n);
        p += 2 + n;
        len -= 2 + n;
    }
}

/* A vCPU in long mode on the page tables the text names. */
static X86CPUState kernel_cpu(const char *text, size_t len)
{
    X86CPUState cpu = { .efer = EFER_LMA | EFER_LME };
    KernelInfo ki;

    kernel_info_parse(&ki, text, len);
    cpu.cr[0] = CR0_PE | CR0_PG;
    cpu.cr[4] = CR4_PAE;
    cpu.cr[3] = ki.value[KF_INIT_TOP_PGT] - LINUX_START_KERNEL_MAP + ki.value[KF_PHYS_BASE];
    return cpu;
}

/* Every frame decided, `chunk` frames a call, as a dump's batches ask. */
static void decide_all(unsigned level, const char *text, size_t len, const GuestReader *r,
                       size_t chunk)
{
    PageFilter *f = NULL;
    g_autofree uint64_t *pfns = g_new(uint64_t, chunk);
    g_autofree bool *excluded = g_new(bool, chunk);

    if (!page_filter_new(level, text, len, r, &f, NULL) || !f) {
        return;
    }
    PageFilterCursor *c = page_filter_cursor_new(f);
    for (uint64_t first = 0; first < FUZZ_FRAMES; first += chunk) {
        size_t n = (size_t)MIN(chunk, FUZZ_FRAMES - first);
        for (size_t i = 0; i < n; i++) {
            pfns[i] = first + i;
        }
        page_filter_decide(c, pfns, n, excluded);
    }
    page_filter_cursor_free(c);
    page_filter_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) {
        return 0;
    }
    unsigned level = data[0] & 31, flags = data[1];
    size_t text_len = MIN((size_t)(data[2] | data[3] << 8), size - 4);
    size_t chunk = ((flags >> 2) + 1) * 7;
    g_autofree char *text = (char *)copy(data + 4, text_len);
    g_autofree uint8_t *ram = g_malloc0(FUZZ_RAM);
    RamBlock block = { .name = (char *)"ram", .gpa = 0, .size = FUZZ_RAM, .host = ram };
    GuestMemory mem = { .blocks = g_ptr_array_new(), .fd = -1 };
    GuestReader r = { .mem = &mem };
    X86CPUState cpu = kernel_cpu(text, text_len);
    uint64_t gpa;

    fill_ram(ram, data + 4 + text_len, size - 4 - text_len);
    g_ptr_array_add(mem.blocks, &block);
    decide_all(level, text, text_len, &r, chunk);
    GBytes *note = vmcoreinfo_search(&r, (flags & 1) ? &cpu : NULL, UINT64_MAX, &gpa);
    if (note) {
        gsize len;
        const uint8_t *p = g_bytes_get_data(note, &len);
        size_t off, dlen;
        if (gpa % 4096 || len > VMCOREINFO_NOTE_MAX ||
            !elf_note_find(p, len, "VMCOREINFO", &off, &dlen)) {
            __builtin_trap();      /* a note found is a page-aligned VMCOREINFO note */
        }
        decide_all(level, (const char *)p + off, dlen, &r, chunk);
        g_bytes_unref(note);
    }
    g_ptr_array_free(mem.blocks, TRUE);
    return 0;
}
