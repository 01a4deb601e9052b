/* Guest loaders: the built-in demo guest and static x86_64 ELF executables (-kernel). */
#ifndef MINIVM_LOADER_H
#define MINIVM_LOADER_H

#include "vm.h"

/* Prepare ring-3 long mode for every vCPU and load `kernel` (NULL: the demo guest). */
bool loader_boot_x86(VM *vm, const char *kernel, GError **errp);

/* Load a static x86_64 ELF executable image into guest RAM; returns its entry. */
bool loader_load_elf(VM *vm, const uint8_t *image, size_t size, const char *what,
                     uint64_t *entry, GError **errp);

#endif
