#include "chardev.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CHARDEV_MAX_PENDING_OUTPUT (64u << 20)
#define CHARDEV_MAX_FDS 16

struct Chardev {
    const ChardevHandlers *handlers;
    void *opaque;
    int listen_fd;
    guint listen_watch;
    char *unix_path;
    GList *conns;
};

struct ChardevConn {
    Chardev *chr;
    int in_fd, out_fd;
    bool is_socket;
    guint in_watch, out_watch;
    GByteArray *out;
    GQueue fds;
    bool closing;
    void *data;
    GDestroyNotify destroy;
};

static void conn_free(ChardevConn *c)
{
    Chardev *chr = c->chr;

    chr->conns = g_list_remove(chr->conns, c);
    if (c->in_watch) {
        g_source_remove(c->in_watch);
    }
    if (c->out_watch) {
        g_source_remove(c->out_watch);
    }
    if (chr->handlers->closed) {
        chr->handlers->closed(chr->opaque, c);
    }
    if (c->destroy) {
        c->destroy(c->data);
    }
    while (!g_queue_is_empty(&c->fds)) {
        close(GPOINTER_TO_INT(g_queue_pop_head(&c->fds)));
    }
    if (c->is_socket) {
        close(c->in_fd);
    }
    g_byte_array_free(c->out, TRUE);
    g_free(c);
}

/* Returns false when the connection is broken. */
static bool conn_flush(ChardevConn *c)
{
    while (c->out->len) {
        ssize_t n = c->is_socket ? send(c->out_fd, c->out->data, c->out->len, MSG_NOSIGNAL)
                                 : write(c->out_fd, c->out->data, c->out->len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        g_byte_array_remove_range(c->out, 0, (guint)n);
    }
    return true;
}

static gboolean conn_writable(gint fd, GIOCondition cond, gpointer opaque)
{
    ChardevConn *c = opaque;

    if (!conn_flush(c)) {
        c->out_watch = 0;
        conn_free(c);
        return G_SOURCE_REMOVE;
    }
    if (c->out->len) {
        return G_SOURCE_CONTINUE;
    }
    c->out_watch = 0;
    if (c->closing) {
        conn_free(c);
    }
    return G_SOURCE_REMOVE;
}

void chardev_conn_write(ChardevConn *c, const char *data, size_t len)
{
    if (c->out->len + len > CHARDEV_MAX_PENDING_OUTPUT) {
        /* The client stopped reading: drop it rather than grow without bound. */
        c->closing = true;
        g_byte_array_set_size(c->out, 0);
        return;
    }
    g_byte_array_append(c->out, (const guint8 *)data, (guint)len);
    if (!c->out_watch && !conn_flush(c)) {
        g_byte_array_set_size(c->out, 0);
        c->closing = true;
    }
    if (c->out->len && !c->out_watch) {
        c->out_watch = g_unix_fd_add(c->out_fd, G_IO_OUT, conn_writable, c);
    }
}

void chardev_conn_write_str(ChardevConn *c, const char *str)
{
    chardev_conn_write(c, str, strlen(str));
}

int chardev_conn_take_fd(ChardevConn *c)
{
    if (g_queue_is_empty(&c->fds)) {
        return -1;
    }
    return GPOINTER_TO_INT(g_queue_pop_head(&c->fds));
}

void chardev_conn_close_later(ChardevConn *c)
{
    c->closing = true;
}

void chardev_conn_set_data(ChardevConn *c, void *data, GDestroyNotify destroy)
{
    c->data = data;
    c->destroy = destroy;
}

void *chardev_conn_get_data(ChardevConn *c)
{
    return c->data;
}

static void take_fds(ChardevConn *c, struct msghdr *msg)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *fds = (int *)CMSG_DATA(cm);
        for (size_t i = 0; i < n; i++) {
            if (g_queue_get_length(&c->fds) >= CHARDEV_MAX_FDS) {
                close(fds[i]);
                continue;
            }
            g_queue_push_tail(&c->fds, GINT_TO_POINTER(fds[i]));
        }
    }
}

