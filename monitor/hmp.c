/* HMP: the human monitor, over a chardev and through human-monitor-command. */
#include "config.h"
#include "monitor.h"
#include "dump.h"
#include "util.h"
#include "demo_abi.h"
#include "hmp-commands.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define HMP_PROMPT "(qemu) "
#define HMP_MAX_LINE 65536
/* x/xp show at most this much guest memory per command (about 7 MB of text): the
 * answer is built in memory (and again as the human-monitor-command reply), so an
 * unbounded count would cost many times the guest's RAM. memsave has no limit. */
#define HMP_MAX_EXAMINE (1u << 20)

/* The tables' entries come from qapi/hmp.json (hmp-commands.h), which docs/qmp.md
 * is made from too: a command's handler is hmp_<name>, an info subcommand's
 * info_<name>. */
typedef struct HmpCommand {
    const char *name;       /* "stop|s": the name, then the aliases */
    const char *params;
    const char *help;
    void (*fn)(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out);
} HmpCommand;

static void hmp_error(GString *out, const GError *err)
{
    g_string_append_printf(out, "Error: %s\n", err->message);
}

static void report(GString *out, GError *err)
{
    if (err) {
        hmp_error(out, err);
        g_error_free(err);
    }
}

/* ---- info ---- */

static void info_status(Monitor *mon, GString *out)
{
    VM *vm = mon->vm;

    g_string_append_printf(out, "VM status: %s", vm_is_running(vm) ? "running" : "paused");
    if (!vm_is_running(vm) && vm->state != RUN_STATE_PAUSED) {
        g_string_append_printf(out, " (%s)", run_state_name(vm->state));
    }
    g_string_append_c(out, '\n');
}

static void info_cpus(Monitor *mon, GString *out)
{
    for (guint i = 0; i < mon->vm->ncpus; i++) {
        g_string_append_printf(out, "%c CPU #%u: thread_id=%d\n", i == 0 ? '*' : ' ', i,
                               mon->vm->cpus[i]->thread_id);
    }
}

/* Registers are only exact while the VCPUs are parked: pause around the read. */
static void with_vm_paused(VM *vm, void (*fn)(VM *vm, void *opaque), void *opaque)
{
    bool running = vm_is_running(vm);

    if (running) {
        vm->accel->pause(vm);
    }
    fn(vm, opaque);
    if (running) {
        vm->accel->resume(vm);
    }
}

static void format_all_registers(VM *vm, void *opaque)
{
    GString *out = opaque;

    for (guint i = 0; i < vm->ncpus; i++) {
        g_string_append_printf(out, "\nCPU#%u\n", i);
        x86_cpu_format_registers(&vm->cpus[i]->state, out);
    }
}

static void info_registers(Monitor *mon, GString *out)
{
    with_vm_paused(mon->vm, format_all_registers, out);
}

static void info_ramblock(Monitor *mon, GString *out)
{
    GuestMemory *mem = mon->vm->mem;

    g_string_append_printf(out, "%24s %8s  %18s %18s %18s\n", "Block Name", "PSize", "Offset",
                           "Used", "Total");
    for (guint i = 0; i < guest_memory_count(mem); i++) {
        RamBlock *b = guest_memory_block(mem, i);
        g_string_append_printf(out, "%24s %8s  0x%016" PRIx64 " 0x%016" PRIx64 " 0x%016" PRIx64
                               "\n", b->name, "4 KiB", b->gpa, b->size, b->size);
    }
}

/* minivm: where the dump's VMCOREINFO came from (nothing when it had none, as QEMU) */
static void info_dump_vmcoreinfo(const DumpProgress *p, GString *out)
{
    if (p->vmcoreinfo == DUMP_VMCOREINFO_NOTE) {
        g_string_append(out, "VMCOREINFO: the guest's note\n");
    } else if (p->vmcoreinfo == DUMP_VMCOREINFO_GUEST_MEMORY) {
        g_string_append_printf(out, "VMCOREINFO: found in guest memory at 0x%" PRIx64 "\n",
                               p->vmcoreinfo_addr);
    }
}

static void info_dump(Monitor *mon, GString *out)
{
    DumpProgress p = dump_query(mon->dump);

    g_string_append_printf(out, "Status: %s\n", dump_status_name(p.status));
    if (p.status == DUMP_STATUS_ACTIVE && p.total) {
        g_string_append_printf(out, "Finished: %.2f %%\n", 100.0 * p.completed / p.total);
    }
    info_dump_vmcoreinfo(&p, out);
    if (p.live) {
        const DumpLiveStats *l = &p.live_stats;
        g_string_append_printf(out, "Live: %" PRIu64 " pages saved before the guest wrote them, "
                               "%" PRIu64 " writes waited; pool %" PRIu64 " of %" PRIu64
                               " pages at most\n", l->saved, l->waits, l->peak, l->pool_pages);
    }
}

