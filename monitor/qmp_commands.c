/* QMP commands for run control, CPUs and the dump subsystem. */
#include "monitor.h"
#include "dump.h"
#include "qapi-commands.h"
#include "util.h"

G_STATIC_ASSERT((int)DUMP_FORMAT__MAX == (int)DUMP_GUEST_MEMORY_FORMAT__MAX);

JsonNode *qmp_query_status(QmpSession *s, JsonObject *args, GError **errp)
{
    VM *vm = s->mon->vm;
    JsonObject *o = json_object_new();

    json_object_set_string_member(o, "status", run_state_name(vm->state));
    json_object_set_boolean_member(o, "singlestep", FALSE);
    json_object_set_boolean_member(o, "running", vm_is_running(vm));
    return qapi_object_node(o);
}

/* As QEMU: neither stop nor cont while a dump reads the guest's memory (a detached
 * dump resumes the VM itself when it ends). */
static bool no_dump_in_progress(Monitor *mon, GError **errp)
{
    if (dump_in_progress(mon->dump)) {
        error_setg(errp, "There is a dump in process, please wait.");
        return false;
    }
    return true;
}

bool monitor_stop_vm(Monitor *mon, GError **errp)
{
    return no_dump_in_progress(mon, errp) && vm_stop(mon->vm, RUN_STATE_PAUSED, errp);
}

bool monitor_cont_vm(Monitor *mon, GError **errp)
{
    return no_dump_in_progress(mon, errp) && vm_cont(mon->vm, errp);
}

JsonNode *qmp_stop(QmpSession *s, JsonObject *args, GError **errp)
{
    monitor_stop_vm(s->mon, errp);
    return NULL;
}

JsonNode *qmp_cont(QmpSession *s, JsonObject *args, GError **errp)
{
    monitor_cont_vm(s->mon, errp);
    return NULL;
}

