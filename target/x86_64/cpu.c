/* x86 register display (QEMU's "info registers" layout) and address translation. */
#include "cpu.h"
#include "memory.h"

#define DESC_CS_MASK (1u << 11)
#define DESC_C_MASK  (1u << 10)
#define DESC_R_MASK  (1u << 9)
#define DESC_E_MASK  (1u << 10)
#define DESC_W_MASK  (1u << 9)
#define DESC_A_MASK  (1u << 8)

static const char *const sys_type_name[2][16] = {
    { "Reserved", "TSS16-avl", "LDT", "TSS16-busy", "CallGate16", "TaskGate", "IntGate16",
      "TrapGate16", "Reserved", "TSS32-avl", "Reserved", "TSS32-busy", "CallGate32",
      "Reserved", "IntGate32", "TrapGate32" },
    { "<hiword>", "Reserved", "LDT", "Reserved", "Reserved", "Reserved", "Reserved",
      "Reserved", "Reserved", "TSS64-avl", "Reserved", "TSS64-busy", "CallGate64",
      "Reserved", "IntGate64", "TrapGate64" },
};

static void format_segment(const X86CPUState *s, GString *out, const char *name,
                           const X86Segment *sc)
{
    bool lma = x86_cpu_long_mode(s);
    uint32_t f = sc->flags;

    if (lma) {
        g_string_append_printf(out, "%-3s=%04x %016" G_GINT64_MODIFIER "x %08x %08x", name,
                               sc->selector, sc->base, sc->limit, f & 0x00ffff00);
    } else {
        g_string_append_printf(out, "%-3s=%04x %08x %08x %08x", name, sc->selector,
                               (uint32_t)sc->base, sc->limit, f & 0x00ffff00);
    }
    if (!(s->cr[0] & CR0_PE) || !(f & SEG_FLAG_P)) {
        g_string_append_c(out, '\n');
        return;
    }
    g_string_append_printf(out, " DPL=%u ", (f >> SEG_FLAG_DPL_SHIFT) & 3);
    if (f & SEG_FLAG_S) {
        if (f & DESC_CS_MASK) {
            g_string_append(out, (f & SEG_FLAG_L) ? "CS64" : (f & SEG_FLAG_DB) ? "CS32" : "CS16");
            g_string_append_printf(out, " [%c%c", (f & DESC_C_MASK) ? 'C' : '-',
                                   (f & DESC_R_MASK) ? 'R' : '-');
        } else {
            g_string_append(out, ((f & SEG_FLAG_DB) || lma) ? "DS  " : "DS16");
            g_string_append_printf(out, " [%c%c", (f & DESC_E_MASK) ? 'E' : '-',
                                   (f & DESC_W_MASK) ? 'W' : '-');
        }
        g_string_append_printf(out, "%c]", (f & DESC_A_MASK) ? 'A' : '-');
    } else {
        g_string_append(out, sys_type_name[lma][(f >> SEG_FLAG_TYPE_SHIFT) & 15]);
    }
    g_string_append_c(out, '\n');
}

static void format_flags(uint64_t fl, char buf[8])
{
    buf[0] = (fl & 0x400) ? 'D' : '-';
    buf[1] = (fl & 0x800) ? 'O' : '-';
    buf[2] = (fl & 0x80) ? 'S' : '-';
    buf[3] = (fl & 0x40) ? 'Z' : '-';
    buf[4] = (fl & 0x10) ? 'A' : '-';
    buf[5] = (fl & 0x4) ? 'P' : '-';
    buf[6] = (fl & 0x1) ? 'C' : '-';
    buf[7] = 0;
}