static void info_ioports(Monitor *mon, GString *out)
{
    g_string_append_printf(out, "serial 16550: 0x3f8-0x3ff\nidle: 0x%x\nguest exit: 0x%x\n"
                           "unknown port and MMIO accesses (ignored): %" PRIu64 "\n",
                           MINIVM_PORT_IDLE, MINIVM_PORT_EXIT,
                           __atomic_load_n(&mon->vm->unknown_port_accesses, __ATOMIC_RELAXED));
}

static const struct {
    const char *name;
    const char *help;
    void (*fn)(Monitor *mon, GString *out);
} info_commands[] = {
    HMP_INFO_COMMANDS
};

static void hmp_info(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out)
{
    if (argc < 2) {
        for (guint i = 0; i < G_N_ELEMENTS(info_commands); i++) {
            g_string_append_printf(out, "info %s  -- %s\n", info_commands[i].name,
                                   info_commands[i].help);
        }
        return;
    }
    for (guint i = 0; i < G_N_ELEMENTS(info_commands); i++) {
        if (g_str_equal(argv[1], info_commands[i].name)) {
            info_commands[i].fn(mon, out);
            return;
        }
    }
    g_string_append_printf(out, "unknown command: 'info %s'\n", argv[1]);
}

/* ---- run control ---- */

static void hmp_stop(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out)
{
    monitor_stop_vm(mon, NULL);     /* QEMU's HMP stop says nothing, even when refused */
}

static void hmp_cont(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out)
{
    GError *err = NULL;

    monitor_cont_vm(mon, &err);
    report(out, err);
}

static void hmp_quit(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out)
{
    monitor_request_quit(mon, "host-qmp-quit");
}

/* ---- memory ---- */

typedef struct MemFormat {
    unsigned count;
    char format;
    unsigned size;
} MemFormat;

static bool parse_mem_format(const char *spec, MemFormat *f, GError **errp)
{
    *f = (MemFormat){ 1, 'x', 4 };
    if (*spec != '/') {
        return true;
    }
    const char *p = spec + 1;
    if (g_ascii_isdigit(*p)) {
        f->count = (unsigned)strtoul(p, (char **)&p, 10);
    }
    for (; *p; p++) {
        switch (*p) {
        case 'x': case 'd': case 'u': case 'o': case 'c':
            f->format = *p;
            if (*p == 'c') {
                f->size = 1;
            }
            break;
        case 'b':
            f->size = 1;
            break;
        case 'h':
            f->size = 2;
            break;
        case 'w':
            f->size = 4;
            break;
        case 'g':
            f->size = 8;
            break;
        default:
            error_setg(errp, "invalid char in format: '%c'", *p);
            return false;
        }
    }
    return true;
}

typedef bool (*ReadMemFn)(Monitor *mon, uint64_t addr, void *buf, size_t len);

static bool read_phys(Monitor *mon, uint64_t addr, void *buf, size_t len)
{
    return guest_memory_read(mon->vm->mem, addr, buf, len, NULL);
}

static bool read_virt(Monitor *mon, uint64_t addr, void *buf, size_t len)
{
    GuestReader r = { .mem = mon->vm->mem };

    return x86_cpu_read_virt(&mon->vm->cpus[0]->state, &r, addr, buf, len);
}

static void print_value(GString *out, char format, unsigned size, uint64_t v)
{
    unsigned bits = size * 8;

    switch (format) {
    case 'o':
        g_string_append_printf(out, " %#*" PRIo64, (bits + 2) / 3, v);
        break;
    case 'u':
        g_string_append_printf(out, " %*" PRIu64, (bits * 10 + 32) / 33, v);
        break;
    case 'd': {
        int64_t sv = bits == 64 ? (int64_t)v : (int64_t)(v << (64 - bits)) >> (64 - bits);
        g_string_append_printf(out, " %*" PRId64, (bits * 10 + 32) / 33, sv);
        break;
    }
    case 'c':
        if (v >= 32 && v < 127 && v != '\\' && v != '\'') {
            g_string_append_printf(out, " '%c'", (int)v);
        } else {
            g_string_append_printf(out, " '\\x%02x'", (unsigned)v);
        }
        break;
    default:
        g_string_append_printf(out, " 0x%0*" PRIx64, (int)bits / 4, v);
    }
}

