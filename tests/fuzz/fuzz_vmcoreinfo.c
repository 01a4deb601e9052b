/*
 * fuzz_vmcoreinfo: bytes as an ELF note stream (elf_note_find) and as
 * VMCOREINFO text (vmcoreinfo_lookup/number/hex), the way -load-vmcore and the
 * dump writers read the guest's note.
 */
#include "dump/vmcoreinfo.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[] = {
    "OSRELEASE", "PAGESIZE", "KERNELOFFSET", "NUMBER(phys_base)", "SYMBOL(_stext)",
    "SYMBOL(swapper_pg_dir)", "NUMBER(pgtable_l5_enabled)", "SYMBOL(init_uts_ns)",
    "LENGTH(mem_section)", "", "=",
};

static void parse_text(const char *text, size_t len)
{
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        int64_t n;
        uint64_t x;
        g_free(vmcoreinfo_lookup(text, len, keys[i]));
        (void)vmcoreinfo_number(text, len, keys[i], &n);
        (void)vmcoreinfo_hex(text, len, keys[i], &x);
    }
}

static uint8_t *copy(const uint8_t *data, size_t size)
{
    uint8_t *p = g_malloc(size ? size : 1);

    memcpy(p, data, size);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exact-size copies, so that ASan sees any read past the end (never NULL:
     * minivm's callers always pass a buffer) */
    g_autofree uint8_t *buf = copy(data, size);
    size_t off, len;

    parse_text((const char *)buf, size);
    static const char *const names[] = { "VMCOREINFO", "CORE", "QEMU", "" };
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        if (elf_note_find(buf, size, names[i], &off, &len)) {
            if (off > size || len > size - off) {
                __builtin_trap();   /* the desc must lie inside the stream */
            }
            g_autofree uint8_t *desc = copy(buf + off, len);
            parse_text((const char *)desc, len);
        }
    }
    return 0;
}
