/*
 * Dump sinks: where a writer's bytes go. Small writes are coalesced into one
 * buffer and issued as large writes; large writes go straight from guest RAM.
 * Plain sinks write at the offset (pwrite) or sequentially (pipes, sockets);
 * flattened sinks wrap every write in a makedumpfile record {offset, size}
 * (big-endian), after a 4096-byte header, and end with the -1/-1 marker.
 */
#include "dump-internal.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SINK_BUF_SIZE (4u << 20)
#define DIRECT_ALIGN 4096
#define FLAT_HEADER_SIZE 4096
#define FLAT_SIGNATURE "makedumpfile"
#define FLAT_TYPE 1
#define FLAT_VERSION 1
#define SAVE_FAILED "dump: failed to save memory"

_Alignas(DIRECT_ALIGN) const uint8_t dump_zero_block[DUMP_ZERO_BLOCK];

/* Drop the first `done` bytes of iov[0..*n); returns the new first segment. */
static struct iovec *iov_advance(struct iovec *iov, int *n, size_t done)
{
    while (*n && done >= iov->iov_len) {
        done -= iov->iov_len;
        iov++;
        (*n)--;
    }
    if (*n) {
        iov->iov_base = (uint8_t *)iov->iov_base + done;
        iov->iov_len -= done;
    }
    return iov;
}

/* Close an output fd: a file system may report a write error only there (NFS,
 * quotas), and then the dump has failed like any other write. Linux frees the fd
 * even when close() is interrupted. */
static bool close_output(int *fd, GError **errp)
{
    int f = *fd;

    *fd = -1;
    if (f >= 0 && close(f) < 0 && errno != EINTR) {
        error_setg_errno(errp, errno, SAVE_FAILED);
        return false;
    }
    return true;
}

/*
 * Write-behind. A kdump file of a big guest is GiBs that the page cache would
 * otherwise take in dirty: every page of it a fresh page to allocate (on this
 * machine's kernel, memory freed a while ago costs a fault in the host again),
 * written back by the flusher on the cores the compressors use. So along the
 * output's sequential run, each DUMP_WRITE_BEHIND_WINDOW written starts its own
 * writeback and waits for the window before it, which then leaves the cache: the
 * output reuses the same few MiB of page cache. Writes behind the run (kdump
 * descriptors, headers) are left to the page cache; a write past it starts a new
 * run. Advisory: a file system that refuses turns it off; an I/O error fails.
 */
static bool write_behind(DumpSink *sink, off_t off, size_t len, GError **errp)
{
    if (!sink->write_behind || off < sink->wb_end) {
        return true;
    }
    if (off > sink->wb_end) {
        sink->wb_done = sink->wb_sched = off;
    }
    sink->wb_end = off + (off_t)len;
    if (sink->wb_end - sink->wb_sched < (off_t)DUMP_WRITE_BEHIND_WINDOW) {
        return true;
    }
    off_t sched = sink->wb_end & ~(off_t)(DIRECT_ALIGN - 1);
    if (sync_file_range(sink->fd, sink->wb_sched, sched - sink->wb_sched,
                        SYNC_FILE_RANGE_WRITE) < 0 ||
        (sink->wb_sched > sink->wb_done &&
         sync_file_range(sink->fd, sink->wb_done, sink->wb_sched - sink->wb_done,
                         SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                         SYNC_FILE_RANGE_WAIT_AFTER) < 0)) {
        if (errno == EIO || errno == ENOSPC) {
            error_setg_errno(errp, errno, SAVE_FAILED);
            return false;
        }
        sink->write_behind = false;
        return true;
    }
    if (sink->wb_sched > sink->wb_done &&
        posix_fadvise(sink->fd, sink->wb_done, sink->wb_sched - sink->wb_done,
                      POSIX_FADV_DONTNEED) != 0) {
        sink->write_behind = false;
    }
    sink->wb_done = sink->wb_sched;
    sink->wb_sched = sched;
    return true;
}

void dump_sink_enable_write_behind(DumpSink *sink)
{
    sink->write_behind = sink->regular;
}

/*
 * Write everything to a stream (pipe, socket, or a flattened file). The fd is
 * non-blocking: while the reader is not reading, wait in poll() for room or
 * for dump_sink_cancel(), so a stalled reader cannot hold the dump forever.
 */
static bool stream_writev(DumpSink *sink, struct iovec *iov, int n, const char *what,
                          GError **errp)
{
    while (n) {
        ssize_t w = writev(sink->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN) {
                error_setg_errno(errp, errno, "%s", what);
                return false;
            }
            struct pollfd p[2] = { { .fd = sink->fd, .events = POLLOUT },
                                   { .fd = sink->cancel_fd, .events = POLLIN } };
            if (poll(p, sink->cancel_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
                error_setg_errno(errp, errno, "dump: poll failed");
                return false;
            }
            if (p[1].revents & POLLIN) {
                error_setg(errp, "dump: cancelled");
                return false;
            }
            continue;
        }
        if (!write_behind(sink, sink->stream_off, (size_t)w, errp)) {
            return false;
        }
        sink->stream_off += w;
        iov = iov_advance(iov, &n, (size_t)w);
    }
    return true;
}