static void memory_dump(Monitor *mon, GString *out, const MemFormat *f, uint64_t addr,
                        ReadMemFn read)
{
    uint64_t len = (uint64_t)f->count * f->size;
    unsigned line = f->size == 1 ? 8 : 16;

    while (len) {
        uint8_t buf[16];
        unsigned l = (unsigned)MIN(len, line);
        if (!read(mon, addr, buf, l)) {
            g_string_append_printf(out, "Cannot access memory\n");
            return;
        }
        g_string_append_printf(out, "%016" PRIx64 ":", addr);
        for (unsigned i = 0; i < l; i += f->size) {
            uint64_t v = 0;
            memcpy(&v, buf + i, f->size);
            print_value(out, f->format, f->size, v);
        }
        g_string_append_c(out, '\n');
        addr += l;
        len -= l;
    }
}

static void examine(Monitor *mon, char **argv, int argc, GString *out, ReadMemFn read)
{
    MemFormat f;
    uint64_t addr;
    GError *err = NULL;
    int a = 1;

    if (argc > 1 && argv[1][0] == '/') {
        if (!parse_mem_format(argv[1], &f, &err)) {
            report(out, err);
            return;
        }
        a = 2;
    } else {
        parse_mem_format("", &f, NULL);
    }
    if (argc != a + 1 || !parse_uint64(argv[a], &addr)) {
        g_string_append_printf(out, "%s: usage: %s /fmt addr\n", argv[0], argv[0]);
        return;
    }
    if ((uint64_t)f.count * f.size > HMP_MAX_EXAMINE) {
        g_string_append_printf(out, "Error: %s: at most %u bytes at a time (use %s)\n", argv[0],
                               HMP_MAX_EXAMINE, read == read_phys ? "pmemsave" : "memsave");
        return;
    }
    memory_dump(mon, out, &f, addr, read);
}

static void hmp_x(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out)
{
    examine(mon, argv, argc, out, read_virt);
}

static void hmp_xp(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out)
{
    examine(mon, argv, argc, out, read_phys);
}

static void save_memory(Monitor *mon, char **argv, int argc, GString *out, ReadMemFn read)
{
    uint64_t addr, size;

    if (argc != 4 || !parse_uint64(argv[1], &addr) || !parse_uint64(argv[2], &size)) {
        g_string_append_printf(out, "%s: usage: %s addr size file\n", argv[0], argv[0]);
        return;
    }
    int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        g_string_append_printf(out, "Error: Could not open '%s': %s\n", argv[3],
                               g_strerror(errno));
        return;
    }
    g_autofree uint8_t *buf = g_malloc(1 << 20);
    GError *err = NULL;
    uint64_t done = 0;
    while (done < size) {
        size_t n = (size_t)MIN(size - done, 1 << 20);
        if (!read(mon, addr + done, buf, n)) {
            error_setg(&err, "Invalid addr 0x%016" PRIx64 "/size %" PRIu64 " specified",
                       addr, size);
            break;
        }
        if (!write_full(fd, buf, n, &err)) {
            break;
        }
        done += n;
    }
    if (close(fd) < 0 && !err) {
        error_setg_errno(&err, errno, "closing '%s' failed", argv[3]);
    }
    report(out, err);
}

static void hmp_memsave(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out)
{
    save_memory(mon, argv, argc, out, read_virt);
}

static void hmp_pmemsave(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out)
{
    save_memory(mon, argv, argc, out, read_phys);
}

/* ---- dump ---- */

static int hmp_get_fd(void *opaque, const char *name, GError **errp)
{
    return qmp_session_take_fd(opaque, name, errp);
}

/* minivm's -D LEVEL (makedumpfile's -d; QEMU's HMP has no -D, and -d is detach) */
static bool parse_dump_level(char **argv, int argc, int *i, DumpRequest *req, GString *out)
{
    if (*i + 1 >= argc || !parse_int64(argv[*i + 1], &req->dump_level)) {
        g_string_append(out, "dump-guest-memory: -D takes a dump level (0 to 31)\n");
        return false;
    }
    req->has_dump_level = true;
    (*i)++;
    return true;
}

