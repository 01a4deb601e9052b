/* Argument checking for QMP commands, with QEMU's error texts. */
#include "qapi.h"
#include "qapi-commands.h"
#include "util.h"

const QapiCommand *qapi_find_command(const char *name)
{
    for (guint i = 0; i < qapi_ncommands; i++) {
        if (g_str_equal(qapi_commands[i].name, name)) {
            return &qapi_commands[i];
        }
    }
    return NULL;
}

static const char *type_name(QapiArgType t)
{
    switch (t) {
    case QAPI_INT:
        return "integer";
    case QAPI_BOOL:
        return "boolean";
    case QAPI_STR:
    case QAPI_ENUM:
    default:
        return "string";
    }
}

static bool value_has_type(JsonNode *node, QapiArgType t)
{
    if (!JSON_NODE_HOLDS_VALUE(node)) {
        return false;
    }
    GType vt = json_node_get_value_type(node);
    switch (t) {
    case QAPI_INT:
        return vt == G_TYPE_INT64;
    case QAPI_BOOL:
        return vt == G_TYPE_BOOLEAN;
    case QAPI_STR:
    case QAPI_ENUM:
        return vt == G_TYPE_STRING;
    }
    return false;
}

static bool check_enum(const QapiArg *a, const char *value, GError **errp)
{
    for (int i = 0; a->values[i]; i++) {
        if (g_str_equal(a->values[i], value)) {
            return true;
        }
    }
    error_setg(errp, "Parameter '%s' does not accept value '%s'", a->name, value);
    return false;
}

static bool check_value(const QapiArg *a, const char *path, JsonNode *node, GError **errp)
{
    if (!value_has_type(node, a->type)) {
        error_setg(errp, "Invalid parameter type for '%s', expected: %s", path,
                   type_name(a->type));
        return false;
    }
    return a->type != QAPI_ENUM || check_enum(a, json_node_get_string(node), errp);
}

static bool check_arg(const QapiArg *a, JsonNode *node, GError **errp)
{
    if (!a->list) {
        return check_value(a, a->name, node, errp);
    }
    if (!JSON_NODE_HOLDS_ARRAY(node)) {
        error_setg(errp, "Invalid parameter type for '%s', expected: array", a->name);
        return false;
    }
    JsonArray *arr = json_node_get_array(node);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        g_autofree char *path = g_strdup_printf("%s[%u]", a->name, i);
        if (!check_value(a, path, json_array_get_element(arr, i), errp)) {
            return false;
        }
    }
    return true;
}

bool qapi_check_args(const QapiCommand *cmd, JsonObject *args, GError **errp)
{
    for (guint i = 0; i < cmd->nargs; i++) {
        const QapiArg *a = &cmd->args[i];
        JsonNode *node = args ? json_object_get_member(args, a->name) : NULL;
        if (!node) {
            if (!a->optional) {
                error_setg(errp, "Parameter '%s' is missing", a->name);
                return false;
            }
            continue;
        }
        if (!check_arg(a, node, errp)) {
            return false;
        }
    }
    if (!args) {
        return true;
    }
    g_autoptr(GList) members = json_object_get_members(args);
    for (GList *l = members; l; l = l->next) {
        bool known = false;
        for (guint i = 0; i < cmd->nargs; i++) {
            known |= g_str_equal(cmd->args[i].name, l->data);
        }
        if (!known) {
            error_setg(errp, "Parameter '%s' is unexpected", (const char *)l->data);
            return false;
        }
    }
    return true;
}

bool qapi_has(JsonObject *args, const char *name)
{
    return args && json_object_has_member(args, name);
}

const char *qapi_str(JsonObject *args, const char *name)
{
    return qapi_has(args, name) ? json_object_get_string_member(args, name) : NULL;
}

int64_t qapi_int(JsonObject *args, const char *name, int64_t dflt)
{
    return qapi_has(args, name) ? json_object_get_int_member(args, name) : dflt;
}

bool qapi_bool(JsonObject *args, const char *name, bool dflt)
{
    return qapi_has(args, name) ? json_object_get_boolean_member(args, name) : dflt;
}

int qapi_enum(JsonObject *args, const char *name, const char *const *values, int dflt)
{
    const char *v = qapi_str(args, name);

    for (int i = 0; v && values[i]; i++) {
        if (g_str_equal(values[i], v)) {
            return i;
        }
    }
    return dflt;
}

JsonNode *qapi_empty_object(void)
{
    return qapi_object_node(json_object_new());
}

JsonNode *qapi_object_node(JsonObject *obj)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, obj);
    return n;
}
