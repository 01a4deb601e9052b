/* A kdump file written by the writer itself, for the unit tests. */
#include "unit_kdump.h"

char *unit_write_kdump(DumpJob *job, uint64_t ram_end)
{
    char *path = NULL;
    GError *err = NULL;

    arch_dump_info(&job->cpus[0], ram_end, &job->arch);
    int fd = g_file_open_tmp("minivm-unit-kdump-XXXXXX", &path, NULL);
    g_assert_cmpint(fd, >=, 0);
    g_assert_true(dump_sink_open(&job->sink, fd, false, NULL));
    g_assert_true(kdump_dump_write(job, &err));
    g_assert_no_error(err);
    dump_sink_close(&job->sink);
    return path;
}
