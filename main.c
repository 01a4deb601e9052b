/* minivm: command line, VM and monitors, main loop. */
#include "config.h"
#include "monitor.h"
#include "util.h"
#include "vm.h"

#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Options {
    VMConfig vm;
    GPtrArray *qmp;
    GPtrArray *hmp;
} Options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: minivm [-accel kvm|none] [-m SIZE] [-smp N] [-S] [-kernel ELF]\n"
            "              [-load-vmcore FILE] [-mem-path FILE] [-qmp SPEC]... [-monitor SPEC]\n"
            "              [-serial SPEC] [-name NAME]\n"
            "SPEC: unix:PATH,server=on,wait=off | tcp:127.0.0.1:PORT,server=on,wait=off |"
            " stdio | none\n"
            "-serial also takes file:PATH. Without -kernel or -load-vmcore the built-in demo\n"
            "guest runs.\n");
}

static bool parse_smp(const char *arg, guint *out)
{
    uint64_t n;
    g_autofree char *first = g_strdup(arg);
    char *comma = strchr(first, ',');

    if (comma) {
        *comma = 0;
    }
    if (g_str_has_prefix(first, "cpus=")) {
        memmove(first, first + 5, strlen(first + 5) + 1);
    }
    if (!parse_uint64(first, &n) || n == 0 || n > 4096) {
        return false;
    }
    *out = (guint)n;
    return true;
}

static bool parse_args(int argc, char **argv, Options *o, GError **errp)
{
    o->vm.ram_size = 128 << 20;
    o->vm.smp = 1;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (opt[0] == '-' && opt[1] == '-') {
            opt++;
        }
        if (g_str_equal(opt, "-S")) {
            o->vm.start_paused = true;
            continue;
        }
        if (g_str_equal(opt, "-h") || g_str_equal(opt, "-help")) {
            usage(stdout);
            exit(0);
        }
        if (g_str_equal(opt, "-version")) {
            printf("minivm version " MINIVM_VERSION "\n");
            exit(0);
        }
        static const char *const with_arg[] = { "-accel", "-m", "-smp", "-kernel",
                                                "-load-vmcore", "-mem-path", "-qmp",
                                                "-monitor", "-serial", "-name", "-display",
                                                NULL };
        if (!g_strv_contains(with_arg, opt)) {
            error_setg(errp, "%s: invalid option", argv[i]);
            return false;
        }
        if (!arg) {
            error_setg(errp, "%s: requires an argument", argv[i]);
            return false;
        }
        i++;
        if (g_str_equal(opt, "-accel")) {
            o->vm.accel = arg;
        } else if (g_str_equal(opt, "-m")) {
            const char *size = g_str_has_prefix(arg, "size=") ? arg + 5 : arg;
            if (!parse_size(size, 1 << 20, &o->vm.ram_size) || o->vm.ram_size == 0) {
                error_setg(errp, "-m %s: invalid RAM size: expected a positive number "
                           "with an optional K, M, G or T suffix", arg);
                return false;
            }
            o->vm.ram_size = (o->vm.ram_size + 0x1fffff) & ~0x1fffffULL;
        } else if (g_str_equal(opt, "-smp")) {
            if (!parse_smp(arg, &o->vm.smp)) {
                error_setg(errp, "-smp %s: invalid number of CPUs", arg);
                return false;
            }
        } else if (g_str_equal(opt, "-kernel")) {
            o->vm.kernel = arg;
        } else if (g_str_equal(opt, "-load-vmcore")) {
            o->vm.load_vmcore = arg;
        } else if (g_str_equal(opt, "-mem-path")) {
            o->vm.mem_path = arg;
        } else if (g_str_equal(opt, "-qmp")) {
            g_ptr_array_add(o->qmp, (gpointer)arg);
        } else if (g_str_equal(opt, "-monitor")) {
            g_ptr_array_add(o->hmp, (gpointer)arg);
        } else if (g_str_equal(opt, "-serial")) {
            o->vm.serial = arg;
        } else if (g_str_equal(opt, "-name")) {
            o->vm.name = arg;
        } else if (g_str_equal(opt, "-display") && !g_str_equal(arg, "none")) {
            error_setg(errp, "-display %s: minivm has no display; only 'none' is accepted", arg);
            return false;
        }
    }
    if (o->vm.kernel && o->vm.load_vmcore) {
        error_setg(errp, "-kernel and -load-vmcore cannot be used together");
        return false;
    }
    return true;
}

static gboolean on_signal(gpointer opaque)
{
    monitor_request_quit(opaque, "host-signal");
    return G_SOURCE_CONTINUE;
}

static bool add_monitors(Monitor *mon, Options *o, GError **errp)
{
    for (guint i = 0; i < o->qmp->len; i++) {
        const char *spec = g_ptr_array_index(o->qmp, i);
        if (!g_str_equal(spec, "none") && !monitor_add_qmp(mon, spec, errp)) {
            error_prepend(errp, "-qmp %s: ", spec);
            return false;
        }
    }
    for (guint i = 0; i < o->hmp->len; i++) {
        const char *spec = g_ptr_array_index(o->hmp, i);
        if (!g_str_equal(spec, "none") && !monitor_add_hmp(mon, spec, errp)) {
            error_prepend(errp, "-monitor %s: ", spec);
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    Options o = { .qmp = g_ptr_array_new(), .hmp = g_ptr_array_new() };
    GError *err = NULL;
    VM *vm = NULL;
    Monitor *mon = NULL;
    int rc = 1;

    signal(SIGPIPE, SIG_IGN);
    /* RLIMIT_FSIZE: a dump write past it fails with EFBIG instead of killing the VM */
    signal(SIGXFSZ, SIG_IGN);
    if (!parse_args(argc, argv, &o, &err)) {
        goto out;
    }
    vm = vm_new(&o.vm, &err);
    if (!vm) {
        goto out;
    }
    if (vm->restore_excluded) {
        fprintf(stderr, "minivm: %s: %" PRIu64 " pages excluded by dump level %u are zero\n",
                o.vm.load_vmcore, vm->restore_excluded, vm->restore_dump_level);
    }
    mon = monitor_new(vm);
    if (!add_monitors(mon, &o, &err) || !vm_start(vm, o.vm.start_paused || o.vm.load_vmcore, &err)) {
        goto out;
    }
    g_unix_signal_add(SIGINT, on_signal, mon);
    g_unix_signal_add(SIGTERM, on_signal, mon);
    g_unix_signal_add(SIGHUP, on_signal, mon);
    monitor_run(mon);
    rc = 0;

out:
    if (err) {
        fprintf(stderr, "minivm: %s\n", err->message);
        g_error_free(err);
    }
    monitor_free(mon);
    vm_free(vm);
    g_ptr_array_free(o.qmp, TRUE);
    g_ptr_array_free(o.hmp, TRUE);
    return rc;
}
