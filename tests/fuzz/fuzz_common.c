/* Shared fuzzing harness: private directory, file/socket sandbox, shared VM. */
#include "fuzz_common.h"
#include "dump.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- the private directory ---- */

static char *tmpdir;

static void remove_tmpdir(void)
{
    GDir *dir = tmpdir ? g_dir_open(tmpdir, 0, NULL) : NULL;
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *p = g_build_filename(tmpdir, name, NULL);
        unlink(p);
    }
    if (dir) {
        g_dir_close(dir);
    }
    if (tmpdir) {
        rmdir(tmpdir);
    }
}

const char *fuzz_tmpdir(void)
{
    if (!tmpdir) {
        GError *err = NULL;
        tmpdir = g_dir_make_tmp("minivm-fuzz-XXXXXX", &err);
        if (!tmpdir) {
            fprintf(stderr, "fuzz: cannot create a private directory: %s\n", err->message);
            abort();
        }
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

char *fuzz_tmp_path(const char *name)
{
    return g_build_filename(fuzz_tmpdir(), name, NULL);
}

/* ---- the sandbox ----
 * run.sh renames minivm's references (objcopy --redefine-syms=sandbox.syms):
 * open64 -> fuzz_sandbox_open64 and so on. The harness and libFuzzer itself
 * call the real functions. */

static bool inside_tmpdir(const char *path)
{
    const char *dir = fuzz_tmpdir();
    size_t n = strlen(dir);

    return path && strncmp(path, dir, n) == 0 && path[n] == '/' && !strstr(path + n, "/..");
}

static bool wants_write(int flags)
{
    return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)) != 0;
}

/* Where a write-open of `path` goes: the path itself inside the private
 * directory (or an fd we already own, /proc/self/fd/N), else one fixed file. */
static const char *write_target(const char *path)
{
    static char *redirect;

    if (inside_tmpdir(path) || (path && g_str_has_prefix(path, "/proc/self/fd/"))) {
        return path;
    }
    if (!redirect) {
        redirect = fuzz_tmp_path("redirected-output");
    }
    return redirect;
}

static int refuse(void)
{
    errno = EACCES;
    return -1;
}

static G_NORETURN void forbidden(const char *what)
{
    fprintf(stderr, "fuzz: minivm called %s, which the fuzz sandbox forbids\n", what);
    abort();
}

static mode_t open_mode(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int fuzz_sandbox_open(const char *path, int flags, ...);
int fuzz_sandbox_open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return open(wants_write(flags) ? write_target(path) : path, flags, mode);
}

int fuzz_sandbox_open64(const char *path, int flags, ...);
int fuzz_sandbox_open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    return open(wants_write(flags) ? write_target(path) : path, flags, mode);
}

int fuzz_sandbox_openat(int dirfd, const char *path, int flags, ...);
int fuzz_sandbox_openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    if (wants_write(flags)) {
        return open(write_target(path && path[0] == '/' ? path : NULL), flags, mode);
    }
    return openat(dirfd, path, flags, mode);
}

int fuzz_sandbox_openat64(int dirfd, const char *path, int flags, ...);
int fuzz_sandbox_openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = open_mode(flags, ap);
    va_end(ap);
    if (wants_write(flags)) {
        return open(write_target(path && path[0] == '/' ? path : NULL), flags, mode);
    }
    return openat(dirfd, path, flags, mode);
}

int fuzz_sandbox_creat(const char *path, mode_t mode);
int fuzz_sandbox_creat(const char *path, mode_t mode)
{
    return creat(write_target(path), mode);
}

int fuzz_sandbox_creat64(const char *path, mode_t mode);
int fuzz_sandbox_creat64(const char *path, mode_t mode)
{
    return creat(write_target(path), mode);
}

FILE *fuzz_sandbox_fopen(const char *path, const char *mode);
FILE *fuzz_sandbox_fopen(const char *path, const char *mode)
{
    bool write = strpbrk(mode, "wa+") != NULL;
    return fopen(write ? write_target(path) : path, mode);
}

