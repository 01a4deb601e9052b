"""Faults during detached dumps (issue 8, "Faults"): closefd and a client disconnect while the
dump writes, dump-cancel at several points (QMP and HMP, ELF and kdump, running and paused
VMs), and no fd or memory leak across a series of failed and cancelled dumps.

The fill-up, broken-pipe and quit-during-a-dump faults live in test_dump_errors.py."""
import json
import os
import socket
import threading
import time

import pytest

from dumpcheck import (assert_rss_flat, fd_count, vm_rss_kib, DUMP_DH_COMPRESSED_INCOMPLETE, FORMAT_FLAG, ElfCore, KdumpHeader,
                       PipeReader, codec_of, drain, dump, dump_error, event_names, kvm_available,
                       make_mem_file, mem_bytes, send_fd, start_vm, status)
from qmp import HMPClient

BIG = '512M'            # the guest of the dump-cancel tests (issue 8: 512 MiB to 1 GiB)
BIG_BYTES = mem_bytes(BIG)
SMALL = '64M'
SMALL_BYTES = mem_bytes(SMALL)
CANCELLED = 'dump: cancelled'


def start_guest(workdir, mem, **kw):
    """A running guest with filled RAM: the demo guest under KVM, otherwise -accel none over
    a -mem-path file of zero, text and random pages."""
    if kvm_available():
        return start_vm(mem=mem, smp=1, **kw)
    ram = make_mem_file(os.path.join(workdir, 'ram'), mem_bytes(mem), zero_below=0x400000)
    return start_vm('-mem-path', str(ram), mem=mem, smp=1, accel='none', **kw)



def fd_table(pid):
    out = {}
    for name in os.listdir(f'/proc/{pid}/fd'):
        try:
            out[int(name)] = os.readlink(f'/proc/{pid}/fd/{name}')
        except OSError:
            pass
    return out


def settle_fd_count(pid, want, timeout=10):
    """minivm closes a dropped client's socket when its main loop sees the hang-up: wait for
    the count to come back to `want` (or give up and return what is there)."""
    deadline = time.time() + timeout
    while True:
        n = fd_count(pid)
        if n == want or time.time() > deadline:
            return n
        time.sleep(0.05)


def stable_fd_table(pid, timeout=10):
    """The fd table once it stopped changing (dropped clients are closed asynchronously)."""
    deadline = time.time() + timeout
    last = fd_table(pid)
    while time.time() < deadline:
        time.sleep(0.3)
        now = fd_table(pid)
        if now == last:
            break
        last = now
    return last



class PartialReader:
    """The read end of a pipe: reads `first` bytes, then stops until release(), then reads to
    EOF. A detached dump into it has completed > 0 yet cannot finish until released."""

    def __init__(self, first):
        self.r, self.w = os.pipe()
        self.first = first
        self.got = 0
        self.gate = threading.Event()
        self.reached = threading.Event()
        self.total = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.total < self.first:
            data = os.read(self.r, min(1 << 20, self.first - self.total))
            if not data:
                break
            self.total += len(data)
        self.reached.set()
        self.gate.wait()
        while True:
            data = os.read(self.r, 1 << 20)
            if not data:
                break
            self.total += len(data)
        os.close(self.r)

    def hand_to(self, q, name):
        send_fd(q, name, self.w)
        os.close(self.w)
        self.w = None

    def finish(self, timeout=60):
        """Read to EOF; returns the byte count (EOF proves minivm closed its end)."""
        self.gate.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), 'minivm never closed the pipe'
        return self.total

    def close(self):
        self.gate.set()
        if self.w is not None:
            os.close(self.w)
            self.w = None


def wait_progress(q, timeout=60):
    """Poll query-dump until the active dump has written something; returns the last answer
    (which may say the dump has already ended)."""
    deadline = time.time() + timeout
    while True:
        p = q.cmd('query-dump')
        if p['status'] != 'active' or p['completed'] > 0:
            return p
        assert time.time() < deadline, f'no progress: {p}'
        time.sleep(0.002)


