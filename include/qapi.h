/* QMP command table entries (generated from the qapi/ schema) and argument access. */
#ifndef MINIVM_QAPI_H
#define MINIVM_QAPI_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct QmpSession QmpSession;

typedef enum { QAPI_STR, QAPI_INT, QAPI_BOOL, QAPI_ENUM } QapiArgType;

typedef struct QapiArg {
    const char *name;
    QapiArgType type;
    bool optional;
    bool list;
    const char *const *values;   /* QAPI_ENUM: NULL-terminated value names */
} QapiArg;

/* Returns the "return" value (an empty object when NULL) or NULL with *errp set. */
typedef JsonNode *(*QmpHandler)(QmpSession *s, JsonObject *args, GError **errp);

typedef struct QapiCommand {
    const char *name;
    QmpHandler handler;
    const QapiArg *args;
    guint nargs;
} QapiCommand;

const QapiCommand *qapi_find_command(const char *name);
/* Check presence, absence and types of arguments with QEMU's error texts. */
bool qapi_check_args(const QapiCommand *cmd, JsonObject *args, GError **errp);

bool qapi_has(JsonObject *args, const char *name);
const char *qapi_str(JsonObject *args, const char *name);
int64_t qapi_int(JsonObject *args, const char *name, int64_t dflt);
bool qapi_bool(JsonObject *args, const char *name, bool dflt);
/* Index of the enum value (checked already), or dflt when absent. */
int qapi_enum(JsonObject *args, const char *name, const char *const *values, int dflt);

JsonNode *qapi_empty_object(void);
JsonNode *qapi_object_node(JsonObject *obj);

#endif