FILE *fuzz_sandbox_fopen64(const char *path, const char *mode);
FILE *fuzz_sandbox_fopen64(const char *path, const char *mode)
{
    return fuzz_sandbox_fopen(path, mode);
}

gint fuzz_sandbox_g_mkstemp_full(gchar *tmpl, gint flags, gint mode);
gint fuzz_sandbox_g_mkstemp_full(gchar *tmpl, gint flags, gint mode)
{
    return inside_tmpdir(tmpl) ? g_mkstemp_full(tmpl, flags, mode) : refuse();
}

int fuzz_sandbox_unlink(const char *path);
int fuzz_sandbox_unlink(const char *path)
{
    return inside_tmpdir(path) ? unlink(path) : refuse();
}

int fuzz_sandbox_unlinkat(int dirfd, const char *path, int flags);
int fuzz_sandbox_unlinkat(int dirfd, const char *path, int flags)
{
    return inside_tmpdir(path) ? unlinkat(dirfd, path, flags) : refuse();
}

int fuzz_sandbox_remove(const char *path);
int fuzz_sandbox_remove(const char *path)
{
    return inside_tmpdir(path) ? remove(path) : refuse();
}

int fuzz_sandbox_rmdir(const char *path);
int fuzz_sandbox_rmdir(const char *path)
{
    return inside_tmpdir(path) ? rmdir(path) : refuse();
}

int fuzz_sandbox_mkdir(const char *path, mode_t mode);
int fuzz_sandbox_mkdir(const char *path, mode_t mode)
{
    return inside_tmpdir(path) ? mkdir(path, mode) : refuse();
}

int fuzz_sandbox_rename(const char *from, const char *to);
int fuzz_sandbox_rename(const char *from, const char *to)
{
    return inside_tmpdir(from) && inside_tmpdir(to) ? rename(from, to) : refuse();
}

int fuzz_sandbox_chmod(const char *path, mode_t mode);
int fuzz_sandbox_chmod(const char *path, mode_t mode)
{
    return inside_tmpdir(path) ? chmod(path, mode) : refuse();
}

int fuzz_sandbox_truncate(const char *path, off_t len);
int fuzz_sandbox_truncate(const char *path, off_t len)
{
    return inside_tmpdir(path) ? truncate(path, len) : refuse();
}

int fuzz_sandbox_truncate64(const char *path, off_t len);
int fuzz_sandbox_truncate64(const char *path, off_t len)
{
    return fuzz_sandbox_truncate(path, len);
}

int fuzz_sandbox_socket(int domain, int type, int protocol);
int fuzz_sandbox_socket(int domain, int type, int protocol)
{
    return domain == AF_UNIX ? socket(domain, type, protocol) : refuse();
}

static bool unix_addr_inside(const struct sockaddr *addr, socklen_t len)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
    char path[sizeof(un->sun_path) + 1] = { 0 };

    if (!addr || addr->sa_family != AF_UNIX || len <= offsetof(struct sockaddr_un, sun_path)) {
        return false;
    }
    memcpy(path, un->sun_path, MIN(sizeof(un->sun_path),
                                   len - offsetof(struct sockaddr_un, sun_path)));
    return inside_tmpdir(path);
}

int fuzz_sandbox_bind(int fd, const struct sockaddr *addr, socklen_t len);
int fuzz_sandbox_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    return unix_addr_inside(addr, len) ? bind(fd, addr, len) : refuse();
}

int fuzz_sandbox_connect(int fd, const struct sockaddr *addr, socklen_t len);
int fuzz_sandbox_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    return unix_addr_inside(addr, len) ? connect(fd, addr, len) : refuse();
}

int fuzz_sandbox_getaddrinfo(const char *node, const char *service, const void *hints,
                             void **res);
int fuzz_sandbox_getaddrinfo(const char *node, const char *service, const void *hints,
                             void **res)
{
    return -2; /* EAI_NONAME: no name resolution, no network */
}

