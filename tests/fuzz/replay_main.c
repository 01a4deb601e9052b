/*
 * A main() for the fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput
 * once on every file named (directories: every file inside, sorted). Built by
 * tests/fuzz/meson.build with the project's compiler so that `make check`
 * replays the seeds and regression inputs on every build.
 *
 * With REPLAY_TIMEOUT=N (seconds) each input runs in a child process that is
 * killed after N seconds; a hang or crash is reported and the rest still run
 * (run.sh coverage uses this: every child writes its own coverage profile).
 */
#include <glib.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_path(GPtrArray *files, const char *path)
{
    GDir *dir;

    if (!g_file_test(path, G_FILE_TEST_IS_DIR)) {
        g_ptr_array_add(files, g_strdup(path));
        return;
    }
    dir = g_dir_open(path, 0, NULL);
    if (!dir) {
        return;
    }
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(dir))) {
        g_ptr_array_add(names, g_build_filename(path, name, NULL));
    }
    g_dir_close(dir);
    qsort(names->pdata, names->len, sizeof(char *), cmp_str);
    for (guint i = 0; i < names->len; i++) {
        if (g_file_test(g_ptr_array_index(names, i), G_FILE_TEST_IS_REGULAR)) {
            g_ptr_array_add(files, g_strdup(g_ptr_array_index(names, i)));
        }
    }
    g_ptr_array_free(names, TRUE);
}

static void replay(const char *path, const char *data, size_t len)
{
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
}

/* Run one input in a child killed after `timeout` seconds; false if it failed. */
static bool replay_child(const char *path, const char *data, size_t len, unsigned timeout)
{
    int status;
    pid_t pid = fork();

    if (pid < 0) {
        perror("replay: fork");
        return false;
    }
    if (pid == 0) {
        alarm(timeout);
        replay(path, data, len);
        exit(0);
    }
    if (waitpid(pid, &status, 0) < 0) {
        perror("replay: waitpid");
        return false;
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "replay: %s: %s\n", path, WTERMSIG(status) == SIGALRM
                ? "timed out" : strsignal(WTERMSIG(status)));
        return false;
    }
    if (WEXITSTATUS(status)) {
        fprintf(stderr, "replay: %s: exit status %d\n", path, WEXITSTATUS(status));
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
    const char *timeout = g_getenv("REPLAY_TIMEOUT");
    guint failed = 0;

    for (int i = 1; i < argc; i++) {
        add_path(files, argv[i]);
    }
    for (guint i = 0; i < files->len; i++) {
        const char *path = g_ptr_array_index(files, i);
        gchar *data;
        gsize len;
        GError *err = NULL;
        if (!g_file_get_contents(path, &data, &len, &err)) {
            fprintf(stderr, "%s\n", err->message);
            g_error_free(err);
            return 2;
        }
        if (timeout) {
            failed += !replay_child(path, data, len, (unsigned)atoi(timeout));
        } else {
            replay(path, data, len);
        }
        g_free(data);
    }
    fprintf(stderr, "replay: %u inputs, %u failed\n", files->len, failed);
    g_ptr_array_free(files, TRUE);
    return failed ? 1 : 0;
}