static bool stream_write(DumpSink *sink, const void *data, size_t len, const char *what,
                         GError **errp)
{
    struct iovec iov = { (void *)data, len };

    return stream_writev(sink, &iov, 1, what, errp);
}

/* Written before the first record, by the thread that writes the dump (a detached
 * dump reports a failure here through DUMP_COMPLETED, as QEMU does). */
static bool flat_start(DumpSink *sink, GError **errp)
{
    uint8_t hdr[FLAT_HEADER_SIZE] = { 0 };
    uint64_t type = GUINT64_TO_BE(FLAT_TYPE), version = GUINT64_TO_BE(FLAT_VERSION);
    if (sink->flat_started) {
        return true;
    }
    memcpy(hdr, FLAT_SIGNATURE, strlen(FLAT_SIGNATURE));
    memcpy(hdr + 16, &type, 8);
    memcpy(hdr + 24, &version, 8);
    if (!stream_write(sink, hdr, sizeof(hdr), "dump: failed to write start flat header",
                      errp)) {
        return false;
    }
    sink->flat_started = true;
    return true;
}

static bool flat_record(DumpSink *sink, const void *data, size_t len, uint64_t off,
                        GError **errp)
{
    int64_t head[2] = { (int64_t)GUINT64_TO_BE(off), (int64_t)GUINT64_TO_BE((uint64_t)len) };
    struct iovec iov[2] = { { head, sizeof(head) }, { (void *)data, len } };

    return flat_start(sink, errp) && stream_writev(sink, iov, 2, SAVE_FAILED, errp);
}

static bool direct_eligible(const DumpSink *sink, const struct iovec *iov, int n, off_t pos)
{
    uintptr_t bits = (uintptr_t)pos;

    for (int i = 0; i < n; i++) {
        bits |= (uintptr_t)iov[i].iov_base | iov[i].iov_len;
    }
    return sink->direct_fd >= 0 && (bits & (DIRECT_ALIGN - 1)) == 0;
}

/* iov[0..n) (len bytes, consumed) to a seekable file at pos: around the page cache
 * when every piece is block aligned and the file system allows it. */
static bool seekable_writev(DumpSink *sink, struct iovec *iov, int n, size_t len, off_t pos,
                            GError **errp)
{
    if (direct_eligible(sink, iov, n, pos)) {
        ssize_t w = pwritev(sink->direct_fd, iov, n, pos);
        if (w == (ssize_t)len) {
            return true;
        }
        /* EINVAL and friends: the file system refuses O_DIRECT; short writes: finish
         * through the page cache. Either way, stop using the direct path. */
        close_output(&sink->direct_fd, NULL);  /* its writes were synchronous */
        if (w > 0) {
            iov = iov_advance(iov, &n, (size_t)w);
            pos += w;
        }
    }
    while (n) {
        ssize_t w = pwritev(sink->fd, iov, n, pos);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            error_setg_errno(errp, errno, SAVE_FAILED);
            return false;
        }
        if (!write_behind(sink, pos, (size_t)w, errp)) {
            return false;
        }
        iov = iov_advance(iov, &n, (size_t)w);
        pos += w;
    }
    return true;
}

/* iov[0..n) (consumed) at offset `off` of the dump, however the sink writes. */
static bool raw_writev(DumpSink *sink, struct iovec *iov, int n, uint64_t off, GError **errp)
{
    size_t len = 0;

    for (int i = 0; i < n; i++) {
        len += iov[i].iov_len;
    }
    if (!len) {
        return true;
    }
    sink->end = MAX(sink->end, off + len);
    if (sink->flattened) {
        for (int i = 0; i < n; off += iov[i].iov_len, i++) {
            if (!flat_record(sink, iov[i].iov_base, iov[i].iov_len, off, errp)) {
                return false;
            }
        }
        return true;
    }
    if (!sink->seekable) {
        return stream_writev(sink, iov, n, SAVE_FAILED, errp);
    }
    return seekable_writev(sink, iov, n, len, sink->base + (off_t)off, errp);
}

static bool raw_write(DumpSink *sink, const void *data, size_t len, uint64_t off,
                      GError **errp)
{
    struct iovec iov = { (void *)data, len };

    return raw_writev(sink, &iov, 1, off, errp);
}

bool dump_sink_writev(DumpSink *sink, struct iovec *iov, int n, GError **errp)
{
    uint64_t off = sink->pos;

    if (!dump_sink_flush(sink, errp)) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        sink->pos += iov[i].iov_len;
    }
    return raw_writev(sink, iov, n, off, errp);
}

void dump_sink_enable_direct(DumpSink *sink)
{
    if (!sink->sparse || sink->direct_fd >= 0) {
        return;
    }
    g_autofree char *path = g_strdup_printf("/proc/self/fd/%d", sink->fd);
    sink->direct_fd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
}

/* From the fd's status flags and file position (lseek: -1 when there is none). */
static bool flags_seekable(int flags, off_t cur)
{
    return flags >= 0 && !(flags & O_APPEND) && cur >= 0;
}