void x86_cpu_format_registers(const X86CPUState *s, GString *out)
{
    char fl[8];
    bool cs64 = x86_cpu_long_mode(s) && (s->cs.flags & SEG_FLAG_L);

    format_flags(s->rflags, fl);
    if (cs64) {
        static const char *const names[16] = { "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP",
                                               "RSP", "R8 ", "R9 ", "R10", "R11", "R12", "R13",
                                               "R14", "R15" };
        static const int idx[16] = { R_EAX, R_EBX, R_ECX, R_EDX, R_ESI, R_EDI, R_EBP, R_ESP,
                                     R_R8, R_R9, R_R10, R_R11, R_R12, R_R13, R_R14, R_R15 };
        for (int i = 0; i < 16; i++) {
            g_string_append_printf(out, "%s=%016" G_GINT64_MODIFIER "x%c", names[i],
                                   s->regs[idx[i]], (i % 4 == 3) ? '\n' : ' ');
        }
        g_string_append_printf(out, "RIP=%016" G_GINT64_MODIFIER "x", s->rip);
    } else {
        g_string_append_printf(out,
                               "EAX=%08x EBX=%08x ECX=%08x EDX=%08x\n"
                               "ESI=%08x EDI=%08x EBP=%08x ESP=%08x\nEIP=%08x",
                               (uint32_t)s->regs[R_EAX], (uint32_t)s->regs[R_EBX],
                               (uint32_t)s->regs[R_ECX], (uint32_t)s->regs[R_EDX],
                               (uint32_t)s->regs[R_ESI], (uint32_t)s->regs[R_EDI],
                               (uint32_t)s->regs[R_EBP], (uint32_t)s->regs[R_ESP],
                               (uint32_t)s->rip);
    }
    g_string_append_printf(out, " RFL=%08x [%s] CPL=%u II=0 A20=1 SMM=0 HLT=0\n",
                           (uint32_t)s->rflags, fl, x86_cpu_cpl(s));
    format_segment(s, out, "ES", &s->es);
    format_segment(s, out, "CS", &s->cs);
    format_segment(s, out, "SS", &s->ss);
    format_segment(s, out, "DS", &s->ds);
    format_segment(s, out, "FS", &s->fs);
    format_segment(s, out, "GS", &s->gs);
    format_segment(s, out, "LDT", &s->ldt);
    format_segment(s, out, "TR", &s->tr);
    if (x86_cpu_long_mode(s)) {
        g_string_append_printf(out,
                               "GDT=     %016" G_GINT64_MODIFIER "x %08x\n"
                               "IDT=     %016" G_GINT64_MODIFIER "x %08x\n",
                               s->gdt.base, s->gdt.limit, s->idt.base, s->idt.limit);
        g_string_append_printf(out,
                               "CR0=%08x CR2=%016" G_GINT64_MODIFIER "x CR3=%016"
                               G_GINT64_MODIFIER "x CR4=%08x\n",
                               (uint32_t)s->cr[0], s->cr[2], s->cr[3], (uint32_t)s->cr[4]);
    } else {
        g_string_append_printf(out, "GDT=     %08x %08x\nIDT=     %08x %08x\n",
                               (uint32_t)s->gdt.base, s->gdt.limit, (uint32_t)s->idt.base,
                               s->idt.limit);
        g_string_append_printf(out, "CR0=%08x CR2=%08x CR3=%08x CR4=%08x\n",
                               (uint32_t)s->cr[0], (uint32_t)s->cr[2], (uint32_t)s->cr[3],
                               (uint32_t)s->cr[4]);
    }
    g_string_append_printf(out, "EFER=%016" G_GINT64_MODIFIER "x\n", s->efer);
    g_string_append_printf(out, "FS_BASE=%016" G_GINT64_MODIFIER "x GS_BASE=%016"
                           G_GINT64_MODIFIER "x KERNEL_GS_BASE=%016" G_GINT64_MODIFIER "x\n",
                           s->fs.base, s->gs.base, s->kernel_gs_base);
}

static bool read_entry(const GuestReader *r, uint64_t addr, bool wide, uint64_t *out)
{
    *out = 0;
    return guest_reader_read(r, addr, out, wide ? 8 : 4);    /* little-endian host */
}

#define PG_PRESENT 1ULL
#define PG_PSE     0x80ULL
#define PG_ADDR_MASK 0x000ffffffffff000ULL

bool x86_cpu_translate(const X86CPUState *s, const GuestReader *r, uint64_t vaddr,
                       uint64_t *paddr, uint64_t *page_size)
{
    uint64_t e;

    if (!(s->cr[0] & CR0_PG)) {
        *paddr = vaddr;
        *page_size = 4096;
        return true;
    }
    if (!(s->cr[4] & CR4_PAE)) {
        /* 32-bit paging: 1024-entry tables, 4 MiB pages with PSE */
        uint64_t pde_addr = (s->cr[3] & 0xfffff000) + ((vaddr >> 22) & 0x3ff) * 4;
        if (!read_entry(r, pde_addr, false, &e) || !(e & PG_PRESENT)) {
            return false;
        }
        if ((e & PG_PSE) && (s->cr[4] & 0x10)) {
            *paddr = (e & 0xffc00000) | ((e & 0x1fe000) << 19) | (vaddr & 0x3fffff);
            *page_size = 4ULL << 20;
            return true;
        }
        uint64_t pte_addr = (e & 0xfffff000) + ((vaddr >> 12) & 0x3ff) * 4;
        if (!read_entry(r, pte_addr, false, &e) || !(e & PG_PRESENT)) {
            return false;
        }
        *paddr = (e & 0xfffff000) | (vaddr & 0xfff);
        *page_size = 4096;
        return true;
    }
    int levels = x86_cpu_long_mode(s) ? ((s->cr[4] & CR4_LA57) ? 5 : 4) : 3;
    uint64_t table = levels == 3 ? (s->cr[3] & 0xffffffe0) : (s->cr[3] & PG_ADDR_MASK);
    for (int level = levels; level >= 1; level--) {
        int shift = 12 + 9 * (level - 1);
        uint64_t index = (vaddr >> shift) & (level == 3 && levels == 3 ? 3 : 511);
        if (!read_entry(r, table + index * 8, true, &e) || !(e & PG_PRESENT)) {
            return false;
        }
        if (level == 1 || ((level == 2 || level == 3) && (e & PG_PSE) && !(levels == 3 && level == 3))) {
            uint64_t size = 1ULL << shift;
            *paddr = (e & PG_ADDR_MASK & ~(size - 1)) | (vaddr & (size - 1));
            *page_size = size;
            return true;
        }
        table = e & PG_ADDR_MASK;
    }
    return false;
}

bool x86_cpu_read_virt(const X86CPUState *s, const GuestReader *r, uint64_t vaddr, void *buf,
                       size_t len)
{
    uint8_t *p = buf;

    while (len) {
        uint64_t pa, psize;
        if (!x86_cpu_translate(s, r, vaddr, &pa, &psize)) {
            return false;
        }
        size_t n = (size_t)MIN(len, psize - (vaddr & (psize - 1)));
        if (!guest_reader_read(r, pa, p, n)) {
            return false;
        }
        p += n;
        vaddr += n;
        len -= n;
    }
    return true;
}
