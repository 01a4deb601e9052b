/* The monitor: QMP and HMP sessions over chardevs, event broadcast, fd passing. */
#ifndef MINIVM_MONITOR_H
#define MINIVM_MONITOR_H

#include "chardev.h"
#include "qapi.h"
#include "vm.h"

typedef struct Monitor Monitor;
typedef struct DumpState DumpState;

struct QmpSession {
    Monitor *mon;
    ChardevConn *conn;     /* NULL for internal sessions */
    bool negotiated;
    GString *inbuf;
    int depth;
    bool in_string, escape;
    size_t scan_pos;
    GHashTable *fds;       /* fd name -> fd (getfd): its channel's, or its own */
};

/* One -qmp or -monitor option. Its connections share the fds passed with getfd,
 * which outlive a client that disconnects, as QEMU's Monitor keeps them. */
typedef struct MonitorChannel {
    Monitor *mon;
    GHashTable *fds;
} MonitorChannel;

struct Monitor {
    VM *vm;
    GPtrArray *chardevs;
    GPtrArray *channels;   /* MonitorChannel *, freed after the chardevs */
    GList *qmp_sessions;
    DumpState *dump;
    GMainLoop *loop;
    bool quit_requested;
};

Monitor *monitor_new(VM *vm);
void monitor_free(Monitor *mon);
bool monitor_add_qmp(Monitor *mon, const char *spec, GError **errp);
bool monitor_add_hmp(Monitor *mon, const char *spec, GError **errp);
/* Run the main loop until quit. */
void monitor_run(Monitor *mon);
/* Quit the main loop; SHUTDOWN {guest: false, reason} goes out first. */
void monitor_request_quit(Monitor *mon, const char *reason);
/* stop/cont for QMP and HMP: refused while a dump is in progress, as QEMU. */
bool monitor_stop_vm(Monitor *mon, GError **errp);
bool monitor_cont_vm(Monitor *mon, GError **errp);
/* Send an event to every negotiated QMP session. Takes ownership of data. */
void monitor_emit_event(Monitor *mon, const char *event, JsonObject *data);
/* The same, stamped with the time it happened (g_get_real_time), as QEMU stamps
 * an event when it is emitted: a STOP queued before a synchronous dump and sent
 * after it still carries the time the VM stopped. */
void monitor_emit_event_at(Monitor *mon, const char *event, JsonObject *data, gint64 now);

/* A QMP session; with conn NULL, replies are dropped (tests, fuzzing). It uses
 * the fd table given (a channel's) or, with NULL, one of its own. */
QmpSession *qmp_session_new(Monitor *mon, ChardevConn *conn, GHashTable *fds);
/* A channel of the monitor, for one chardev's connections (freed with it). */
MonitorChannel *monitor_channel_new(Monitor *mon);
void qmp_session_free(gpointer session);
/* Feed bytes from the client: complete JSON values are dispatched at once. */
void qmp_session_feed(QmpSession *s, const char *data, size_t len);

/* Take the fd named `name` from the session (getfd), or -1 with QEMU's error. */
int qmp_session_take_fd(QmpSession *s, const char *name, GError **errp);

/* Execute one HMP command line; output (with errors) is appended to out.
 * Returns false if the monitor should quit. `s` may be NULL (no fd passing). */
/* DUMP_COMPLETED for the dump subsystem's completion callback. */
struct DumpProgress;
void monitor_dump_completed(void *opaque, const struct DumpProgress *result, const GError *err);

void hmp_execute(Monitor *mon, QmpSession *s, const char *line, GString *out);
/* HMP output lines end with \r\n, as QEMU's monitor writes them. */
void hmp_crlf(GString *out);

#endif