int fuzz_sandbox_kill(pid_t pid, int sig);
int fuzz_sandbox_kill(pid_t pid, int sig)
{
    forbidden("kill");
}

pid_t fuzz_sandbox_fork(void);
pid_t fuzz_sandbox_fork(void)
{
    forbidden("fork");
}

int fuzz_sandbox_execve(const char *path, char *const argv[], char *const envp[]);
int fuzz_sandbox_execve(const char *path, char *const argv[], char *const envp[])
{
    forbidden("execve");
}

int fuzz_sandbox_execv(const char *path, char *const argv[]);
int fuzz_sandbox_execv(const char *path, char *const argv[])
{
    forbidden("execv");
}

int fuzz_sandbox_execvp(const char *path, char *const argv[]);
int fuzz_sandbox_execvp(const char *path, char *const argv[])
{
    forbidden("execvp");
}

int fuzz_sandbox_system(const char *cmd);
int fuzz_sandbox_system(const char *cmd)
{
    forbidden("system");
}

FILE *fuzz_sandbox_popen(const char *cmd, const char *mode);
FILE *fuzz_sandbox_popen(const char *cmd, const char *mode)
{
    forbidden("popen");
}

void fuzz_sandbox_exit(int status);
void fuzz_sandbox_exit(int status)
{
    forbidden("exit");
}

void fuzz_sandbox__exit(int status);
void fuzz_sandbox__exit(int status)
{
    forbidden("_exit");
}

/* ---- the shared VM and monitor ---- */

static VM *vm;
static Monitor *mon;
static int qmp_client = -1;        /* our end of the QMP connection */
static QmpSession *main_session;   /* the session qmp_connected made for it */

/* FUZZ_VERBOSE=1: show what the monitor answered (debugging seeds). */
bool fuzz_verbose(void)
{
    static int verbose = -1;

    if (verbose < 0) {
        verbose = g_getenv("FUZZ_VERBOSE") != NULL;
    }
    return verbose;
}

/* Read what the monitor sent; false once the monitor has closed the connection. */
static bool drain(int fd)
{
    char buf[65536];
    ssize_t n;

    while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            return errno == EAGAIN || errno == EINTR;
        }
        if (fuzz_verbose()) {
            fwrite(buf, 1, (size_t)n, stderr);
        }
    }
    return fd >= 0 ? false : true;
}

static bool listen_on(const char *name, bool (*add)(Monitor *, const char *, GError **))
{
    g_autofree char *path = fuzz_tmp_path(name);
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", path);
    GError *err = NULL;

    if (!add(mon, spec, &err)) {
        fprintf(stderr, "fuzz: no monitor socket %s: %s\n", path, err->message);
        g_error_free(err);
        return false;
    }
    return true;
}

/* Connect to a monitor socket in the private directory; the monitor accepts
 * when its main context runs. */
