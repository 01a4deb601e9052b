/*
 * QMP: the greeting, capabilities negotiation, message framing, dispatch through
 * the generated command table, replies that echo "id", and events.
 */
#include "config.h"
#include "monitor.h"
#include "dump.h"
#include "qapi-commands.h"
#include "util.h"

#include <stdio.h>
#include <unistd.h>

#define QMP_MAX_MESSAGE (16u << 20)
#define QMP_MAX_NESTING 1024

static void json_append(GString *out, JsonNode *node);

/* Strings as QEMU writes them: ASCII only, everything else \u-escaped. */
static void json_append_string(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    while (*s) {
        gunichar c = g_utf8_get_char_validated(s, -1);
        if (c == (gunichar)-1 || c == (gunichar)-2) {
            c = 0xfffd;
            s++;
        } else {
            s = g_utf8_next_char(s);
        }
        switch (c) {
        case '"': g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (c >= 0x20 && c < 0x7f) {
                g_string_append_c(out, (char)c);
            } else if (c > 0xffff) {
                c -= 0x10000;
                g_string_append_printf(out, "\\u%04X\\u%04X", 0xd800 | (c >> 10),
                                       0xdc00 | (c & 0x3ff));
            } else {
                g_string_append_printf(out, "\\u%04X", c);
            }
        }
    }
    g_string_append_c(out, '"');
}

static void json_append_value(GString *out, JsonNode *node)
{
    GType t = json_node_get_value_type(node);
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    if (t == G_TYPE_INT64) {
        g_string_append_printf(out, "%" G_GINT64_FORMAT, json_node_get_int(node));
    } else if (t == G_TYPE_DOUBLE) {
        g_string_append(out, g_ascii_dtostr(buf, sizeof(buf), json_node_get_double(node)));
    } else if (t == G_TYPE_BOOLEAN) {
        g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
    } else {
        json_append_string(out, json_node_get_string(node));
    }
}

/* Serialise with QEMU's separators (", " and ": "), members in insertion order. */
static void json_append(GString *out, JsonNode *node)
{
    switch (JSON_NODE_TYPE(node)) {
    case JSON_NODE_OBJECT: {
        JsonObject *obj = json_node_get_object(node);
        g_autoptr(GList) members = json_object_get_members(obj);
        g_string_append_c(out, '{');
        for (GList *l = members; l; l = l->next) {
            json_append_string(out, l->data);
            g_string_append(out, ": ");
            json_append(out, json_object_get_member(obj, l->data));
            if (l->next) {
                g_string_append(out, ", ");
            }
        }
        g_string_append_c(out, '}');
        break;
    }
    case JSON_NODE_ARRAY: {
        JsonArray *arr = json_node_get_array(node);
        g_string_append_c(out, '[');
        for (guint i = 0; i < json_array_get_length(arr); i++) {
            if (i) {
                g_string_append(out, ", ");
            }
            json_append(out, json_array_get_element(arr, i));
        }
        g_string_append_c(out, ']');
        break;
    }
    case JSON_NODE_NULL:
        g_string_append(out, "null");
        break;
    case JSON_NODE_VALUE:
        json_append_value(out, node);
        break;
    }
}

static void session_send(QmpSession *s, JsonObject *obj)
{
    if (!s->conn) {
        json_object_unref(obj);
        return;
    }
    g_autoptr(JsonNode) node = qapi_object_node(obj);
    g_autoptr(GString) text = g_string_new(NULL);
    json_append(text, node);
    g_string_append(text, "\r\n");
    chardev_conn_write(s->conn, text->str, text->len);
}

static JsonObject *error_object(const GError *err)
{
    JsonObject *e = json_object_new();
    ErrorClass cls = err->domain == MINIVM_ERROR ? (ErrorClass)err->code
                                                  : ERROR_CLASS_GENERIC_ERROR;

    json_object_set_string_member(e, "class", error_class_name(cls));
    json_object_set_string_member(e, "desc", err->message);
    return e;
}

