/* Monitor transports: unix and tcp listening sockets, stdio. Byte streams with
 * buffered non-blocking output and SCM_RIGHTS file descriptors (unix only). */
#ifndef MINIVM_CHARDEV_H
#define MINIVM_CHARDEV_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct Chardev Chardev;
typedef struct ChardevConn ChardevConn;

typedef struct ChardevHandlers {
    void (*connected)(void *opaque, ChardevConn *conn);
    void (*received)(void *opaque, ChardevConn *conn, const char *data, size_t len);
    void (*closed)(void *opaque, ChardevConn *conn);
} ChardevHandlers;

/* spec: unix:PATH,server=on,wait=off | tcp:HOST:PORT,server=on,wait=off | stdio */
Chardev *chardev_new(const char *spec, const ChardevHandlers *handlers, void *opaque,
                     GError **errp);
void chardev_free(Chardev *chr);

void chardev_conn_write(ChardevConn *conn, const char *data, size_t len);
void chardev_conn_write_str(ChardevConn *conn, const char *str);
/* Take the oldest file descriptor received over the connection, or -1. */
int chardev_conn_take_fd(ChardevConn *conn);
/* Close the connection once pending output is written. */
void chardev_conn_close_later(ChardevConn *conn);
void chardev_conn_set_data(ChardevConn *conn, void *data, GDestroyNotify destroy);
void *chardev_conn_get_data(ChardevConn *conn);
/* Flush pending output of every connection, blocking briefly (used at exit). */
void chardev_flush(Chardev *chr);

#endif