def check_cancelled(q, before, total):
    """DUMP_COMPLETED with the cancel error, query-dump failed, the run state as before (STOP
    then RESUME for a running VM, nothing for a paused one), the monitor answering."""
    ev = q.wait_event('DUMP_COMPLETED', timeout=60)
    data = ev['data']
    assert data['result']['status'] == 'failed', data
    assert data['error'] == CANCELLED, data
    assert data['result']['total'] == total
    assert data['result']['completed'] < total, data
    drain(q, 0.2)
    assert 'DUMP_COMPLETED' not in event_names(q)
    p = q.cmd('query-dump')
    assert p['status'] == 'failed', p
    assert p['total'] == total and p['completed'] == data['result']['completed']
    assert status(q) == before
    names = [n for n in event_names(q) if n in ('STOP', 'RESUME')]
    assert names == (['STOP', 'RESUME'] if before == 'running' else []), names
    assert q.cmd('query-version')['package'] == 'minivm'
    return data


# ---------------------------------------------------------------- dump-cancel

@pytest.fixture(scope='module')
def big(tmp_path_factory):
    d = tmp_path_factory.mktemp('cancel')
    vm = start_guest(d, BIG, hmp=True)
    hmp = HMPClient(vm.hmp_path)
    yield {'vm': vm, 'q': vm.qmp, 'hmp': hmp, 'dir': d}
    hmp.close()
    vm.close()


@pytest.fixture
def cancel_env(big):
    q = big['q']
    yield big
    # leave the VM running and idle for the next case
    if q.cmd('query-dump')['status'] == 'active':
        q.cmd('dump-cancel')
        q.wait_event('DUMP_COMPLETED', timeout=60)
    if status(q) == 'paused':
        q.cmd('cont')
    q.events.clear()


def do_cancel(env, via):
    if via == 'qmp':
        assert env['q'].cmd('dump-cancel') == {}
    else:
        assert env['hmp'].run('dump-cancel').strip() == ''


def enter_state(q, before):
    if before == 'paused':
        q.cmd('stop')
    assert status(q) == before
    drain(q, 0.05)
    q.events.clear()


CANCEL_CASES = [
    # format, where the cancel lands, run state before, monitor
    ('elf', 'right-away', 'running', 'qmp'),
    ('elf', 'right-away', 'paused', 'hmp'),
    ('elf', 'midway', 'running', 'hmp'),
    ('elf', 'midway', 'paused', 'qmp'),
    ('kdump-raw-zlib', 'right-away', 'running', 'hmp'),
    ('kdump-raw-zlib', 'midway', 'running', 'qmp'),
    ('kdump-raw-lzo', 'midway', 'paused', 'hmp'),
    ('kdump-zstd', 'midway', 'running', 'qmp'),
]


@pytest.mark.parametrize('fmt,point,before,via', CANCEL_CASES,
                         ids=['-'.join(c) for c in CANCEL_CASES])