static void hmp_dump_guest_memory(Monitor *mon, QmpSession *s, char **argv, int argc,
                                  GString *out)
{
    DumpRequest req = { .format = DUMP_FORMAT_ELF };
    const char *file = NULL;
    bool raw = false;
    int compressions = 0, pos = 0;
    const char *positional[3] = { 0 };
    GError *err = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] && !a[2]) {
            switch (a[1]) {
            case 'D':
                if (!parse_dump_level(argv, argc, &i, &req, out)) {
                    return;
                }
                continue;
            case 'p': req.paging = true; continue;
            case 'd': req.detach = true; continue;
            case 'L': req.live = true; continue;
            case 'R': raw = true; continue;
            case 'z': req.format = DUMP_FORMAT_KDUMP_ZLIB; compressions++; continue;
            case 'l': req.format = DUMP_FORMAT_KDUMP_LZO; compressions++; continue;
            case 's': req.format = DUMP_FORMAT_KDUMP_SNAPPY; compressions++; continue;
            case 'Z': req.format = DUMP_FORMAT_KDUMP_ZSTD; compressions++; continue;
            case 'w': req.format = DUMP_FORMAT_WIN_DMP; compressions++; continue;
            default:
                break;
            }
        }
        if (pos == 3) {
            g_string_append(out, "dump-guest-memory: extraneous characters at the end of line\n");
            return;
        }
        positional[pos++] = a;
    }
    if (pos == 0) {
        g_string_append(out, "dump-guest-memory: usage: dump-guest-memory [-p] [-d] [-L] "
                        "[-z|-l|-s|-Z] [-R] [-D level] filename [begin length]\n");
        return;
    }
    file = positional[0];
    if (compressions > 1) {
        g_string_append(out, "Error: only one of '-z|-l|-s|-Z|-w' can be set\n");
        return;
    }
    if (raw) {               /* QEMU: -R without a compression still writes ELF */
        if (req.format == DUMP_FORMAT_KDUMP_ZLIB) {
            req.format = DUMP_FORMAT_KDUMP_RAW_ZLIB;
        } else if (req.format == DUMP_FORMAT_KDUMP_LZO) {
            req.format = DUMP_FORMAT_KDUMP_RAW_LZO;
        } else if (req.format == DUMP_FORMAT_KDUMP_SNAPPY) {
            req.format = DUMP_FORMAT_KDUMP_RAW_SNAPPY;
        } else if (req.format == DUMP_FORMAT_KDUMP_ZSTD) {
            req.format = DUMP_FORMAT_KDUMP_RAW_ZSTD;
        }
    }
    if (pos >= 2) {          /* begin alone goes on, as in QEMU: "'length' is missing" */
        if (!parse_int64(positional[1], &req.begin) ||
            (pos == 3 && !parse_int64(positional[2], &req.length))) {
            g_string_append(out, "dump-guest-memory: invalid begin or length\n");
            return;
        }
        req.has_begin = true;
        req.has_length = pos == 3;
    }
    g_autofree char *protocol = g_strconcat("file:", file, NULL);
    req.protocol = protocol;
    dump_guest_memory(mon->dump, &req, hmp_get_fd, s, &err);
    report(out, err);
}

static void hmp_dump_cancel(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out)
{
    GError *err = NULL;

    dump_cancel(mon->dump, &err);
    report(out, err);
}

static void hmp_help(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out);

static const HmpCommand hmp_commands[] = {
    HMP_COMMANDS
};

static bool name_matches(const char *names, const char *cmd)
{
    g_auto(GStrv) alts = g_strsplit(names, "|", -1);

    for (int i = 0; alts[i]; i++) {
        if (g_str_equal(alts[i], cmd)) {
            return true;
        }
    }
    return false;
}

static void hmp_help(Monitor *mon, QmpSession *s, char **argv, int argc, GString *out)
{
    for (guint i = 0; i < G_N_ELEMENTS(hmp_commands); i++) {
        const HmpCommand *c = &hmp_commands[i];
        if (argc > 1 && !name_matches(c->name, argv[1])) {
            continue;
        }
        g_string_append_printf(out, "%s %s -- %s\n", c->name, c->params, c->help);
    }
}

void hmp_crlf(GString *out)
{
    g_autoptr(GString) crlf = g_string_sized_new(out->len + out->len / 32 + 16);

    for (gsize i = 0; i < out->len; i++) {
        if (out->str[i] == '\n' && (i == 0 || out->str[i - 1] != '\r')) {
            g_string_append_c(crlf, '\r');
        }
        g_string_append_c(crlf, out->str[i]);
    }
    g_string_truncate(out, 0);
    g_string_append_len(out, crlf->str, (gssize)crlf->len);
}

/* A double-quoted word (p after the quote) with QEMU's escapes; NULL and a
 * message in out if it is not closed or has another escape. */