/* QEMU's order: {"return": X, "id": ID} but {"id": ID, "error": {...}}. */
static void send_reply(QmpSession *s, JsonNode *ret, const GError *err, JsonNode *id)
{
    JsonObject *reply = json_object_new();

    if (err && id) {
        json_object_set_member(reply, "id", json_node_copy(id));
    }
    if (err) {
        json_object_set_object_member(reply, "error", error_object(err));
    } else {
        json_object_set_member(reply, "return", ret ? ret : qapi_empty_object());
        if (id) {
            json_object_set_member(reply, "id", json_node_copy(id));
        }
    }
    session_send(s, reply);
}

static JsonObject *version_object(void)
{
    JsonObject *v = json_object_new(), *q = json_object_new();
    unsigned major = 0, minor = 0, micro = 0;

    sscanf(MINIVM_VERSION, "%u.%u.%u", &major, &minor, &micro);
    json_object_set_int_member(q, "micro", micro);
    json_object_set_int_member(q, "minor", minor);
    json_object_set_int_member(q, "major", major);
    json_object_set_object_member(v, "qemu", q);
    json_object_set_string_member(v, "package", "minivm");
    return v;
}

JsonNode *qmp_query_version(QmpSession *s, JsonObject *args, GError **errp)
{
    return qapi_object_node(version_object());
}

JsonNode *qmp_query_commands(QmpSession *s, JsonObject *args, GError **errp)
{
    JsonArray *arr = json_array_new();

    for (guint i = 0; i < qapi_ncommands; i++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", qapi_commands[i].name);
        json_array_add_object_element(arr, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, arr);
    return n;
}

JsonNode *qmp_qmp_capabilities(QmpSession *s, JsonObject *args, GError **errp)
{
    if (s->negotiated) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Capabilities negotiation is already complete, command ignored");
        return NULL;
    }
    if (qapi_has(args, "enable")) {
        JsonArray *caps = json_object_get_array_member(args, "enable");
        if (json_array_get_length(caps)) {
            /* the schema's enum has only oob; minivm offers no capability */
            error_setg(errp, "Capability %s not available",
                       json_array_get_string_element(caps, 0));
            return NULL;
        }
    }
    s->negotiated = true;
    return NULL;
}

static void greet(QmpSession *s)
{
    JsonObject *g = json_object_new(), *qmp = json_object_new();

    json_object_set_object_member(qmp, "version", version_object());
    json_object_set_array_member(qmp, "capabilities", json_array_new());
    json_object_set_object_member(g, "QMP", qmp);
    session_send(s, g);
}

/* Validate the envelope as QEMU's qmp_dispatch_check_obj does. */
static bool check_envelope(JsonNode *root, const char **cmd, JsonObject **args, GError **errp)
{
    if (!JSON_NODE_HOLDS_OBJECT(root)) {
        error_setg(errp, "QMP input must be a JSON object");
        return false;
    }
    JsonObject *obj = json_node_get_object(root);
    g_autoptr(GList) members = json_object_get_members(obj);
    *cmd = NULL;
    *args = NULL;
    for (GList *l = members; l; l = l->next) {
        const char *key = l->data;
        JsonNode *v = json_object_get_member(obj, key);
        if (g_str_equal(key, "execute") || g_str_equal(key, "exec-oob")) {
            if (!JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_STRING) {
                error_setg(errp, "QMP input member '%s' must be a string", key);
                return false;
            }
            if (g_str_equal(key, "exec-oob")) {
                error_setg(errp, "QMP input member 'exec-oob' is unexpected");
                return false;
            }
            *cmd = json_node_get_string(v);
        } else if (g_str_equal(key, "arguments")) {
            if (!JSON_NODE_HOLDS_OBJECT(v)) {
                error_setg(errp, "QMP input member 'arguments' must be an object");
                return false;
            }
            *args = json_node_get_object(v);
        } else if (!g_str_equal(key, "id")) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return false;
        }
    }
    if (!*cmd) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return false;
    }
    return true;
}