def test_dump_cancel(cancel_env, fmt, point, before, via):
    env = cancel_env
    q = env['q']
    enter_state(q, before)
    path = env['dir'] / f'{fmt}-{point}-{before}'
    if point == 'right-away':
        # the cancel is in the same write as the dump: it lands before any progress
        cmd = {'execute': 'dump-guest-memory', 'id': 'd',
               'arguments': {'paging': False, 'protocol': f'file:{path}', 'format': fmt,
                             'detach': True}}
        wire = json.dumps(cmd).encode() + b'\n'
        if via == 'qmp':
            wire += b'{"execute": "dump-cancel", "id": "c"}\n'
            q.send_raw(wire)
            assert q.recv_reply() == {'return': {}, 'id': 'd'}
            assert q.recv_reply() == {'return': {}, 'id': 'c'}
        else:
            q.send_raw(wire)
            assert q.recv_reply() == {'return': {}, 'id': 'd'}
            do_cancel(env, via)
    elif fmt == 'elf':
        # a pipe whose reader stops after 24 MiB: the dump has progressed, cannot finish
        reader = PartialReader(24 << 20)
        try:
            reader.hand_to(q, 'slow')
            assert q.cmd('dump-guest-memory', paging=False, protocol='fd:slow',
                         detach=True) == {}
            assert reader.reached.wait(60)
            p = wait_progress(q)
            assert p['status'] == 'active' and 0 < p['completed'] < BIG_BYTES, p
            do_cancel(env, via)
            got = reader.finish()
        finally:
            reader.close()
        assert got < BIG_BYTES
    else:
        # a file: poll until the dump has written pages, then cancel while it still runs
        for attempt in range(3):
            assert q.cmd('dump-guest-memory', paging=False, protocol=f'file:{path}',
                         format=fmt, detach=True) == {}
            p = wait_progress(q)
            if p['status'] == 'active':
                break
            q.wait_event('DUMP_COMPLETED', timeout=60)   # finished first: a faster machine
            drain(q, 0.05)
            q.events.clear()
        else:
            pytest.fail('every dump finished before it could be cancelled')
        do_cancel(env, via)
    data = check_cancelled(q, before, BIG_BYTES)
    if point == 'midway':
        assert data['result']['completed'] > 0
    if fmt.startswith('kdump-raw-'):
        h = KdumpHeader(path)
        assert h.signature == b'KDUMP   '
        assert h.status == FORMAT_FLAG[codec_of(fmt)] | DUMP_DH_COMPRESSED_INCOMPLETE, \
            hex(h.status)
    # the dump subsystem and the HMP monitor still work
    assert env['hmp'].run('info dump').splitlines() == ['Status: failed']
    assert env['hmp'].run('info status').strip().startswith('VM status: ')
    if path.exists():
        path.unlink()


@pytest.mark.parametrize('fmt', ['elf', 'kdump-raw-snappy'])
def test_dump_cancel_after_it_finished(cancel_env, fmt):
    env = cancel_env
    q = env['q']
    enter_state(q, 'running')
    path = env['dir'] / f'done-{fmt}'
    assert q.cmd('dump-guest-memory', paging=False, protocol=f'file:{path}', format=fmt,
                 detach=True) == {}
    ev = q.wait_event('DUMP_COMPLETED', timeout=120)
    assert ev['data'] == {'result': {'total': BIG_BYTES, 'status': 'completed',
                                     'completed': BIG_BYTES}}
    reply = q.execute('dump-cancel')
    assert reply == {'error': {'class': 'GenericError', 'desc': 'No dump in progress'}}
    assert env['hmp'].run('dump-cancel').splitlines() == ['Error: No dump in progress']
    # nothing changed: the result stays completed, no second event, the VM still runs
    drain(q, 0.2)
    assert 'DUMP_COMPLETED' not in event_names(q)
    assert q.cmd('query-dump') == {'status': 'completed', 'completed': BIG_BYTES,
                                   'total': BIG_BYTES}
    assert status(q) == 'running'
    if fmt.startswith('kdump-raw-'):
        assert KdumpHeader(path).status == FORMAT_FLAG['snappy']
    else:
        assert sum(p['memsz'] for p in ElfCore(path).loads) == BIG_BYTES
    path.unlink()


# ---------------------------------------------------------------- closefd, disconnect

@pytest.fixture(scope='module')
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp('small')
    vm = start_guest(d, SMALL, hmp=True)
    yield {'vm': vm, 'q': vm.qmp, 'dir': d}
    vm.close()


@pytest.fixture
def small_env(small):
    small['q'].events.clear()
    yield small
    q = small['q']
    if q.cmd('query-dump')['status'] == 'active':
        q.cmd('dump-cancel')
        q.wait_event('DUMP_COMPLETED', timeout=60)
    if status(q) == 'paused':
        q.cmd('cont')
    q.events.clear()


def test_closefd_while_a_detached_dump_writes(small_env):
    """The dump owns the fd once it started: closefd says not found; the dump completes."""
    q = small_env['q']
    reader = PipeReader(gated=True)
    try:
        reader.hand_to(q, 'out')
        assert q.cmd('dump-guest-memory', paging=False, protocol='fd:out', detach=True) == {}
        assert q.cmd('query-dump')['status'] == 'active'
        reply = q.execute('closefd', {'fdname': 'out'})
        assert reply == {'error': {'class': 'GenericError',
                                   'desc': "File descriptor named 'out' not found"}}
        assert q.cmd('query-dump')['status'] == 'active'
        ev, data = reader.finish(q)
    finally:
        reader.close()
    assert ev['data'] == {'result': {'total': SMALL_BYTES, 'status': 'completed',
                                     'completed': SMALL_BYTES}}
    core = ElfCore(data=data)
    assert len(data) == core.loads[0]['offset'] + SMALL_BYTES
    assert status(q) == 'running'


