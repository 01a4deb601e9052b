/*
 * fuzz_qmp: bytes from a QMP client into the dispatcher, replies and events
 * serialised back onto a real (unix socket) connection.
 *
 * Each input gets a fresh negotiated session on the shared VM ("-accel none
 * -m 8M -S"); the harness then waits for any detached dump to finish. Nothing
 * is filtered: file writes, quit and getfd are made harmless by the sandbox in
 * fuzz_common.c (see there).
 */
#include "fuzz_common.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char caps[] = "{\"execute\": \"qmp_capabilities\"}";
    Monitor *mon = fuzz_monitor();

    fuzz_monitor_reset();
    QmpSession *s = qmp_session_new(mon, fuzz_qmp_conn(), NULL);
    mon->qmp_sessions = g_list_append(mon->qmp_sessions, s);   /* events reach it */
    qmp_session_feed(s, caps, strlen(caps));
    qmp_session_feed(s, (const char *)data, size);
    fuzz_monitor_settle();
    qmp_session_free(s);
    return 0;
}
