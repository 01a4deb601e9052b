/* Small shared helpers: QMP-classed errors, full reads and writes, sizes. */
#ifndef MINIVM_UTIL_H
#define MINIVM_UTIL_H

#include <glib.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define MINIVM_ERROR (minivm_error_quark())
GQuark minivm_error_quark(void);

/* GError codes in MINIVM_ERROR are QMP error classes. */
typedef enum {
    ERROR_CLASS_GENERIC_ERROR,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_ACTIVE,
    ERROR_CLASS_DEVICE_NOT_FOUND,
    ERROR_CLASS_KVM_MISSING_CAP,
} ErrorClass;

const char *error_class_name(ErrorClass cls);

#define error_setg(errp, ...) \
    g_set_error((errp), MINIVM_ERROR, ERROR_CLASS_GENERIC_ERROR, __VA_ARGS__)
#define error_set(errp, cls, ...) g_set_error((errp), MINIVM_ERROR, (cls), __VA_ARGS__)

/* Like error_setg, with ": strerror(err)" appended, as QEMU's error_setg_errno. */
void error_setg_errno(GError **errp, int err, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Prefix an existing error message (no-op when errp is NULL or unset). */
void error_prepend(GError **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* write() all of buf, retrying on EINTR and short writes. */
bool write_full(int fd, const void *buf, size_t len, GError **errp);
/* Read exactly len bytes at off; a short file is an error naming `what`. */
bool pread_full(int fd, void *buf, size_t len, off_t off, const char *what, GError **errp);

/* Run fn(data) in the thread that runs `ctx`: at once when the caller owns the
 * context, otherwise from an idle source dispatched by its loop (never in the
 * calling thread, unlike g_main_context_invoke on an unowned context).
 * Returns the source when one was attached (the caller may destroy it), else NULL. */
GSource *main_context_call(GMainContext *ctx, GSourceFunc fn, gpointer data);

/* Parse a size with an optional K/M/G/T suffix (binary); no suffix means bytes,
 * or `default_unit` bytes when nonzero (-m 512 means 512 MiB). */
bool parse_size(const char *str, uint64_t default_unit, uint64_t *out);

/* True when all len bytes at p are zero (64 bytes at a time, any alignment). */
bool buffer_is_zero(const void *p, size_t len);

/* Parse an integer in C syntax (0x.., 0.., decimal), possibly signed. */
bool parse_int64(const char *str, int64_t *out);
bool parse_uint64(const char *str, uint64_t *out);

#endif