def test_closefd_of_a_file_fd_during_a_kdump(small_env):
    q = small_env['q']
    path = small_env['dir'] / 'viafd.kdump'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        send_fd(q, 'file', fd)
    finally:
        os.close(fd)
    assert q.cmd('dump-guest-memory', paging=False, protocol='fd:file', detach=True,
                 format='kdump-raw-zlib') == {}
    reply = q.execute('closefd', {'fdname': 'file'})
    assert reply['error']['desc'] == "File descriptor named 'file' not found"
    ev = q.wait_event('DUMP_COMPLETED', timeout=60)
    assert ev['data'] == {'result': {'total': SMALL_BYTES, 'status': 'completed',
                                     'completed': SMALL_BYTES}}
    h = KdumpHeader(path)
    assert h.status == FORMAT_FLAG['zlib'] and h.max_mapnr_64 == SMALL_BYTES // 4096
    path.unlink()


def test_client_that_started_the_dump_disconnects(small_env):
    """The starter goes away mid-dump (leaving a getfd fd unused): the dump completes, a second
    negotiated client sees DUMP_COMPLETED and query-dump says completed; a client that never
    negotiated gets no event. The unused fd stays with the monitor, as in QEMU, until another
    client's closefd."""
    vm, q = small_env['vm'], small_env['q']
    observer = vm.connect()
    silent = vm.connect(negotiate=False)
    starter = vm.connect()
    reader = PipeReader(gated=True)
    try:
        reader.hand_to(starter, 'out')
        r, w = os.pipe()
        send_fd(starter, 'unused', w)
        os.close(w)
        assert starter.cmd('dump-guest-memory', paging=False, protocol='fd:out',
                           detach=True) == {}
        starter.sock.shutdown(socket.SHUT_RDWR)
        starter.close()
        # the unused fd belongs to the monitor, not to the connection: still open
        os.set_blocking(r, False)
        time.sleep(0.2)
        with pytest.raises(BlockingIOError):
            os.read(r, 1)
        assert observer.cmd('closefd', fdname='unused') == {}
        deadline = time.time() + 10
        while True:
            try:
                assert os.read(r, 1) == b''
                break
            except BlockingIOError:
                assert time.time() < deadline, 'the unused getfd fd was never closed'
                time.sleep(0.05)
        os.close(r)
        assert observer.cmd('query-dump')['status'] == 'active'
        ev, data = reader.finish(observer)
    finally:
        reader.close()
    assert ev['data'] == {'result': {'total': SMALL_BYTES, 'status': 'completed',
                                     'completed': SMALL_BYTES}}
    assert len(data) == ElfCore(data=data).loads[0]['offset'] + SMALL_BYTES
    assert observer.cmd('query-dump') == {'status': 'completed', 'completed': SMALL_BYTES,
                                          'total': SMALL_BYTES}
    assert status(observer) == 'running'
    assert q.wait_event('DUMP_COMPLETED', timeout=10)['data']['result']['status'] == 'completed'
    silent.sock.settimeout(0.3)
    with pytest.raises((socket.timeout, TimeoutError)):
        silent.recv()
    observer.close()
    silent.close()


# ---------------------------------------------------------------- leaks

