/*
 * The ELF note stream of a vmcore, in an ELF PT_NOTE or the kdump note area:
 * NT_PRSTATUS ("CORE") and QEMU's CPU-state notes ("QEMU") become vCPUs, the
 * guest's VMCOREINFO note is kept for the next dump (docs/formats.md, "ELF
 * notes" and "QEMU CPU state").
 */
#include "vmcore-internal.h"
#include "util.h"

#include <elf.h>

#define VMCORE_MAX_NAMESZ   256u
#define VMCORE_MAX_DESCSZ   (1u << 20)    /* as QEMU's limit for the guest note */
#define VMCORE_MAX_CPUS     4096u
#define PRSTATUS64_SIZE     336
#define PRSTATUS64_REG      112
#define PRSTATUS32_SIZE     144
#define PRSTATUS32_REG      72
#define QEMU_NOTE_MIN       432
#define QEMU_NOTE_KGS       440
#define CR0_ET              (1ULL << 4)
#define APIC_BASE_BSP       0xfee00900ULL
#define APIC_BASE_AP        0xfee00800ULL

/* ---- vCPU state: NT_PRSTATUS and QEMU's CPU state ---- */

static X86Segment flat_segment(uint32_t selector, bool code, bool long_mode)
{
    uint32_t flags = SEG_FLAG_P | SEG_FLAG_S | SEG_FLAG_G | (selector & 3) << SEG_FLAG_DPL_SHIFT;

    if (code) {
        flags |= 0xbu << SEG_FLAG_TYPE_SHIFT | (long_mode ? SEG_FLAG_L : SEG_FLAG_DB);
    } else {
        flags |= 0x3u << SEG_FLAG_TYPE_SHIFT | SEG_FLAG_DB;
    }
    return (X86Segment){ .selector = selector, .limit = 0xffffffff, .flags = flags };
}

/* Without a QEMU note: flat descriptors for the prstatus selectors, a busy TSS,
 * and control registers consistent with the mode (KVM refuses LMA without PG). */
static void cpu_default_system_state(X86CPUState *s, bool long_mode)
{
    s->cs = flat_segment(s->cs.selector, true, long_mode);
    s->ss = flat_segment(s->ss.selector, false, long_mode);
    s->ds = flat_segment(s->ds.selector, false, long_mode);
    s->es = flat_segment(s->es.selector, false, long_mode);
    uint64_t fs_base = s->fs.base, gs_base = s->gs.base;
    s->fs = flat_segment(s->fs.selector, false, long_mode);
    s->gs = flat_segment(s->gs.selector, false, long_mode);
    s->fs.base = fs_base;
    s->gs.base = gs_base;
    s->tr = (X86Segment){ .limit = 0x67, .flags = SEG_FLAG_P | 0xbu << SEG_FLAG_TYPE_SHIFT };
    s->cr[0] = CR0_PE | CR0_ET | (long_mode ? CR0_PG : 0);
    s->cr[4] = long_mode ? CR4_PAE : 0;
}

static void prstatus64(X86CPUState *s, const uint8_t *d)
{
    static const int gpr[15] = { R_R15, R_R14, R_R13, R_R12, R_EBP, R_EBX, R_R11, R_R10,
                                 R_R9, R_R8, R_EAX, R_ECX, R_EDX, R_ESI, R_EDI };
    const uint8_t *r = d + PRSTATUS64_REG;

    for (int i = 0; i < 15; i++) {
        s->regs[gpr[i]] = get64(r + 8 * i);
    }
    s->rip = get64(r + 8 * 16);
    s->cs.selector = (uint16_t)get64(r + 8 * 17);
    s->rflags = get64(r + 8 * 18);
    s->regs[R_ESP] = get64(r + 8 * 19);
    s->ss.selector = (uint16_t)get64(r + 8 * 20);
    s->fs.base = get64(r + 8 * 21);
    s->gs.base = get64(r + 8 * 22);
    s->ds.selector = (uint16_t)get64(r + 8 * 23);
    s->es.selector = (uint16_t)get64(r + 8 * 24);
    s->fs.selector = (uint16_t)get64(r + 8 * 25);
    s->gs.selector = (uint16_t)get64(r + 8 * 26);
    cpu_default_system_state(s, true);
}

static void prstatus32(X86CPUState *s, const uint8_t *d)
{
    static const int gpr[7] = { R_EBX, R_ECX, R_EDX, R_ESI, R_EDI, R_EBP, R_EAX };
    const uint8_t *r = d + PRSTATUS32_REG;

    for (int i = 0; i < 7; i++) {
        s->regs[gpr[i]] = get32(r + 4 * i);
    }
    s->ds.selector = get16(r + 4 * 7);
    s->es.selector = get16(r + 4 * 8);
    s->fs.selector = get16(r + 4 * 9);
    s->gs.selector = get16(r + 4 * 10);
    s->rip = get32(r + 4 * 12);
    s->cs.selector = get16(r + 4 * 13);
    s->rflags = get32(r + 4 * 14);
    s->regs[R_ESP] = get32(r + 4 * 15);
    s->ss.selector = get16(r + 4 * 16);
    cpu_default_system_state(s, false);
}

