/* A kdump file written by the writer itself, for the unit tests. */
#ifndef MINIVM_TESTS_UNIT_KDUMP_H
#define MINIVM_TESTS_UNIT_KDUMP_H

#include "dump/dump-internal.h"

/* Write job (format, ranges, CPUs and options set; its arch is filled here from the
 * first CPU and ram_end) into a new temporary file, and return the file's path. */
char *unit_write_kdump(DumpJob *job, uint64_t ram_end);

#endif