static JsonNode *dispatch(QmpSession *s, JsonNode *root, GError **errp)
{
    const char *name;
    JsonObject *args;

    if (!check_envelope(root, &name, &args, errp)) {
        return NULL;
    }
    const QapiCommand *cmd = qapi_find_command(name);
    if (!s->negotiated && (!cmd || cmd->handler != qmp_qmp_capabilities)) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,     /* unknown ones too, as QEMU */
                  "Expecting capabilities negotiation with 'qmp_capabilities'");
        return NULL;
    }
    if (!cmd) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND, "The command %s has not been found",
                  name);
        return NULL;
    }
    if (!qapi_check_args(cmd, args, errp)) {
        return NULL;
    }
    GError *err = NULL;
    JsonNode *ret = cmd->handler(s, args, &err);
    if (err) {
        g_propagate_error(errp, err);
        if (ret) {
            json_node_unref(ret);
        }
        return NULL;
    }
    return ret ? ret : qapi_empty_object();
}

static void handle_message(QmpSession *s, const char *text, size_t len)
{
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    GError *err = NULL;
    JsonNode *id = NULL;

    if (!json_parser_load_from_data(parser, text, (gssize)len, &err)) {
        g_autofree char *msg = g_strdup_printf("JSON parse error, %s", err->message);
        g_clear_error(&err);
        error_setg(&err, "%s", msg);
        send_reply(s, NULL, err, NULL);
        g_error_free(err);
        return;
    }
    JsonNode *root = json_parser_get_root(parser);
    if (root && JSON_NODE_HOLDS_OBJECT(root)) {
        id = json_object_get_member(json_node_get_object(root), "id");
    }
    JsonNode *ret = root ? dispatch(s, root, &err) : NULL;
    if (!root) {
        return;
    }
    send_reply(s, ret, err, id);
    g_clear_error(&err);
}

/* Split the byte stream into top-level JSON values (as QEMU's json-streamer). */
void qmp_session_feed(QmpSession *s, const char *data, size_t len)
{
    g_string_append_len(s->inbuf, data, (gssize)len);
    size_t i = s->scan_pos, start = 0;
    bool in_token = false;

    for (; i < s->inbuf->len; i++) {
        char ch = s->inbuf->str[i];
        if (s->in_string) {
            if (s->escape) {
                s->escape = false;
            } else if (ch == '\\') {
                s->escape = true;
            } else if (ch == '"') {
                s->in_string = false;
                if (s->depth == 0) {
                    handle_message(s, s->inbuf->str + start, i + 1 - start);
                    start = i + 1;
                }
            }
            continue;
        }
        if (ch == '"') {
            s->in_string = true;
        } else if (ch == '{' || ch == '[') {
            if (++s->depth > QMP_MAX_NESTING) {
                GError *err = NULL;
                error_setg(&err, "JSON nesting depth limit exceeded");
                send_reply(s, NULL, err, NULL);
                g_error_free(err);
                s->depth = 0;
                start = i + 1;
            }
        } else if (ch == '}' || ch == ']') {
            if (s->depth > 0 && --s->depth == 0) {
                handle_message(s, s->inbuf->str + start, i + 1 - start);
                start = i + 1;
            }
        } else if (s->depth == 0 && g_ascii_isspace(ch)) {
            if (in_token) {
                handle_message(s, s->inbuf->str + start, i - start);
            }
            start = i + 1;
            in_token = false;
            continue;
        }
        if (s->depth == 0 && !s->in_string && ch != '}' && ch != ']') {
            in_token = true;
        }
    }
    g_string_erase(s->inbuf, 0, (gssize)start);
    s->scan_pos = s->inbuf->len;
    if (s->inbuf->len > QMP_MAX_MESSAGE) {
        GError *err = NULL;
        error_setg(&err, "JSON parse error, message too large (over %u bytes)", QMP_MAX_MESSAGE);
        send_reply(s, NULL, err, NULL);
        g_error_free(err);
        g_string_truncate(s->inbuf, 0);
        s->scan_pos = 0;
        s->depth = 0;
        s->in_string = s->escape = false;
    }
}

