/*
 * fuzz_vmcore: bytes as a vmcore file (ELF core, kdump-compressed, either one
 * makedumpfile-flattened) through what -load-vmcore does: vmcore_open(), the
 * vCPU states and guest note, RAM blocks made from vmcore_block(), then
 * vmcore_read_memory(). Inputs whose blocks need more than 64 MiB of guest RAM
 * stop after vmcore_open() (the fuzzer's RSS limit is not a vmcore bug).
 */
#include "fuzz_common.h"
#include "dump/vmcoreinfo.h"
#include "vmcore.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_GUEST_RAM (64ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t cpu_sink;   /* the vCPU states are read, not dropped */

static const char *input_path(void)
{
    static char *path;

    if (!path) {
        path = fuzz_tmp_path("input.vmcore");
    }
    return path;
}

static void write_input(const uint8_t *data, size_t size)
{
    int fd = open(input_path(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd) < 0) {
        perror("fuzz_vmcore: cannot write the input file");
        abort();
    }
}

static void use_guest_note(VmcoreImage *img)
{
    GBytes *note = vmcore_guest_note(img);
    gsize len;
    size_t off, dlen;
    int64_t n;

    if (!note) {
        return;
    }
    const uint8_t *p = g_bytes_get_data(note, &len);
    if (elf_note_find(p, len, "VMCOREINFO", &off, &dlen)) {
        (void)vmcoreinfo_number((const char *)p + off, dlen, "NUMBER(phys_base)", &n);
    }
}

/* vmcore.h promises ascending, non-overlapping, page-aligned blocks. */
static void check_blocks(VmcoreImage *img)
{
    uint64_t end = 0;

    for (guint i = 0; i < vmcore_block_count(img); i++) {
        VmcoreBlock b = vmcore_block(img, i);
        if (!b.size || (b.gpa | b.size) % GUEST_PAGE_SIZE || b.gpa < end ||
            b.gpa + b.size < b.gpa) {
            fprintf(stderr, "fuzz_vmcore: block %u [0x%" PRIx64 ", +0x%" PRIx64 ") breaks "
                    "vmcore.h's promise (previous end 0x%" PRIx64 ")\n", i, b.gpa, b.size, end);
            abort();
        }
        end = b.gpa + b.size;
    }
}

static bool blocks_fit(VmcoreImage *img)
{
    uint64_t total = 0;

    for (guint i = 0; i < vmcore_block_count(img); i++) {
        VmcoreBlock b = vmcore_block(img, i);
        if (b.size > MAX_GUEST_RAM || (total += b.size) > MAX_GUEST_RAM) {
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    GError *err = NULL;

    write_input(data, size);
    VmcoreImage *img = vmcore_open(input_path(), &err);
    if (!img) {
        g_clear_error(&err);
        return 0;
    }
    for (guint i = 0; i < vmcore_cpu_count(img); i++) {
        cpu_sink += vmcore_cpu(img, i)->rip;
    }
    use_guest_note(img);
    check_blocks(img);
    if (blocks_fit(img)) {
        GuestMemory *mem = guest_memory_new(NULL, &err);
        bool ok = mem != NULL;
        for (guint i = 0; ok && i < vmcore_block_count(img); i++) {
            VmcoreBlock b = vmcore_block(img, i);
            g_autofree char *name = g_strdup_printf("vmcore.%u", i);
            ok = guest_memory_add(mem, name, b.gpa, b.size, &err) != NULL;
        }
        if (ok) {
            (void)vmcore_read_memory(img, mem, &err);
        }
        g_clear_error(&err);
        guest_memory_free(mem);
    }
    vmcore_close(img);
    return 0;
}