static int connect_to(const char *name)
{
    g_autofree char *path = fuzz_tmp_path(name);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void drop_qmp_connection(void)
{
    if (qmp_client >= 0) {
        close(qmp_client);
        qmp_client = -1;
    }
    main_session = NULL;
}

static void connect_qmp(void)
{
    static bool listening;

    if (!listening && !(listening = listen_on("qmp.sock", monitor_add_qmp))) {
        return;
    }
    qmp_client = connect_to("qmp.sock");
    guint before = g_list_length(mon->qmp_sessions);
    for (int i = 0; qmp_client >= 0 && i < 1000 &&
                    g_list_length(mon->qmp_sessions) == before; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
    if (qmp_client < 0 || g_list_length(mon->qmp_sessions) == before) {
        fprintf(stderr, "fuzz: cannot connect to the QMP socket; replies are dropped\n");
        drop_qmp_connection();
        return;
    }
    main_session = g_list_last(mon->qmp_sessions)->data;
    drain(qmp_client);
}

/* A VMCOREINFO note like a Linux guest's, so that dumps carry one (the kdump
 * writer reads OSRELEASE, phys_base and init_uts_ns from it). */
static GBytes *guest_vmcoreinfo(void)
{
    static const char text[] = "OSRELEASE=6.1.0-fuzz\nPAGESIZE=4096\nNUMBER(phys_base)=0\n"
                               "SYMBOL(init_uts_ns)=200000\nKERNELOFFSET=0\n";
    static const char name[12] = "VMCOREINFO";
    uint32_t hdr[3] = { GUINT32_TO_LE(11), GUINT32_TO_LE(sizeof(text) - 1), 0 };
    GByteArray *note = g_byte_array_new();
    static const uint8_t pad[4];

    g_byte_array_append(note, (const guint8 *)hdr, sizeof(hdr));
    g_byte_array_append(note, (const guint8 *)name, sizeof(name));
    g_byte_array_append(note, (const guint8 *)text, sizeof(text) - 1);
    g_byte_array_append(note, pad, (4 - (sizeof(text) - 1) % 4) % 4);
    return g_byte_array_free_to_bytes(note);
}

Monitor *fuzz_monitor(void)
{
    if (mon) {
        return mon;
    }
    VMConfig cfg = { .accel = "none", .ram_size = 8 << 20, .smp = 1 };
    GError *err = NULL;

    signal(SIGPIPE, SIG_IGN);
    g_setenv("MINIVM_DUMP_THREADS", "2", FALSE);
    fuzz_tmpdir();
    vm = vm_new(&cfg, &err);
    if (!vm || !(mon = monitor_new(vm)) || !vm_start(vm, true, &err)) {
        fprintf(stderr, "fuzz: cannot create the VM: %s\n", err ? err->message : "?");
        abort();
    }
    if (!vm->guest_note) {
        vm->guest_note = guest_vmcoreinfo();
    }
    /* Hold the main context as monitor_run() would: a detached dump's completion
     * is then queued for us instead of running on the dump thread. */
    g_main_context_acquire(g_main_context_default());
    connect_qmp();
    return mon;
}

ChardevConn *fuzz_qmp_conn(void)
{
    fuzz_monitor();
    if (main_session && !g_list_find(mon->qmp_sessions, main_session)) {
        drop_qmp_connection();      /* the monitor closed it (output limit) */
    }
    if (!main_session) {
        connect_qmp();
    }
    return main_session ? main_session->conn : NULL;
}

void fuzz_hmp_feed(const uint8_t *data, size_t len)
{
    static bool listening;
    size_t done = 0;

    fuzz_monitor();
    if (!listening && !(listening = listen_on("hmp.sock", monitor_add_hmp))) {
        abort();
    }
    int fd = connect_to("hmp.sock");
    if (fd < 0) {
        perror("fuzz: cannot connect to the HMP socket");
        abort();
    }
    /* send everything, then EOF; the monitor frees the connection when it sees it */
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            break;              /* the monitor closed it (output limit) */
        }
        g_main_context_iteration(NULL, FALSE);
        drain(fd);
    }
    shutdown(fd, SHUT_WR);
    while (drain(fd)) {
        g_main_context_iteration(NULL, TRUE);
    }
    close(fd);
    fuzz_monitor_settle();
}

void fuzz_monitor_reset(void)
{
    fuzz_monitor();
    if (vm_is_running(vm)) {
        vm_stop(vm, RUN_STATE_PAUSED, NULL);
    }
    vm->state = RUN_STATE_PRELAUNCH;
    mon->quit_requested = false;
    fuzz_monitor_settle();
}

void fuzz_monitor_settle(void)
{
    fuzz_monitor();
    for (;;) {
        bool busy = dump_in_progress(mon->dump);
        drain(qmp_client);
        while (g_main_context_iteration(NULL, FALSE)) {
            drain(qmp_client);
        }
        if (!busy) {
            break;
        }
        g_usleep(200);
    }
    mon->quit_requested = false;
}