static void close_fd_value(gpointer p)
{
    close(GPOINTER_TO_INT(p));
}

static GHashTable *fd_table_new(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, close_fd_value);
}

static void monitor_channel_free(gpointer p)
{
    MonitorChannel *ch = p;

    g_hash_table_unref(ch->fds);
    g_free(ch);
}

MonitorChannel *monitor_channel_new(Monitor *mon)
{
    MonitorChannel *ch = g_new0(MonitorChannel, 1);

    ch->mon = mon;
    ch->fds = fd_table_new();
    g_ptr_array_add(mon->channels, ch);
    return ch;
}

QmpSession *qmp_session_new(Monitor *mon, ChardevConn *conn, GHashTable *fds)
{
    QmpSession *s = g_new0(QmpSession, 1);

    s->mon = mon;
    s->conn = conn;
    s->inbuf = g_string_new(NULL);
    s->fds = fds ? g_hash_table_ref(fds) : fd_table_new();
    return s;
}

void qmp_session_free(gpointer p)
{
    QmpSession *s = p;

    s->mon->qmp_sessions = g_list_remove(s->mon->qmp_sessions, s);
    g_hash_table_unref(s->fds);
    g_string_free(s->inbuf, TRUE);
    g_free(s);
}

static void qmp_connected(void *opaque, ChardevConn *conn)
{
    MonitorChannel *ch = opaque;
    Monitor *mon = ch->mon;
    QmpSession *s = qmp_session_new(mon, conn, ch->fds);

    chardev_conn_set_data(conn, s, qmp_session_free);
    mon->qmp_sessions = g_list_append(mon->qmp_sessions, s);
    greet(s);
}

static void qmp_received(void *opaque, ChardevConn *conn, const char *data, size_t len)
{
    qmp_session_feed(chardev_conn_get_data(conn), data, len);
}

static const ChardevHandlers qmp_handlers = {
    .connected = qmp_connected,
    .received = qmp_received,
};

bool monitor_add_qmp(Monitor *mon, const char *spec, GError **errp)
{
    Chardev *chr = chardev_new(spec, &qmp_handlers, monitor_channel_new(mon), errp);

    if (!chr) {
        return false;
    }
    g_ptr_array_add(mon->chardevs, chr);
    return true;
}

void monitor_emit_event(Monitor *mon, const char *event, JsonObject *data)
{
    monitor_emit_event_at(mon, event, data, g_get_real_time());
}

void monitor_emit_event_at(Monitor *mon, const char *event, JsonObject *data, gint64 now)
{
    for (GList *l = mon->qmp_sessions; l; l = l->next) {
        QmpSession *s = l->data;
        if (!s->negotiated) {
            continue;
        }
        JsonObject *msg = json_object_new(), *ts = json_object_new();
        json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
        json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
        json_object_set_object_member(msg, "timestamp", ts);
        json_object_set_string_member(msg, "event", event);
        if (data) {
            json_object_set_object_member(msg, "data", json_object_ref(data));
        }
        session_send(s, msg);
    }
    if (data) {
        json_object_unref(data);
    }
}

int qmp_session_take_fd(QmpSession *s, const char *name, GError **errp)
{
    gpointer key, value;

    if (!s || !g_hash_table_lookup_extended(s->fds, name, &key, &value)) {
        error_setg(errp, "File descriptor named '%s' has not been found", name);
        return -1;
    }
    g_hash_table_steal(s->fds, name);
    g_free(key);
    return GPOINTER_TO_INT(value);
}

