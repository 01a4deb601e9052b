/* VMCOREINFO: finding the guest's note in a note stream and reading its keys. */
#ifndef MINIVM_DUMP_VMCOREINFO_H
#define MINIVM_DUMP_VMCOREINFO_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Find the note named `name` in a little-endian ELF note stream; returns the
 * offset and size of its desc. Stops at the first malformed note. */
bool elf_note_find(const uint8_t *notes, size_t len, const char *name, size_t *desc_off,
                   size_t *desc_len);

/* The value of "KEY=value\n" in VMCOREINFO text (not NUL-terminated), or NULL. */
char *vmcoreinfo_lookup(const char *text, size_t len, const char *key);
/* NUMBER(x)= values: signed, decimal or 0x-prefixed (docs/formats.md). */
bool vmcoreinfo_number(const char *text, size_t len, const char *key, int64_t *out);
/* SYMBOL(x)= and KERNELOFFSET= values: hex without 0x. */
bool vmcoreinfo_hex(const char *text, size_t len, const char *key, uint64_t *out);

#endif