bool dump_sink_fd_seekable(int fd)
{
    return flags_seekable(fcntl(fd, F_GETFL), lseek(fd, 0, SEEK_CUR));
}

bool dump_sink_open(DumpSink *sink, int fd, bool flattened, GError **errp)
{
    struct stat st;

    memset(sink, 0, sizeof(*sink));
    sink->fd = fd;
    sink->direct_fd = -1;
    sink->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sink->cancel_fd < 0) {
        error_setg_errno(errp, errno, "dump: cannot create an eventfd");
        return false;
    }
    sink->flattened = flattened;
    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "dump: cannot stat the output");
        return false;
    }
    int flags = fcntl(fd, F_GETFL);
    off_t cur = lseek(fd, 0, SEEK_CUR);
    sink->regular = S_ISREG(st.st_mode);
    sink->seekable = !flattened && flags_seekable(flags, cur);
    sink->base = sink->seekable ? cur : 0;
    sink->stream_off = flags >= 0 && (flags & O_APPEND) ? st.st_size : cur;
    sink->sparse = sink->seekable && sink->regular && st.st_size <= cur;
    if (posix_memalign((void **)&sink->buf, DIRECT_ALIGN, SINK_BUF_SIZE)) {
        error_setg(errp, "dump: out of memory for the output buffer");
        return false;
    }
    if (!sink->seekable) {
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
            error_setg_errno(errp, errno, "dump: cannot make the output non-blocking");
            return false;
        }
    }
    return true;
}

bool dump_sink_flush(DumpSink *sink, GError **errp)
{
    size_t len = sink->buf_len;

    sink->buf_len = 0;
    return raw_write(sink, sink->buf, len, sink->buf_pos, errp);
}

bool dump_sink_write(DumpSink *sink, const void *data, size_t len, GError **errp)
{
    if (sink->buf_len && sink->buf_pos + sink->buf_len != sink->pos) {
        if (!dump_sink_flush(sink, errp)) {
            return false;
        }
    }
    if (len >= SINK_BUF_SIZE / 2) {
        if (!dump_sink_flush(sink, errp) || !raw_write(sink, data, len, sink->pos, errp)) {
            return false;
        }
        sink->pos += len;
        return true;
    }
    if (sink->buf_len + len > SINK_BUF_SIZE && !dump_sink_flush(sink, errp)) {
        return false;
    }
    if (!sink->buf_len) {
        sink->buf_pos = sink->pos;
    }
    memcpy(sink->buf + sink->buf_len, data, len);
    sink->buf_len += len;
    sink->pos += len;
    return true;
}

bool dump_sink_seek(DumpSink *sink, uint64_t off, GError **errp)
{
    if (!dump_sink_flush(sink, errp)) {
        return false;
    }
    sink->pos = off;
    return true;
}

void dump_sink_discard(DumpSink *sink)
{
    sink->buf_len = 0;
}

bool dump_sink_pwrite(DumpSink *sink, const void *data, size_t len, uint64_t off,
                      GError **errp)
{
    return dump_sink_flush(sink, errp) && raw_write(sink, data, len, off, errp);
}

bool dump_sink_skip_zeros(DumpSink *sink, uint64_t len, GError **errp)
{
    if (sink->sparse) {
        if (!dump_sink_flush(sink, errp)) {
            return false;
        }
        sink->pos += len;
        sink->end = MAX(sink->end, sink->pos);
        return true;
    }
    while (len) {
        size_t n = (size_t)MIN(len, sizeof(dump_zero_block));
        if (!dump_sink_write(sink, dump_zero_block, n, errp)) {
            return false;
        }
        len -= n;
    }
    return true;
}

bool dump_sink_finish(DumpSink *sink, GError **errp)
{
    if (!dump_sink_flush(sink, errp)) {
        return false;
    }
    if (sink->flattened) {
        int64_t marker[2] = { -1, -1 };
        if (!flat_start(sink, errp) ||
            !stream_write(sink, marker, sizeof(marker), SAVE_FAILED, errp)) {
            return false;
        }
    } else if (sink->sparse && ftruncate(sink->fd, sink->base + (off_t)sink->end) < 0) {
        error_setg_errno(errp, errno, "dump: failed to set the size of the output");
        return false;
    }
    return close_output(&sink->direct_fd, errp) && close_output(&sink->fd, errp);
}

void dump_sink_cancel(DumpSink *sink)
{
    uint64_t one = 1;

    if (sink->cancel_fd >= 0 && write(sink->cancel_fd, &one, sizeof(one)) < 0) {
        /* the counter cannot overflow here; nothing else can fail */
    }
}

void dump_sink_close(DumpSink *sink)
{
    if (sink->cancel_fd >= 0) {
        close(sink->cancel_fd);
        sink->cancel_fd = -1;
    }
    free(sink->buf);
    sink->buf = NULL;
    /* after dump_sink_finish, nothing is left; after a failure, its error is set */
    close_output(&sink->direct_fd, NULL);
    close_output(&sink->fd, NULL);
}