static bool note_prstatus(VmcoreImage *img, const uint8_t *desc, uint32_t descsz,
                          const char *where, guint index, GError **errp)
{
    bool ok = descsz == PRSTATUS64_SIZE || descsz == PRSTATUS32_SIZE;
    X86CPUState s = { 0 };

    if (img->machine == EM_X86_64) {
        ok = descsz == PRSTATUS64_SIZE;
    } else if (img->machine == EM_386) {
        ok = descsz == PRSTATUS32_SIZE;
    }
    if (!ok) {
        return vmcore_fail(img, errp, "NT_PRSTATUS note %u in %s has size %u (336 for x86_64, 144 "
                           "for i386)", index, where, descsz);
    }
    if (img->cpus->len >= VMCORE_MAX_CPUS) {
        return vmcore_fail(img, errp, "more than %u NT_PRSTATUS notes", VMCORE_MAX_CPUS);
    }
    img->prstatus64 = descsz == PRSTATUS64_SIZE;
    if (descsz == PRSTATUS64_SIZE) {
        prstatus64(&s, desc);
    } else {
        prstatus32(&s, desc);
    }
    g_array_append_val(img->cpus, s);
    return true;
}

static bool note_qemu(VmcoreImage *img, const uint8_t *desc, uint32_t descsz,
                      const char *where, guint index, GError **errp)
{
    uint32_t version = descsz >= 8 ? get32(desc) : 0, size = descsz >= 8 ? get32(desc + 4) : 0;

    if (descsz < QEMU_NOTE_MIN || size < QEMU_NOTE_MIN || size > descsz) {
        return vmcore_fail(img, errp, "QEMU note %u in %s has size %u (descsz %u; 432 or 440 "
                           "expected)", index, where, size, descsz);
    }
    if (version != 1) {
        return vmcore_fail(img, errp, "QEMU note %u in %s has version %u, not 1", index, where,
                           version);
    }
    g_array_append_val(img->qemu_notes, desc);
    return true;
}

static X86Segment qemu_segment(const uint8_t *p)
{
    return (X86Segment){ .selector = get32(p), .limit = get32(p + 4), .flags = get32(p + 8),
                         .base = get64(p + 16) };
}

/* QEMUCPUState (docs/formats.md): segments, descriptor tables, control registers. */
static void cpu_apply_qemu_note(X86CPUState *s, const uint8_t *d)
{
    X86Segment *segs[8] = { &s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->ldt, &s->tr };

    for (int i = 0; i < 8; i++) {
        *segs[i] = qemu_segment(d + 152 + 24 * i);
    }
    X86Segment gdt = qemu_segment(d + 344), idt = qemu_segment(d + 368);
    s->gdt = (X86Table){ .base = gdt.base, .limit = gdt.limit };
    s->idt = (X86Table){ .base = idt.base, .limit = idt.limit };
    for (int i = 0; i < 5; i++) {
        s->cr[i] = get64(d + 392 + 8 * i);
    }
    s->kernel_gs_base = get32(d + 4) >= QEMU_NOTE_KGS ? get64(d + 432) : 0;
}

/*
 * EFER is in no note. Long mode is where CS says so, or where an x86_64 prstatus
 * comes with paging and PAE: a vCPU caught in a 32-bit process has CS.L clear.
 * NX goes with PAE paging and SYSCALL with long mode, as every x86_64 Linux turns
 * them on: page tables with NX bits and system calls work if the VM runs on.
 */
static uint64_t restored_efer(const X86CPUState *s, bool x86_64)
{
    bool pae_paging = (s->cr[0] & CR0_PG) && (s->cr[4] & CR4_PAE);
    uint64_t efer = pae_paging ? EFER_NXE : 0;

    if ((s->cs.flags & SEG_FLAG_L) || (x86_64 && pae_paging)) {
        efer |= EFER_LME | EFER_LMA | EFER_SCE;
    }
    return efer;
}