def failure_series(env, rounds=1):
    """Failed, refused and cancelled dumps through every path that owns an fd."""
    vm, q, d = env['vm'], env['q'], env['dir']
    hmp = HMPClient(vm.hmp_path)
    try:
        for _ in range(rounds):
            for fmt in ('elf', 'kdump-zlib', 'kdump-raw-zstd'):
                err = dump_error(q, protocol='file:/dev/full', format=fmt)
                assert 'No space left on device' in err['desc']
                q.wait_event('DUMP_COMPLETED', timeout=60)
            # detached failures: reply {}, then DUMP_COMPLETED with the error
            for fmt in ('elf', 'kdump-snappy'):
                assert q.execute('dump-guest-memory', {
                    'paging': False, 'protocol': 'file:/dev/full', 'detach': True,
                    'format': fmt}) == {'return': {}}
                ev = q.wait_event('DUMP_COMPLETED', timeout=60)
                assert ev['data']['result']['status'] == 'failed'
            # broken pipe
            r, w = os.pipe()
            os.close(r)
            send_fd(q, 'gone', w)
            os.close(w)
            assert 'Broken pipe' in dump_error(q, protocol='fd:gone')['desc']
            q.wait_event('DUMP_COMPLETED', timeout=60)
            # refused before the start: raw kdump on a pipe, unknown name, bad path
            r, w = os.pipe()
            send_fd(q, 'pipe', w)
            os.close(w)
            dump_error(q, protocol='fd:pipe', format='kdump-raw-lzo')
            os.close(r)
            dump_error(q, protocol='fd:nosuch')
            dump_error(q, protocol=f'file:{d}/no/such/dir')
            # getfd then closefd; getfd then a client that leaves
            r, w = os.pipe()
            send_fd(q, 'kept', w)
            q.cmd('closefd', fdname='kept')
            os.close(r)
            os.close(w)
            other = vm.connect()
            r, w = os.pipe()
            send_fd(other, 'left', w)
            other.close()
            os.close(r)
            os.close(w)
            # cancelled: a stalled pipe (QMP) and a raw kdump file (HMP)
            reader = PipeReader(gated=True)
            reader.hand_to(q, 'stall')
            q.cmd('dump-guest-memory', paging=False, protocol='fd:stall', detach=True)
            q.cmd('dump-cancel')
            assert q.wait_event('DUMP_COMPLETED', timeout=60)['data']['error'] == CANCELLED
            reader.data()
            reader.close()
            out = hmp.run(f'dump-guest-memory -d -z -R {d}/cancel.kdump')
            assert out.strip() == ''
            hmp.run('dump-cancel')
            assert q.wait_event('DUMP_COMPLETED', timeout=60)['data']['result']['status'] \
                in ('failed', 'completed')
            assert hmp.run('dump-cancel').strip() == 'Error: No dump in progress'
            # a sync HMP dump that fails
            assert hmp.run('dump-guest-memory /dev/full').startswith('Error: ')
            q.wait_event('DUMP_COMPLETED', timeout=60)
    finally:
        hmp.close()
    drain(q, 0.1)
    q.events.clear()


def good_dumps(env, count):
    q, d = env['q'], env['dir']
    fmts = ['elf', 'kdump-zlib', 'kdump-raw-snappy', 'kdump-lzo', 'kdump-raw-zstd']
    for i in range(count):
        fmt = fmts[i % len(fmts)]
        dump(q, d / 'good', fmt)
        ev = q.wait_event('DUMP_COMPLETED', timeout=60)
        assert ev['data']['result']['status'] == 'completed'
    (d / 'good').unlink()
    drain(q, 0.05)
    q.events.clear()


def test_no_fd_leak(small_env):
    vm = small_env['vm']
    pid = vm.proc.pid
    good_dumps(small_env, 2)
    failure_series(small_env)               # warm-up: every path once
    before = stable_fd_table(pid)
    failure_series(small_env, rounds=3)
    after_n = settle_fd_count(pid, len(before))
    after = fd_table(pid)
    assert after_n == len(before), {'before': before, 'after': after}
    assert vm.proc.poll() is None
    assert small_env['q'].cmd('query-dump')['status'] in ('failed', 'completed')


def test_no_memory_growth(small_env):
    pid = small_env['vm'].proc.pid
    good_dumps(small_env, 2)
    rss2 = vm_rss_kib(pid)
    good_dumps(small_env, 18)
    failure_series(small_env)
    rss20 = vm_rss_kib(pid)
    assert_rss_flat(rss2, rss20, 'after 2 and after 20 dumps')
