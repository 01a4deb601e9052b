/*
 * fuzz_hmp: bytes as HMP command lines (split at '\n', '\r' dropped, as the HMP
 * chardev does) into hmp_execute() on the shared VM; the output is CRLF-ed as
 * for human-monitor-command. memsave, dump-guest-memory and quit run for real:
 * the sandbox in fuzz_common.c keeps their files inside a private directory.
 */
#include "fuzz_common.h"

#include <stdio.h>
#include <string.h>

#define HMP_MAX_LINE 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Monitor *mon = fuzz_monitor();
    g_autoptr(GString) line = g_string_new(NULL);

    fuzz_monitor_reset();
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n') {
            if (data[i] != '\r' && line->len < HMP_MAX_LINE) {
                g_string_append_c(line, (char)data[i]);
            }
            continue;
        }
        g_autoptr(GString) out = g_string_new(NULL);
        hmp_execute(mon, NULL, line->str, out);
        hmp_crlf(out);
        if (fuzz_verbose()) {
            fprintf(stderr, "(qemu) %s\n%s", line->str, out->str);
        }
        g_string_truncate(line, 0);
        fuzz_monitor_settle();
    }
    return 0;
}
