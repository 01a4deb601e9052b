/*
 * Where the fields of makedumpfile's disk_dump_header and kdump_sub_header are
 * (docs/formats.md, "kdump-compressed"): the x86_64 layout, and the packed one of
 * i386 dumps. One table for the writer (dump/kdump.c) and the reader
 * (system/vmcore_kdump.c).
 */
#ifndef MINIVM_KDUMP_FORMAT_H
#define MINIVM_KDUMP_FORMAT_H

#define KDUMP_HEADER64_SIZE 464
#define KDUMP_HEADER32_SIZE 452
#define KDUMP_SUB_HEADER64_SIZE 104
#define KDUMP_SUB_HEADER32_SIZE 80
#define KDUMP_UTS_OFFSET 12             /* new_utsname: six fields of 65 bytes */

typedef struct KdumpFields {
    unsigned header_size;               /* disk_dump_header */
    unsigned status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr, nr_cpus;
    unsigned sub_size;                  /* kdump_sub_header */
    unsigned phys_base, dump_level, offset_vmcoreinfo, size_vmcoreinfo, offset_note,
             size_note, max_mapnr_64;
    unsigned word;                      /* a long: phys_base, size_vmcoreinfo, size_note */
} KdumpFields;

static const KdumpFields kdump_fields64 = {
    .header_size = KDUMP_HEADER64_SIZE, .status = 424, .block_size = 428,
    .sub_hdr_size = 432, .bitmap_blocks = 436, .max_mapnr = 440, .nr_cpus = 460,
    .sub_size = KDUMP_SUB_HEADER64_SIZE, .phys_base = 0, .dump_level = 8,
    .offset_vmcoreinfo = 32, .size_vmcoreinfo = 40, .offset_note = 48, .size_note = 56,
    .max_mapnr_64 = 96, .word = 8,
};

static const KdumpFields kdump_fields32 = {
    .header_size = KDUMP_HEADER32_SIZE, .status = 412, .block_size = 416,
    .sub_hdr_size = 420, .bitmap_blocks = 424, .max_mapnr = 428, .nr_cpus = 448,
    .sub_size = KDUMP_SUB_HEADER32_SIZE, .phys_base = 0, .dump_level = 4,
    .offset_vmcoreinfo = 20, .size_vmcoreinfo = 28, .offset_note = 32, .size_note = 40,
    .max_mapnr_64 = 72, .word = 4,
};

#endif
