/* Unit tests of the flattened-file reader (system/vmcore_flat.c): ELF and
 * kdump files flattened by a tiny writer, and bad flattened files. */
#include "test_vmcore.h"

typedef struct FlatChunk {
    uint64_t off, size;
} FlatChunk;

/* makedumpfile flattened: records of assorted sizes, written in reverse order,
 * all-zero chunks left out (they must read back as zero). */
GByteArray *flatten(const GByteArray *logical)
{
    static const size_t sizes[] = { 4096, 777, 10000, 1 };
    g_autoptr(GArray) recs = g_array_new(FALSE, FALSE, sizeof(FlatChunk));
    GByteArray *out = g_byte_array_new();
    uint8_t hdr[16];

    append_zeros(out, 4096);
    memcpy(out->data, "makedumpfile", 12);
    put_be64(out->data + 16, 1);
    put_be64(out->data + 24, 1);
    for (size_t off = 0, i = 0; off < logical->len; i++) {
        FlatChunk r = { off, MIN(sizes[i % 4], logical->len - off) };
        g_array_append_val(recs, r);
        off += r.size;
    }
    for (guint i = recs->len; i-- > 0;) {
        const FlatChunk *r = &g_array_index(recs, FlatChunk, i);
        bool zero = TRUE;
        for (uint64_t k = 0; k < r->size && zero; k++) {
            zero = logical->data[r->off + k] == 0;
        }
        if (zero && r->off + r->size < logical->len) {
            continue;
        }
        put_be64(hdr, r->off);
        put_be64(hdr + 8, r->size);
        g_byte_array_append(out, hdr, 16);
        g_byte_array_append(out, logical->data + r->off, (guint)r->size);
    }
    memset(hdr, 0xff, 16);
    g_byte_array_append(out, hdr, 16);
    return out;
}


/* makedumpfile -F -E: a flattened ELF file. */
void test_flat_elf(void)
{
    g_autoptr(GByteArray) notes = make_notes(CPU_X86_64, 440);
    ElfSpec spec = { true, EM_X86_64, basic_loads, 4, notes, 0 };
    g_autoptr(GByteArray) elf = elf_build(&spec);
    g_autoptr(GByteArray) file = flatten(elf);
    g_autofree char *path = write_file("flat-elf", file);
    VmcoreImage *img = open_ok(path);

    check_cpus(img, CPU_X86_64, 440);
    GuestMemory *mem = load_ok(img);
    check_loads_memory(mem, basic_loads, 4);
    guest_memory_free(mem);
    vmcore_close(img);
}

void test_bad_flattened(void)
{
    g_autoptr(GByteArray) logical = basic_kdump(0x1);
    g_autoptr(GByteArray) b = flatten(logical);
    uint64_t len = b->len;
    uint64_t first_size = GUINT64_FROM_BE(get64(b->data + 4096 + 8));

    g_byte_array_set_size(b, len - 16);
    bad_open("flat-no-end", b, "ends without its end marker");
    g_byte_array_set_size(b, len - 20);
    bad_open("flat-cut", b, "runs past the end of the file");
    g_byte_array_set_size(b, 2000);
    bad_open("flat-short", b, "truncated makedumpfile flattened header");
    g_byte_array_unref(b);

    b = flatten(logical);
    put_be64(b->data + 4096 + 8, (uint64_t)-5);
    bad_open("flat-negative", b, "flattened record at offset 0x1000 is corrupt");
    put_be64(b->data + 4096 + 8, first_size);
    put_be64(b->data + 4096 + 16 + first_size, GUINT64_FROM_BE(get64(b->data + 4096)));
    bad_open("flat-overlap", b, "flattened records overlap");
    put_be64(b->data + 16, 2);
    bad_open("flat-type", b, "makedumpfile flattened type 2 is not 1");
}
