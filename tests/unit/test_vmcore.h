/*
 * Shared by the unit tests of the vmcore readers, split as the readers are:
 * test_vmcore.c (the common helpers, generic bad files, main),
 * test_vmcore_elf.c, test_vmcore_kdump.c and test_vmcore_flat.c, each with
 * a tiny writer of its format and its good and bad files.
 */
#ifndef MINIVM_TEST_VMCORE_H
#define MINIVM_TEST_VMCORE_H

#include "config.h"
#include "vmcore.h"
#include "util.h"

#include <elf.h>
#include <string.h>

#define PAGE 4096u
#define NCPUS 2
#define VMCOREINFO_TEXT "OSRELEASE=6.1.0-test\nPAGESIZE=4096\nNUMBER(phys_base)=-16\n"

extern char *tmpdir;

/* ---- byte helpers ---- */

static inline void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static inline void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    memcpy(p, &v, 8);
}

static inline void patch32(GByteArray *b, size_t off, uint32_t v)
{
    g_assert_cmpuint(off + 4, <=, b->len);
    put32(b->data + off, v);
}

static inline void patch64(GByteArray *b, size_t off, uint64_t v)
{
    g_assert_cmpuint(off + 8, <=, b->len);
    put64(b->data + off, v);
}

static inline uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void append_zeros(GByteArray *b, size_t n)
{
    g_byte_array_set_size(b, b->len + n);
    memset(b->data + b->len - n, 0, n);
}

/* Write b as tmpdir/name; the path, to be freed. */
char *write_file(const char *name, const GByteArray *b);

/* ---- guest pages, vCPU notes, opening and loading (test_vmcore.c) ---- */

/* Page contents: compressible, two zero pages, one random page. */
bool page_is_zero_pfn(uint64_t pfn);
void page_fill(uint64_t pfn, uint8_t *out);

typedef enum { CPU_X86_64, CPU_I386 } CpuKind;

X86Segment seg(uint32_t sel, uint32_t limit, uint32_t flags, uint64_t base);
X86CPUState make_cpu(guint i, bool long_mode, bool kgs);
void note_add(GByteArray *out, const char *name, uint32_t type, const void *desc,
              size_t descsz);
void prstatus64(const X86CPUState *s, guint i, uint8_t d[336]);
void qemu_cpu_state(const X86CPUState *s, uint32_t size, uint8_t d[440]);
/* QEMU's note order: PRSTATUS per vCPU, QEMU per vCPU (qemu_size 0: none), VMCOREINFO. */
GByteArray *make_notes(CpuKind kind, uint32_t qemu_size);
void assert_cpu(const X86CPUState *got, const X86CPUState *want);
void check_cpus(const VmcoreImage *img, CpuKind kind, uint32_t qemu_size);
void check_note(const VmcoreImage *img);

VmcoreImage *open_ok(const char *path);
GuestMemory *load_ok(VmcoreImage *img);
void check_page(const GuestMemory *mem, uint64_t gpa, bool zero);
void check_blocks(const VmcoreImage *img, const VmcoreBlock *want, guint n);
/* Write the file, then expect vmcore_open() or vmcore_read_memory() to fail with
 * a one-line error naming it and mentioning `what`. */
void bad_open(const char *name, GByteArray *file, const char *what);
void bad_read(const char *name, GByteArray *file, const char *what);

/* ---- a tiny ELF core writer (test_vmcore_elf.c) ---- */

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

extern const TestLoad basic_loads[4];
GByteArray *elf_build(const ElfSpec *s);
void check_loads_memory(const GuestMemory *mem, const TestLoad *loads, guint n);

/* ---- a tiny kdump-compressed writer (test_vmcore_kdump.c) ---- */

typedef struct KdumpSpec {
    bool i386;
    uint32_t flags;          /* compression of pages that shrink */
    int32_t version;
    uint64_t short_pfn;      /* this page is compressed from half a page (bad file) */
    bool qemu_x86_64;        /* i386 as qemu-system-x86_64 writes it: machine "x86_64",
                              * max_mapnr to 4 GiB (v6 readers take the sub-header's) */
} KdumpSpec;

typedef struct KdumpCase {
    const char *name;
    uint32_t flags;
    bool i386;
    bool flattened;
} KdumpCase;

GByteArray *kdump_build(const KdumpSpec *s);
GByteArray *basic_kdump(uint32_t flags);
extern const KdumpCase kdump_cases[];
extern const guint n_kdump_cases;
extern const KdumpCase short_cases[];
extern const guint n_short_cases;

/* ---- makedumpfile flattened files (test_vmcore_flat.c) ---- */

GByteArray *flatten(const GByteArray *logical);

/* ---- the test cases, registered by main() ---- */

void test_elf64(void);
void test_elf64_qemu432(void);
void test_elf32(void);
void test_elf64_i386(void);
void test_elf_prstatus_only(void);
void test_elf_paging_duplicates(void);
void test_elf_kernel_text_load(void);
void test_elf_compat_mode_cpu(void);
void test_elf_first_load_keeps_overlap(void);
void test_elf_pn_xnum(void);
void test_flat_elf(void);
void test_kdump_case(gconstpointer data);
void test_kdump_version4(void);
void test_kdump_i386_from_qemu_x86_64(void);
void test_bad_elf_header(void);
void test_bad_elf_loads(void);
void test_bad_elf_notes(void);
void test_bad_kdump_header(void);
void test_bad_kdump_bitmaps(void);
void test_bad_kdump_descs(void);
void test_bad_kdump_short_page(gconstpointer data);
void test_bad_flattened(void);

#endif