static const char *quoted_word(const char *p, GString *w, GString *out)
{
    while (*p && *p != '"') {
        char c = *p++;
        if (c == '\\') {
            if (!*p) {
                break;
            }
            c = *p++;
            if (c == 'n' || c == 'r') {
                c = c == 'n' ? '\n' : '\r';
            } else if (c != '\\' && c != '\'' && c != '"') {
                g_string_append_printf(out, "unsupported escape code: '\\%c'\n", c);
                return NULL;
            }
        }
        g_string_append_c(w, c);
    }
    if (*p != '"') {
        g_string_append(out, "unterminated string\n");
        return NULL;
    }
    return p + 1;
}

/* The words of a command line as QEMU's monitor reads them: separated by blanks,
 * double quotes around a word with blanks, and the command name ending at a '/'
 * (x/4x addr). NULL, with a message in out, if quoting is broken. */
static GStrv split_line(const char *p, int *argc, GString *out)
{
    g_autoptr(GPtrArray) words = g_ptr_array_new_with_free_func(g_free);

    for (;;) {
        while (g_ascii_isspace(*p)) {
            p++;
        }
        if (!*p) {
            break;
        }
        g_autoptr(GString) w = g_string_new(NULL);
        if (*p == '"') {
            if (!(p = quoted_word(p + 1, w, out))) {
                return NULL;
            }
        } else {
            do {
                g_string_append_c(w, *p++);
            } while (*p && !g_ascii_isspace(*p) && !(words->len == 0 && *p == '/'));
        }
        g_ptr_array_add(words, g_string_free(g_steal_pointer(&w), FALSE));
    }
    *argc = (int)words->len;
    g_ptr_array_add(words, NULL);
    return (GStrv)g_ptr_array_free(g_steal_pointer(&words), FALSE);
}

void hmp_execute(Monitor *mon, QmpSession *s, const char *line, GString *out)
{
    int argc = 0;
    g_auto(GStrv) argv = split_line(line, &argc, out);

    if (!argv || !argc) {
        return;
    }
    for (guint i = 0; i < G_N_ELEMENTS(hmp_commands); i++) {
        if (name_matches(hmp_commands[i].name, argv[0])) {
            hmp_commands[i].fn(mon, s, argv, argc, out);
            return;
        }
    }
    g_string_append_printf(out, "unknown command: '%s'\n", argv[0]);
}

/* ---- HMP over a chardev ---- */

typedef struct HmpSession {
    GString *line;
    QmpSession *fds;   /* fd passing for HMP sockets */
} HmpSession;

static void hmp_session_free(gpointer p)
{
    HmpSession *h = p;

    g_string_free(h->line, TRUE);
    qmp_session_free(h->fds);
    g_free(h);
}

static void hmp_connected(void *opaque, ChardevConn *conn)
{
    MonitorChannel *ch = opaque;
    HmpSession *h = g_new0(HmpSession, 1);

    h->line = g_string_new(NULL);
    h->fds = qmp_session_new(ch->mon, conn, ch->fds);
    chardev_conn_set_data(conn, h, hmp_session_free);
    chardev_conn_write_str(conn, "minivm " MINIVM_VERSION
                           " monitor - type 'help' for more information\r\n" HMP_PROMPT);
}

static void hmp_received(void *opaque, ChardevConn *conn, const char *data, size_t len)
{
    Monitor *mon = ((MonitorChannel *)opaque)->mon;
    HmpSession *h = chardev_conn_get_data(conn);

    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n') {
            if (data[i] != '\r' && h->line->len < HMP_MAX_LINE) {
                g_string_append_c(h->line, data[i]);
            }
            continue;
        }
        g_autoptr(GString) out = g_string_new(NULL);
        hmp_execute(mon, h->fds, h->line->str, out);
        hmp_crlf(out);
        g_string_truncate(h->line, 0);
        if (!mon->quit_requested) {
            g_string_append(out, HMP_PROMPT);
        }
        chardev_conn_write(conn, out->str, out->len);
        if (mon->quit_requested) {
            return;
        }
    }
}

static const ChardevHandlers hmp_handlers = {
    .connected = hmp_connected,
    .received = hmp_received,
};

bool monitor_add_hmp(Monitor *mon, const char *spec, GError **errp)
{
    Chardev *chr = chardev_new(spec, &hmp_handlers, monitor_channel_new(mon), errp);

    if (!chr) {
        return false;
    }
    g_ptr_array_add(mon->chardevs, chr);
    return true;
}
