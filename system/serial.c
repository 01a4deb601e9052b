#include "serial.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define UART_THR 0
#define UART_LSR 5
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

struct Serial {
    int fd;        /* -1: output discarded */
    bool owns_fd;
    GMutex lock;
    uint8_t scratch;
    uint8_t regs[SERIAL_PORTS];
};

Serial *serial_new(const char *spec, GError **errp)
{
    Serial *s = g_new0(Serial, 1);

    g_mutex_init(&s->lock);
    s->fd = -1;
    if (!spec || g_str_equal(spec, "none")) {
        return s;
    }
    if (g_str_equal(spec, "stdio")) {
        s->fd = STDOUT_FILENO;
    } else if (g_str_has_prefix(spec, "file:")) {
        s->fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (s->fd < 0) {
            error_setg_errno(errp, errno, "Could not open '%s'", spec + 5);
            serial_free(s);
            return NULL;
        }
        s->owns_fd = true;
    } else {
        error_setg(errp, "'%s' is not a valid char driver", spec);
        serial_free(s);
        return NULL;
    }
    return s;
}

void serial_free(Serial *s)
{
    if (!s) {
        return;
    }
    if (s->owns_fd) {
        close(s->fd);
    }
    g_mutex_clear(&s->lock);
    g_free(s);
}

void serial_io_write(Serial *s, uint16_t offset, uint8_t value)
{
    if (offset != UART_THR || (s->regs[3] & 0x80)) {   /* DLAB set: divisor latch */
        s->regs[offset % SERIAL_PORTS] = value;
        return;
    }
    if (s->fd < 0) {
        return;
    }
    g_mutex_lock(&s->lock);
    /* The guest cannot be told about a failed write; output is best effort. */
    ssize_t n;
    do {
        n = write(s->fd, &value, 1);
    } while (n < 0 && errno == EINTR);
    g_mutex_unlock(&s->lock);
}

uint8_t serial_io_read(Serial *s, uint16_t offset)
{
    switch (offset) {
    case UART_LSR:
        return UART_LSR_THRE | UART_LSR_TEMT;
    case 0:
        return 0;
    default:
        return s->regs[offset % SERIAL_PORTS];
    }
}