/* The i-th QEMU note belongs to the i-th NT_PRSTATUS vCPU. */
bool vmcore_cpus_finish(VmcoreImage *img, GError **errp)
{
    GArray *cpus = img->cpus;

    if (cpus->len == 0) {
        return vmcore_fail(img, errp, "no NT_PRSTATUS note: the file holds no vCPU state");
    }
    if (img->qemu_notes->len > cpus->len) {
        return vmcore_fail(img, errp, "%u QEMU CPU-state notes for %u NT_PRSTATUS notes",
                           img->qemu_notes->len, cpus->len);
    }
    for (guint i = 0; i < cpus->len; i++) {
        X86CPUState *s = &g_array_index(cpus, X86CPUState, i);
        if (i < img->qemu_notes->len) {
            cpu_apply_qemu_note(s, g_array_index(img->qemu_notes, const uint8_t *, i));
        }
        s->efer = restored_efer(s, img->prstatus64);
        s->apic_base = i == 0 ? APIC_BASE_BSP : APIC_BASE_AP;
    }
    g_array_set_size(img->qemu_notes, 0);
    return true;
}

/* ---- the note stream ---- */

static bool name_is(const uint8_t *name, uint32_t namesz, const char *want)
{
    size_t n = strlen(want);

    return (namesz == n || namesz == n + 1) && memcmp(name, want, n) == 0 &&
           (namesz == n || name[n] == '\0');
}

/* Copy the whole note, padding included (zero-filled if the stream ends early). */
static void note_keep_guest(VmcoreImage *img, const uint8_t *note, uint64_t avail, uint64_t full)
{
    if (img->guest_note) {
        return;
    }
    uint8_t *copy = g_malloc0(full);
    memcpy(copy, note, MIN(avail, full));
    img->guest_note = g_bytes_new_take(copy, full);
}

typedef struct NoteCursor {
    const char *where;      /* "PT_NOTE 0", "the kdump note area" */
    guint index;
} NoteCursor;

static bool note_dispatch(VmcoreImage *img, const NoteCursor *c, const uint8_t *note,
                          uint64_t avail, GError **errp)
{
    uint32_t namesz = get32(note), descsz = get32(note + 4), type = get32(note + 8);
    const uint8_t *name = note + 12, *desc = name + align_up(namesz, 4);
    uint64_t full = 12 + align_up(namesz, 4) + align_up(descsz, 4);

    if (name_is(name, namesz, "CORE") && type == NT_PRSTATUS) {
        return note_prstatus(img, desc, descsz, c->where, c->index, errp);
    }
    if (name_is(name, namesz, "QEMU") && type == 0) {
        return note_qemu(img, desc, descsz, c->where, c->index, errp);
    }
    if (name_is(name, namesz, "VMCOREINFO")) {
        note_keep_guest(img, note, avail, full);
    }
    return true;
}

/* Parse a note stream; `buf` must outlive vmcore_cpus_finish() (QEMU notes point into it). */
static bool notes_parse(VmcoreImage *img, const uint8_t *buf, uint64_t len, const char *where,
                        GError **errp)
{
    NoteCursor c = { where, 0 };

    for (uint64_t pos = 0; pos < len; c.index++) {
        uint64_t left = len - pos;
        if (left < 12) {
            if (buffer_is_zero(buf + pos, left)) {
                break;                  /* trailing padding */
            }
            return vmcore_fail(img, errp, "note %u in %s runs past the end of its segment",
                               c.index, where);
        }
        uint32_t namesz = get32(buf + pos), descsz = get32(buf + pos + 4);
        if (namesz > VMCORE_MAX_NAMESZ || descsz > VMCORE_MAX_DESCSZ) {
            return vmcore_fail(img, errp, "note %u in %s has an absurd size (namesz %u, descsz "
                               "%u)", c.index, where, namesz, descsz);
        }
        if (12 + align_up(namesz, 4) + descsz > left) {
            return vmcore_fail(img, errp, "note %u in %s runs past the end of its segment",
                               c.index, where);
        }
        if (!note_dispatch(img, &c, buf + pos, left, errp)) {
            return false;
        }
        pos += MIN(left, 12 + align_up(namesz, 4) + align_up(descsz, 4));
    }
    return true;
}

/* Read a note segment of the logical file and parse it; the buffer is returned
 * (to be freed after vmcore_cpus_finish) through *keep. */
bool vmcore_notes_read(VmcoreImage *img, uint64_t off, uint64_t len, const char *where,
                       GPtrArray *keep, GError **errp)
{
    if (len > VMCORE_MAX_NOTES) {
        return vmcore_fail(img, errp, "%s has an absurd size (%" PRIu64 " bytes)", where, len);
    }
    if (!range_fits(off, len, img->size)) {
        return vmcore_fail(img, errp, "%s lies past the end of the file", where);
    }
    uint8_t *buf = g_malloc(MAX(len, 1));
    g_ptr_array_add(keep, buf);
    return vmcore_read_at(img, buf, len, off, errp) && notes_parse(img, buf, len, where, errp);
}
