/*
 * The guest kernel's own VMCOREINFO note, found in guest RAM when the guest did not
 * publish it (no vmcoreinfo device; a vmcore without the note). Linux keeps it in a
 * page-aligned buffer: Elf64_Nhdr { namesz 11, descsz, type 0 }, "VMCOREINFO" padded
 * to 12 bytes, then the KEY=value text. A page that starts so is only a candidate:
 * it counts when its text is VMCOREINFO of a kernel with 4 KiB pages whose page
 * tables (SYMBOL(init_top_pgt), NUMBER(phys_base)) map themselves. Of several, the
 * first in address order whose tables the first vCPU translates with, else the first.
 */
#ifndef MINIVM_DUMP_VMCOREINFO_SCAN_H
#define MINIVM_DUMP_VMCOREINFO_SCAN_H

#include "cpu.h"
#include "memory.h"

#include <glib.h>

/* The most a kernel's note takes: header, name, VMCOREINFO_BYTES of text. */
#define VMCOREINFO_NOTE_MAX (12 + 12 + 4096)

/* The valid note at gpa (header, name, text, padding), or NULL. */
GBytes *vmcoreinfo_note_at(const GuestReader *r, uint64_t gpa);

/*
 * Search RAM, skipping pages known to be zero without reading them (page starts are
 * looked at in RAM as it is, candidates read through r); `hint` (where
 * an earlier search found it, UINT64_MAX for none) is tried first. `cpu` (NULL when
 * its registers are not current) picks among candidates. The note and its address,
 * or NULL.
 */
GBytes *vmcoreinfo_search(const GuestReader *r, const X86CPUState *cpu, uint64_t hint,
                          uint64_t *gpa);

#endif
