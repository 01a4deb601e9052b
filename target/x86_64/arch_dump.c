/*
 * x86 dump notes: NT_PRSTATUS (x86_64: 336 bytes, i386: 144 bytes) and QEMU's
 * "QEMU" CPU-state note (QEMUCPUState version 1, 440 bytes with kernel_gs_base).
 * Layouts: docs/formats.md, "ELF notes". Little-endian fields written by offset.
 */
#include "dump/dump-internal.h"

#include <elf.h>
#include <string.h>

#define PRSTATUS64_SIZE 336
#define PRSTATUS64_PID 32
#define PRSTATUS64_REG 112
#define PRSTATUS32_SIZE 144
#define PRSTATUS32_PID 24
#define PRSTATUS32_REG 72
#define QEMU_CPUSTATE_SIZE 440
#define QEMU_CPUSTATE_VERSION 1

static void put32(uint8_t *p, uint32_t v)
{
    dump_put_le(p, 0, v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    dump_put_le(p, 0, v, 8);
}

void arch_dump_info(const X86CPUState *cpu0, uint64_t ram_end, ArchDumpInfo *info)
{
    bool lma = cpu0 && x86_cpu_long_mode(cpu0);

    info->elf_data = ELFDATA2LSB;
    info->page_size = 4096;
    if (lma) {
        info->elf_class = ELFCLASS64;
        info->elf_machine = EM_X86_64;
        info->uname_machine = "x86_64";
    } else {
        info->elf_class = ram_end > UINT32_MAX ? ELFCLASS64 : ELFCLASS32;
        info->elf_machine = EM_386;
        info->uname_machine = "i686";
    }
}

static void prstatus64(const X86CPUState *s, guint index, uint8_t d[PRSTATUS64_SIZE])
{
    const uint64_t regs[27] = {
        s->regs[R_R15], s->regs[R_R14], s->regs[R_R13], s->regs[R_R12], s->regs[R_EBP],
        s->regs[R_EBX], s->regs[R_R11], s->regs[R_R10], s->regs[R_R9], s->regs[R_R8],
        s->regs[R_EAX], s->regs[R_ECX], s->regs[R_EDX], s->regs[R_ESI], s->regs[R_EDI],
        0 /* orig_rax */, s->rip, s->cs.selector, s->rflags, s->regs[R_ESP], s->ss.selector,
        s->fs.base, s->gs.base, s->ds.selector, s->es.selector, s->fs.selector, s->gs.selector,
    };

    memset(d, 0, PRSTATUS64_SIZE);
    put32(d + PRSTATUS64_PID, index + 1);
    for (int i = 0; i < 27; i++) {
        put64(d + PRSTATUS64_REG + 8 * i, regs[i]);
    }
}

static void prstatus32(const X86CPUState *s, guint index, uint8_t d[PRSTATUS32_SIZE])
{
    const uint32_t regs[17] = {
        (uint32_t)s->regs[R_EBX], (uint32_t)s->regs[R_ECX], (uint32_t)s->regs[R_EDX],
        (uint32_t)s->regs[R_ESI], (uint32_t)s->regs[R_EDI], (uint32_t)s->regs[R_EBP],
        (uint32_t)s->regs[R_EAX], s->ds.selector & 0xffff, s->es.selector & 0xffff,
        s->fs.selector & 0xffff, s->gs.selector & 0xffff, 0 /* orig_eax */, (uint32_t)s->rip,
        s->cs.selector & 0xffff, (uint32_t)s->rflags, (uint32_t)s->regs[R_ESP],
        s->ss.selector & 0xffff,
    };

    memset(d, 0, PRSTATUS32_SIZE);
    put32(d + PRSTATUS32_PID, index + 1);
    for (int i = 0; i < 17; i++) {
        put32(d + PRSTATUS32_REG + 4 * i, regs[i]);
    }
}

static uint8_t *put_segment(uint8_t *p, uint32_t selector, uint32_t limit, uint32_t flags,
                            uint64_t base)
{
    put32(p, selector);
    put32(p + 4, limit);
    put32(p + 8, flags);
    put32(p + 12, 0);
    put64(p + 16, base);
    return p + 24;
}

static void qemu_cpu_state(const X86CPUState *s, uint8_t d[QEMU_CPUSTATE_SIZE])
{
    static const int order[16] = { R_EAX, R_EBX, R_ECX, R_EDX, R_ESI, R_EDI, R_ESP, R_EBP,
                                   R_R8, R_R9, R_R10, R_R11, R_R12, R_R13, R_R14, R_R15 };
    const X86Segment *segs[8] = { &s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss,
                                  &s->ldt, &s->tr };
    uint8_t *p = d + 8;

    memset(d, 0, QEMU_CPUSTATE_SIZE);
    put32(d, QEMU_CPUSTATE_VERSION);
    put32(d + 4, QEMU_CPUSTATE_SIZE);
    for (int i = 0; i < 16; i++, p += 8) {
        put64(p, s->regs[order[i]]);
    }
    put64(p, s->rip);
    put64(p + 8, s->rflags);
    p += 16;
    for (int i = 0; i < 8; i++) {
        p = put_segment(p, segs[i]->selector, segs[i]->limit, segs[i]->flags, segs[i]->base);
    }
    p = put_segment(p, 0, s->gdt.limit, 0, s->gdt.base);
    p = put_segment(p, 0, s->idt.limit, 0, s->idt.base);
    for (int i = 0; i < 5; i++, p += 8) {
        put64(p, s->cr[i]);
    }
    put64(p, s->kernel_gs_base);
}

void arch_dump_cpu_notes(GByteArray *out, const ArchDumpInfo *info, const X86CPUState *cpus,
                         guint ncpus)
{
    uint8_t desc[QEMU_CPUSTATE_SIZE];

    for (guint i = 0; i < ncpus; i++) {
        if (info->elf_machine == EM_X86_64) {
            prstatus64(&cpus[i], i, desc);
            dump_note_append(out, "CORE", NT_PRSTATUS, desc, PRSTATUS64_SIZE);
        } else {
            prstatus32(&cpus[i], i, desc);
            dump_note_append(out, "CORE", NT_PRSTATUS, desc, PRSTATUS32_SIZE);
        }
    }
    for (guint i = 0; i < ncpus; i++) {
        qemu_cpu_state(&cpus[i], desc);
        dump_note_append(out, "QEMU", 0, desc, QEMU_CPUSTATE_SIZE);
    }
}
