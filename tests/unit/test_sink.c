/* Unit tests for dump sinks: write-behind keeps a long output out of the page cache. */
#include "dump/dump-internal.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define WINDOW ((size_t)DUMP_WRITE_BEHIND_WINDOW)
#define RUN_START (1u << 20)        /* the sequential run starts past a header area */
#define RUN_LEN (4 * WINDOW + 123457)
#define FLAT_HEADER 4096

/* Pseudo-random bytes: a page cache that kept nothing could not fake them. */
static uint8_t *make_data(size_t len)
{
    uint8_t *d = g_malloc(len);
    uint64_t x = 0x6d696e69766d3031ULL;

    for (size_t i = 0; i + 8 <= len; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(d + i, &x, 8);
    }
    return d;
}

/* The bytes of [off, off + len) of the file that are in the page cache. */
static size_t resident(int fd, size_t off, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t start = off / page * page, span = off + len - start;
    void *map = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, (off_t)start);
    g_assert_true(map != MAP_FAILED);
    size_t npages = (span + page - 1) / page, in = 0;
    g_autofree unsigned char *vec = g_malloc(npages);
    g_assert_cmpint(mincore(map, span, vec), ==, 0);
    for (size_t i = 0; i < npages; i++) {
        in += vec[i] & 1;
    }
    munmap(map, span);
    return in * page;
}

/*
 * Through the sink: data[0..4096) at 0 (a header); the run, data[0..RUN_LEN) at
 * RUN_START, in pieces of assorted sizes (some past the coalescing buffer, so written
 * straight); between them, 24-byte writes behind the run (as kdump's descriptors),
 * data[b..b+24) at b from 4096 on. Returns where those stopped.
 */
static uint64_t write_run(int fd, bool flattened, const uint8_t *data)
{
    DumpSink sink;
    GError *err = NULL;
    size_t done = 0, step = 1000;
    uint64_t behind = 4096;

    int out = dup(fd);
    g_assert_cmpint(out, >=, 0);
    g_assert_true(dump_sink_open(&sink, out, flattened, NULL));
    dump_sink_enable_write_behind(&sink);
    g_assert_true(dump_sink_pwrite(&sink, data, 4096, 0, &err));
    g_assert_true(dump_sink_seek(&sink, RUN_START, &err));
    while (done < RUN_LEN) {
        size_t n = MIN(step, RUN_LEN - done);
        g_assert_true(dump_sink_write(&sink, data + done, n, &err));
        done += n;
        step = step * 7 % (3u << 20) + 333;
        if (behind + 24 <= RUN_START) {
            g_assert_true(dump_sink_pwrite(&sink, data + behind, 24, behind, &err));
            behind += 24;
        }
    }
    g_assert_true(dump_sink_finish(&sink, &err));
    g_assert_no_error(err);
    g_assert_cmpint(fcntl(out, F_GETFD), ==, -1);    /* finish closed it, and checked */
    dump_sink_close(&sink);
    return behind;
}

/* What the file (or the flattened stream, rebuilt) must hold. */
static void check_image(const uint8_t *image, const uint8_t *data, uint64_t behind)
{
    g_assert_true(memcmp(image, data, behind) == 0);
    g_assert_true(memcmp(image + RUN_START, data, RUN_LEN) == 0);
}

typedef struct Run {
    uint8_t *data;              /* the run's bytes */
    char *path;
    int fd;
    uint64_t behind;            /* what write_run() wrote behind the run ends here */
    gchar *file;                /* the file, once read back */
    gsize len;
} Run;

/* write_run() into a temporary file on a file system whose page cache can let written
 * pages go; false, the test skipped, on tmpfs, which keeps every page. */
static bool run_open(Run *r, bool flattened)
{
    struct statfs fs;

    r->fd = g_file_open_tmp("minivm-sink-XXXXXX", &r->path, NULL);
    g_assert_cmpint(r->fd, >=, 0);
    g_assert_cmpint(fstatfs(r->fd, &fs), ==, 0);
    if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) {
        g_test_skip("the temporary directory is on tmpfs, which keeps every page");
        return false;
    }
    r->data = make_data(RUN_LEN);
    r->behind = write_run(r->fd, flattened, r->data);
    return true;
}

/* Read the file back (after the page-cache checks: reading brings it in). */
static void run_read_back(Run *r)
{
    g_assert_true(g_file_get_contents(r->path, &r->file, &r->len, NULL));
}

static void run_free(Run *r)
{
    close(r->fd);
    unlink(r->path);
    g_free(r->path);
    g_free(r->data);
    g_free(r->file);
}

/* Random-access file: all but the last windows of the run have left the page
 * cache; what was written behind it has not; everything reads back. */
static void test_write_behind_raw(void)
{
    Run r = { 0 };

    if (!run_open(&r, false)) {
        run_free(&r);
        return;
    }
    /* windows start every WINDOW plus at most one coalescing buffer (4 MiB): the
     * first two, at least 2 * WINDOW, were waited for and dropped by now */
    g_assert_cmpuint(resident(r.fd, RUN_START, 2 * WINDOW), <, WINDOW / 8);
    g_assert_cmpuint(resident(r.fd, 0, r.behind), ==, (r.behind + 4095) / 4096 * 4096);
    run_read_back(&r);
    g_assert_cmpuint(r.len, ==, RUN_START + RUN_LEN);
    check_image((const uint8_t *)r.file, r.data, r.behind);
    run_free(&r);
}

/* Flattened stream into a regular file: every record is part of one run. */
static void test_write_behind_flattened(void)
{
    Run r = { 0 };
    struct stat st;

    if (!run_open(&r, true)) {
        run_free(&r);
        return;
    }
    g_assert_cmpint(fstat(r.fd, &st), ==, 0);
    g_assert_cmpuint(resident(r.fd, 0, st.st_size - 3 * WINDOW), <, WINDOW / 8);

    /* replay the records: what a reader (makedumpfile -R) rebuilds */
    run_read_back(&r);
    const uint8_t *got = (const uint8_t *)r.file;
    g_autofree uint8_t *rebuilt = g_malloc0(RUN_START + RUN_LEN);
    size_t pos = FLAT_HEADER;
    for (;;) {
        int64_t off, size;
        g_assert_cmpuint(pos + 16, <=, r.len);
        memcpy(&off, got + pos, 8);
        memcpy(&size, got + pos + 8, 8);
        off = (int64_t)GINT64_FROM_BE(off);
        size = (int64_t)GINT64_FROM_BE(size);
        pos += 16;
        if (off == -1 && size == -1) {
            break;
        }
        g_assert_cmpint(off, >=, 0);
        g_assert_cmpuint((uint64_t)off + (uint64_t)size, <=, RUN_START + RUN_LEN);
        g_assert_cmpuint(pos + (uint64_t)size, <=, r.len);
        memcpy(rebuilt + off, got + pos, (size_t)size);
        pos += (size_t)size;
    }
    g_assert_cmpuint(pos, ==, r.len);
    check_image(rebuilt, r.data, r.behind);
    run_free(&r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/sink/write-behind/raw", test_write_behind_raw);
    g_test_add_func("/sink/write-behind/flattened", test_write_behind_flattened);
    return g_test_run();
}