JsonNode *qmp_query_cpus_fast(QmpSession *s, JsonObject *args, GError **errp)
{
    VM *vm = s->mon->vm;
    JsonArray *arr = json_array_new();

    for (guint i = 0; i < vm->ncpus; i++) {
        JsonObject *o = json_object_new(), *props = json_object_new();
        json_object_set_int_member(o, "thread-id", vm->cpus[i]->thread_id);
        json_object_set_int_member(props, "core-id", i);
        json_object_set_int_member(props, "thread-id", 0);
        json_object_set_int_member(props, "socket-id", 0);
        json_object_set_object_member(o, "props", props);
        g_autofree char *path = g_strdup_printf("/machine/unattached/device[%u]", i);
        json_object_set_string_member(o, "qom-path", path);
        json_object_set_int_member(o, "cpu-index", i);
        json_object_set_string_member(o, "target", "x86_64");
        json_array_add_object_element(arr, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, arr);
    return n;
}

static int session_get_fd(void *opaque, const char *name, GError **errp)
{
    return qmp_session_take_fd(opaque, name, errp);
}

JsonNode *qmp_dump_guest_memory(QmpSession *s, JsonObject *args, GError **errp)
{
    DumpRequest req = {
        .paging = qapi_bool(args, "paging", false),
        .protocol = qapi_str(args, "protocol"),
        .detach = qapi_bool(args, "detach", false),
        .has_begin = qapi_has(args, "begin"),
        .has_length = qapi_has(args, "length"),
        .begin = qapi_int(args, "begin", 0),
        .length = qapi_int(args, "length", 0),
        .format = qapi_enum(args, "format", DumpGuestMemoryFormat_str, DUMP_FORMAT_ELF),
        .live = qapi_bool(args, "live", false),
        .has_live_pool = qapi_has(args, "live-pool"),
        .live_pool = qapi_int(args, "live-pool", 0),
        .has_dump_level = qapi_has(args, "dump-level"),
        .dump_level = qapi_int(args, "dump-level", 0),
    };

    dump_guest_memory(s->mon->dump, &req, session_get_fd, s, errp);
    return NULL;
}

static JsonObject *progress_object(const DumpProgress *p)
{
    JsonObject *o = json_object_new();

    json_object_set_int_member(o, "total", (gint64)p->total);
    json_object_set_string_member(o, "status", dump_status_name(p->status));
    json_object_set_int_member(o, "completed", (gint64)p->completed);
    return o;
}

static JsonObject *live_object(const DumpLiveStats *l)
{
    JsonObject *o = json_object_new();

    json_object_set_int_member(o, "saved-pages", (gint64)l->saved);
    json_object_set_int_member(o, "pool-waits", (gint64)l->waits);
    json_object_set_int_member(o, "pool-pages", (gint64)l->pool_pages);
    json_object_set_int_member(o, "pool-peak", (gint64)l->peak);
    return o;
}

JsonNode *qmp_query_dump(QmpSession *s, JsonObject *args, GError **errp)
{
    DumpProgress p = dump_query(s->mon->dump);
    JsonObject *o = progress_object(&p);

    if (p.vmcoreinfo != DUMP_VMCOREINFO_NONE) {     /* none before any dump */
        json_object_set_string_member(o, "vmcoreinfo", dump_vmcoreinfo_source_name(p.vmcoreinfo));
    }
    if (p.vmcoreinfo == DUMP_VMCOREINFO_GUEST_MEMORY) {
        json_object_set_int_member(o, "vmcoreinfo-address", (gint64)p.vmcoreinfo_addr);
    }
    if (p.live) {
        json_object_set_object_member(o, "live", live_object(&p.live_stats));
    }
    return qapi_object_node(o);
}

JsonNode *qmp_query_dump_guest_memory_capability(QmpSession *s, JsonObject *args,
                                                 GError **errp)
{
    JsonObject *o = json_object_new();
    JsonArray *formats = json_array_new();

    for (int f = 0; f < DUMP_FORMAT__MAX; f++) {
        if (dump_format_available(f)) {
            json_array_add_string_element(formats, dump_format_name(f));
        }
    }
    json_object_set_array_member(o, "formats", formats);
    GError *err = NULL;
    json_object_set_boolean_member(o, "live", dump_live_available(s->mon->dump, &err));
    if (err) {
        json_object_set_string_member(o, "live-error", err->message);
        g_error_free(err);
    }
    return qapi_object_node(o);
}

JsonNode *qmp_dump_cancel(QmpSession *s, JsonObject *args, GError **errp)
{
    dump_cancel(s->mon->dump, errp);
    return NULL;
}

#define PMEMWRITE_MAX (1u << 20)

JsonNode *qmp_x_pmemwrite(QmpSession *s, JsonObject *args, GError **errp)
{
    const char *hex = qapi_str(args, "data");
    uint64_t addr = (uint64_t)qapi_int(args, "val", 0);
    size_t len = strlen(hex) / 2;

    if (strlen(hex) % 2 || len > PMEMWRITE_MAX) {
        error_setg(errp, "Parameter 'data' expects an even number of hex digits, at most %u bytes",
                   PMEMWRITE_MAX);
        return NULL;
    }
    g_autofree uint8_t *bytes = g_malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        int hi = g_ascii_xdigit_value(hex[2 * i]), lo = g_ascii_xdigit_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            error_setg(errp, "Parameter 'data' expects hex digits");
            return NULL;
        }
        bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    uint8_t *dst = guest_memory_ptr(s->mon->vm->mem, addr, MAX(len, 1));
    if (!dst) {
        error_setg(errp, "Invalid addr 0x%016" PRIx64 "/size %zu specified", addr, len);
        return NULL;
    }
    memcpy(dst, bytes, len);    /* through the host mapping: a live dump's protection sees it */
    return NULL;
}

/* DUMP_COMPLETED, for synchronous and detached dumps alike. */
void monitor_dump_completed(void *opaque, const DumpProgress *result, const GError *err)
{
    JsonObject *data = json_object_new();

    json_object_set_object_member(data, "result", progress_object(result));
    if (err) {
        json_object_set_string_member(data, "error", err->message);
    }
    monitor_emit_event(opaque, "DUMP_COMPLETED", data);
}
