#include "vmcoreinfo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NOTE_ALIGN4(x) (((x) + 3) & ~(size_t)3)

bool elf_note_find(const uint8_t *notes, size_t len, const char *name, size_t *desc_off,
                   size_t *desc_len)
{
    size_t off = 0, want = strlen(name) + 1;

    while (len - off >= 12) {
        uint32_t namesz, descsz;
        memcpy(&namesz, notes + off, 4);
        memcpy(&descsz, notes + off + 4, 4);
        size_t name_end = NOTE_ALIGN4((size_t)namesz);
        size_t desc_end = NOTE_ALIGN4((size_t)descsz);
        if (name_end > len - off - 12 || desc_end > len - off - 12 - name_end) {
            return false;
        }
        if (namesz == want && memcmp(notes + off + 12, name, want) == 0) {
            *desc_off = off + 12 + name_end;
            *desc_len = descsz;
            return true;
        }
        off += 12 + name_end + desc_end;
    }
    return false;
}

char *vmcoreinfo_lookup(const char *text, size_t len, const char *key)
{
    size_t klen = strlen(key);
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        if ((size_t)(line_end - p) > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
            return g_strndup(p + klen + 1, (gsize)(line_end - p - klen - 1));
        }
        p = line_end + 1;
    }
    return NULL;
}

static bool parse_signed(const char *s, int base, int64_t *out)
{
    char *end;

    errno = 0;
    long long v = strtoll(s, &end, base);
    if (errno || end == s || *end) {
        return false;
    }
    *out = v;
    return true;
}

bool vmcoreinfo_number(const char *text, size_t len, const char *key, int64_t *out)
{
    g_autofree char *v = vmcoreinfo_lookup(text, len, key);

    return v && parse_signed(v, 0, out);
}

bool vmcoreinfo_hex(const char *text, size_t len, const char *key, uint64_t *out)
{
    g_autofree char *v = vmcoreinfo_lookup(text, len, key);
    char *end;

    if (!v || !*v) {
        return false;
    }
    errno = 0;
    unsigned long long x = strtoull(v, &end, 16);
    if (errno || *end) {
        return false;
    }
    *out = x;
    return true;
}
