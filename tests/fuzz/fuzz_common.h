/*
 * Shared fuzzing harness: a private temporary directory, a sandbox for every
 * file and socket call minivm's own code makes (linked in with -Wl,--wrap=...),
 * and one VM with its monitor that the monitor targets share.
 *
 * The sandbox is what makes inputs such as `dump-guest-memory file:/etc/x`,
 * `memsave 0 4096 /tmp/x` or `{"execute": "qu\u0069t"}` safe without filtering
 * the input bytes (a byte filter is blind to JSON escapes and shell quoting):
 *  - opens for writing outside the private directory are redirected to one file
 *    inside it (so the dump writers still run end to end);
 *  - unlink/rename/mkdir/chmod/bind/connect outside it fail with EACCES;
 *  - only AF_UNIX sockets can be created; exec, fork and kill abort the run.
 * run.sh checks at build time that every such libc call minivm references is
 * one of the wrapped ones.
 */
#ifndef MINIVM_FUZZ_COMMON_H
#define MINIVM_FUZZ_COMMON_H

#include "monitor.h"

#include <stddef.h>
#include <stdint.h>

/* FUZZ_VERBOSE set: targets print the monitor's output to stderr. */
bool fuzz_verbose(void);

/* The private directory (created on first use, removed at exit). */
const char *fuzz_tmpdir(void);
/* A path inside it. The caller frees. */
char *fuzz_tmp_path(const char *name);

/* The shared VM ("-accel none -m 8M -smp 1 -S") and its monitor, created once. */
Monitor *fuzz_monitor(void);
/* Before each input: the VM back in prelaunch, no quit pending, nothing queued. */
void fuzz_monitor_reset(void);
/* After each input: wait for a detached dump to finish, deliver pending events
 * and replies, drain the client side of the QMP connection. */
void fuzz_monitor_settle(void);
/* Send bytes to the HMP monitor over a fresh unix-socket connection (as a
 * user's terminal would), then EOF; returns when the monitor has answered
 * everything and closed it, and any detached dump has finished. */
void fuzz_hmp_feed(const uint8_t *data, size_t len);
/* A QMP connection whose replies are serialised and sent (then discarded by the
 * harness), or NULL if it could not be set up (replies are then dropped). */
ChardevConn *fuzz_qmp_conn(void);

#endif