/* ---- commands owned by the monitor ---- */

JsonNode *qmp_getfd(QmpSession *s, JsonObject *args, GError **errp)
{
    const char *name = qapi_str(args, "fdname");
    int fd = s->conn ? chardev_conn_take_fd(s->conn) : -1;

    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return NULL;
    }
    if (g_ascii_isdigit(name[0])) {
        close(fd);
        error_setg(errp, "Parameter 'fdname' expects a name not starting with a digit");
        return NULL;
    }
    g_hash_table_replace(s->fds, g_strdup(name), GINT_TO_POINTER(fd));
    return NULL;
}

JsonNode *qmp_closefd(QmpSession *s, JsonObject *args, GError **errp)
{
    const char *name = qapi_str(args, "fdname");

    if (!g_hash_table_remove(s->fds, name)) {
        error_setg(errp, "File descriptor named '%s' not found", name);
        return NULL;
    }
    return NULL;
}

JsonNode *qmp_quit(QmpSession *s, JsonObject *args, GError **errp)
{
    monitor_request_quit(s->mon, "host-qmp-quit");
    return NULL;
}

JsonNode *qmp_human_monitor_command(QmpSession *s, JsonObject *args, GError **errp)
{
    g_autoptr(GString) out = g_string_new(NULL);

    int64_t cpu = qapi_int(args, "cpu-index", 0);

    if (cpu < 0 || cpu >= s->mon->vm->ncpus) {
        error_setg(errp, "Parameter 'cpu-index' expects a CPU number");
        return NULL;
    }
    hmp_execute(s->mon, s, qapi_str(args, "command-line"), out);
    hmp_crlf(out);
    return json_node_init_string(json_node_alloc(), out->str);
}

/* ---- monitor object ---- */

static void vm_event(void *opaque, const char *event, JsonObject *data, gint64 timestamp)
{
    monitor_emit_event_at(opaque, event, data ? json_object_ref(data) : NULL, timestamp);
}

Monitor *monitor_new(VM *vm)
{
    Monitor *mon = g_new0(Monitor, 1);

    mon->vm = vm;
    mon->chardevs = g_ptr_array_new();
    mon->channels = g_ptr_array_new_with_free_func(monitor_channel_free);
    mon->loop = g_main_loop_new(NULL, FALSE);
    mon->dump = dump_state_new(vm);
    dump_set_completion(mon->dump, monitor_dump_completed, mon);
    vm_set_event_handler(vm, vm_event, mon);
    return mon;
}

void monitor_request_quit(Monitor *mon, const char *reason)
{
    if (mon->quit_requested) {
        return;
    }
    /* QEMU sends SHUTDOWN before the reply to quit. */
    JsonObject *data = json_object_new();
    json_object_set_boolean_member(data, "guest", FALSE);
    json_object_set_string_member(data, "reason", reason);
    monitor_emit_event(mon, "SHUTDOWN", data);
    mon->quit_requested = true;
    g_main_loop_quit(mon->loop);
}

void monitor_run(Monitor *mon)
{
    if (!mon->quit_requested) {
        g_main_loop_run(mon->loop);
    }
    for (guint i = 0; i < mon->chardevs->len; i++) {
        chardev_flush(g_ptr_array_index(mon->chardevs, i));
    }
}

void monitor_free(Monitor *mon)
{
    if (!mon) {
        return;
    }
    dump_state_free(mon->dump);
    vm_set_event_handler(mon->vm, NULL, NULL);
    for (guint i = 0; i < mon->chardevs->len; i++) {
        chardev_free(g_ptr_array_index(mon->chardevs, i));
    }
    g_ptr_array_free(mon->chardevs, TRUE);
    g_ptr_array_free(mon->channels, TRUE);
    g_main_loop_unref(mon->loop);
    g_free(mon);
}
