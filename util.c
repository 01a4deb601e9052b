#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

G_DEFINE_QUARK(minivm-error-quark, minivm_error)

const char *error_class_name(ErrorClass cls)
{
    switch (cls) {
    case ERROR_CLASS_COMMAND_NOT_FOUND:
        return "CommandNotFound";
    case ERROR_CLASS_DEVICE_NOT_ACTIVE:
        return "DeviceNotActive";
    case ERROR_CLASS_DEVICE_NOT_FOUND:
        return "DeviceNotFound";
    case ERROR_CLASS_KVM_MISSING_CAP:
        return "KVMMissingCap";
    case ERROR_CLASS_GENERIC_ERROR:
    default:
        return "GenericError";
    }
}

void error_setg_errno(GError **errp, int err, const char *fmt, ...)
{
    va_list ap;

    if (!errp) {
        return;
    }
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, MINIVM_ERROR, ERROR_CLASS_GENERIC_ERROR, "%s: %s", msg, g_strerror(err));
}

void error_prepend(GError **errp, const char *fmt, ...)
{
    va_list ap;

    if (!errp || !*errp) {
        return;
    }
    va_start(ap, fmt);
    g_autofree char *prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_prefix_error(errp, "%s", prefix);
}

bool write_full(int fd, const void *buf, size_t len, GError **errp)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            error_setg_errno(errp, errno, "dump: failed to save memory");
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool pread_full(int fd, void *buf, size_t len, off_t off, const char *what, GError **errp)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            error_setg_errno(errp, errno, "cannot read %s", what);
            return false;
        }
        if (n == 0) {
            error_setg(errp, "%s: unexpected end of file at offset %lld", what, (long long)off);
            return false;
        }
        p += n;
        off += n;
        len -= (size_t)n;
    }
    return true;
}

GSource *main_context_call(GMainContext *ctx, GSourceFunc fn, gpointer data)
{
    if (g_main_context_is_owner(ctx)) {
        fn(data);
        return NULL;
    }
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, fn, data, NULL);
    g_source_attach(src, ctx);
    g_source_unref(src);
    return src;
}

bool parse_size(const char *str, uint64_t default_unit, uint64_t *out)
{
    char *end;
    uint64_t unit;

    errno = 0;
    double v = g_ascii_strtod(str, &end);
    if (errno || end == str || !isfinite(v) || v < 0) {     /* "nan", "inf" parse too */
        return false;
    }
    switch (g_ascii_toupper(*end)) {
    case '\0':
        unit = default_unit ? default_unit : 1;
        break;
    case 'B':
        unit = 1;
        break;
    case 'K':
        unit = G_GUINT64_CONSTANT(1) << 10;
        break;
    case 'M':
        unit = G_GUINT64_CONSTANT(1) << 20;
        break;
    case 'G':
        unit = G_GUINT64_CONSTANT(1) << 30;
        break;
    case 'T':
        unit = G_GUINT64_CONSTANT(1) << 40;
        break;
    default:
        return false;
    }
    if (*end && end[1]) {
        return false;
    }
    if (v * (double)unit >= 18446744073709551616.0) {
        return false;
    }
    *out = (uint64_t)(v * (double)unit);
    return true;
}

bool parse_int64(const char *str, int64_t *out)
{
    char *end;

    errno = 0;
    long long v = strtoll(str, &end, 0);
    if (errno || end == str || *end) {
        return false;
    }
    *out = v;
    return true;
}

bool parse_uint64(const char *str, uint64_t *out)
{
    char *end;

    if (*str == '-') {
        return false;
    }
    errno = 0;
    unsigned long long v = strtoull(str, &end, 0);
    if (errno || end == str || *end) {
        return false;
    }
    *out = v;
    return true;
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return v;
}

bool buffer_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t i = 0;

    for (; i + 64 <= len; i += 64) {
        if (load64(p + i) | load64(p + i + 8) | load64(p + i + 16) | load64(p + i + 24) |
            load64(p + i + 32) | load64(p + i + 40) | load64(p + i + 48) | load64(p + i + 56)) {
            return false;
        }
    }
    for (; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}
