/*
 * fuzz_hmp: bytes typed into the HMP monitor over its unix socket, as a user's
 * terminal sends them: the chardev, line splitting (hmp_received), the command
 * parser and every command (hmp_execute), CRLF output and the prompt.
 * memsave, dump-guest-memory and quit run for real: the sandbox in
 * fuzz_common.c keeps their files inside a private directory, and the harness
 * clears the quit request after each input.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_monitor_reset();
    fuzz_hmp_feed(data, size);
    return 0;
}