static ssize_t conn_read(ChardevConn *c, char *buf, size_t size)
{
    if (!c->is_socket) {
        return read(c->in_fd, buf, size);
    }
    union {
        char buf[CMSG_SPACE(sizeof(int) * CHARDEV_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { buf, size };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
    ssize_t n = recvmsg(c->in_fd, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) {
        take_fds(c, &msg);
    }
    return n;
}

static gboolean conn_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    ChardevConn *c = opaque;
    char buf[65536];

    ssize_t n = conn_read(c, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        c->in_watch = 0;
        conn_free(c);
        return G_SOURCE_REMOVE;
    }
    c->chr->handlers->received(c->chr->opaque, c, buf, (size_t)n);
    if (c->closing && !c->out->len) {
        c->in_watch = 0;
        conn_free(c);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static ChardevConn *conn_new(Chardev *chr, int in_fd, int out_fd, bool is_socket)
{
    ChardevConn *c = g_new0(ChardevConn, 1);

    c->chr = chr;
    c->in_fd = in_fd;
    c->out_fd = out_fd;
    c->is_socket = is_socket;
    c->out = g_byte_array_new();
    g_queue_init(&c->fds);
    g_unix_set_fd_nonblocking(out_fd, TRUE, NULL);
    c->in_watch = g_unix_fd_add(in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, conn_readable, c);
    chr->conns = g_list_append(chr->conns, c);
    if (chr->handlers->connected) {
        chr->handlers->connected(chr->opaque, c);
    }
    return c;
}

static gboolean listener_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    int s = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (s < 0) {
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
            g_warning("monitor: accept failed: %s", g_strerror(errno));
        }
        return G_SOURCE_CONTINUE;
    }
    conn_new(chr, s, s, true);
    return G_SOURCE_CONTINUE;
}

typedef struct SocketOptions {
    bool server;
    bool wait;
} SocketOptions;

/* Parse ",server=on,wait=off" (also QEMU's old ",server,nowait"). */
static bool parse_socket_options(const char *opts, SocketOptions *o, GError **errp)
{
    g_auto(GStrv) parts = g_strsplit(opts, ",", -1);

    o->server = false;
    o->wait = true;
    for (int i = 0; parts[i]; i++) {
        const char *p = parts[i];
        if (!*p) {
            continue;
        } else if (g_str_equal(p, "server") || g_str_equal(p, "server=on")) {
            o->server = true;
        } else if (g_str_equal(p, "server=off")) {
            o->server = false;
        } else if (g_str_equal(p, "nowait") || g_str_equal(p, "wait=off")) {
            o->wait = false;
        } else if (g_str_equal(p, "wait=on")) {
            o->wait = true;
        } else {
            error_setg(errp, "Invalid parameter '%s'", p);
            return false;
        }
    }
    if (!o->server) {
        error_setg(errp, "only server sockets are supported (add server=on,wait=off)");
        return false;
    }
    if (o->wait) {
        error_setg(errp, "wait=on is not supported (add wait=off)");
        return false;
    }
    return true;
}

static int listen_unix(Chardev *chr, const char *path, GError **errp)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    if (!*path || strlen(path) >= sizeof(addr.sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create Unix socket");
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        unlink(path);
    }
    /* owner-only from the start: bind() creates the file with the socket inode's mode */
    if (fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
        close(fd);
        return -1;
    }
    if (chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
        error_setg_errno(errp, errno, "Failed to listen on socket %s", path);
        close(fd);
        unlink(path);
        return -1;
    }
    chr->unix_path = g_strdup(path);
    return fd;
}

static int listen_tcp(const char *hostport, GError **errp)
{
    const char *colon = strrchr(hostport, ':');

    if (!colon || colon == hostport || !colon[1]) {
        error_setg(errp, "host and/or port not specified in '%s'", hostport);
        return -1;
    }
    g_autofree char *host = g_strndup(hostport, colon - hostport);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE }, *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc) {
        error_setg(errp, "address resolution failed for %s: %s", hostport, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 16) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s", hostport);
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

Chardev *chardev_new(const char *spec, const ChardevHandlers *handlers, void *opaque,
                     GError **errp)
{
    Chardev *chr = g_new0(Chardev, 1);
    SocketOptions o;

    chr->handlers = handlers;
    chr->opaque = opaque;
    chr->listen_fd = -1;
    if (g_str_equal(spec, "stdio")) {
        conn_new(chr, STDIN_FILENO, STDOUT_FILENO, false);
        return chr;
    }
    const char *comma = strchr(spec, ',');
    g_autofree char *addr = comma ? g_strndup(spec, comma - spec) : g_strdup(spec);
    if (!parse_socket_options(comma ? comma + 1 : "", &o, errp)) {
        goto fail;
    }
    if (g_str_has_prefix(addr, "unix:")) {
        chr->listen_fd = listen_unix(chr, addr + 5, errp);
    } else if (g_str_has_prefix(addr, "tcp:")) {
        chr->listen_fd = listen_tcp(addr + 4, errp);
    } else {
        error_setg(errp, "'%s' is not a valid char driver", addr);
        goto fail;
    }
    if (chr->listen_fd < 0) {
        goto fail;
    }
    chr->listen_watch = g_unix_fd_add(chr->listen_fd, G_IO_IN, listener_ready, chr);
    return chr;

fail:
    chardev_free(chr);
    return NULL;
}

void chardev_flush(Chardev *chr)
{
    for (GList *l = chr->conns; l; l = l->next) {
        ChardevConn *c = l->data;
        for (int tries = 0; c->out->len && tries < 100; tries++) {
            struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };
            if (poll(&p, 1, 10) < 0 || !conn_flush(c)) {
                break;
            }
        }
    }
}

void chardev_free(Chardev *chr)
{
    if (!chr) {
        return;
    }
    while (chr->conns) {
        conn_free(chr->conns->data);
    }
    if (chr->listen_watch) {
        g_source_remove(chr->listen_watch);
    }
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
    }
    if (chr->unix_path) {
        unlink(chr->unix_path);
        g_free(chr->unix_path);
    }
    g_free(chr);
}
