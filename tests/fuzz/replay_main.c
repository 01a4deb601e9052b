/*
 * A main() for the fuzz targets without libFuzzer: runs LLVMFuzzerTestOneInput
 * once on every file named (directories: every file inside, sorted). Built by
 * tests/fuzz/meson.build with the project's compiler so that `make check`
 * replays the seeds and regression inputs on every build.
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
    GPtrArray *files = g_ptr_array_new_with_free_func(g_free);

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
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, (size_t)len);
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
        g_free(data);
    }
    fprintf(stderr, "replay: %u inputs ok\n", files->len);
    g_ptr_array_free(files, TRUE);
    return 0;
}
