"""dump-guest-memory's refusals and failures (issues 3 and 4): QEMU's rules with their exact
texts, write errors that fail the dump cleanly, and the INCOMPLETE flag of a raw kdump."""
import os
import socket
import subprocess
import time

import pytest

from dumpcheck import (DUMP_DH_COMPRESSED_INCOMPLETE, FORMAT_FLAG, KDUMP_FORMATS,
                       KDUMP_RAW_FORMATS, ElfCore, KdumpHeader, PipeReader, drain, dump,
                       dump_error, event_names, make_mem_file, send_fd,  # noqa: F401
                       start_vm, status)

MEM = 128 << 20
ALL_KDUMP = KDUMP_FORMATS + KDUMP_RAW_FORMATS


@pytest.fixture(scope='module')
def vm():
    """A running VM (-accel none keeps it cheap) for the argument checks."""
    v = start_vm(mem='128M', accel='none')
    yield v
    v.close()


@pytest.fixture
def q(vm):
    vm.qmp.events.clear()
    yield vm.qmp


def assert_untouched(q):
    """A refused request neither stops the VM nor starts a dump."""
    drain(q, 0.05)
    assert [n for n in event_names(q) if n in ('STOP', 'RESUME')] == []
    assert status(q) == 'running'
    assert q.cmd('query-dump')['status'] != 'active'


# (arguments, exact desc, whether the output file must not be created)
RULES = {
    'begin-without-length': ({'begin': 0}, "Parameter 'length' is missing", True),
    'length-without-begin': ({'length': 4096}, "Parameter 'begin' is missing", True),
    'zero-length': ({'begin': 0, 'length': 0}, "parameter 'length' expects a non-zero size",
                    True),
    'filter-beyond-ram': ({'begin': 1 << 44, 'length': 4096}, 'dump: no guest memory to dump',
                          False),
    'filter-just-past-ram': ({'begin': MEM, 'length': 1 << 20}, 'dump: no guest memory to dump',
                             False),
    'unknown-format': ({'format': 'bogus'}, "Parameter 'format' does not accept value 'bogus'",
                       True),
}


@pytest.mark.parametrize('rule', list(RULES))
def test_argument_rule(q, tmp_path, rule):
    args, desc, no_file = RULES[rule]
    path = tmp_path / 'out'
    err = dump_error(q, protocol=f'file:{path}', **args)
    assert err == {'class': 'GenericError', 'desc': desc}
    if no_file:
        assert not path.exists()
    assert_untouched(q)


def test_hmp_passes_begin_alone_on(q, tmp_path):
    """QEMU's HMP hands a begin without length to the QMP command, which refuses it."""
    path = tmp_path / 'out'
    assert q.hmp(f'dump-guest-memory {path} 0x1000').splitlines() == \
        ["Error: Parameter 'length' is missing"]
    assert q.hmp(f'dump-guest-memory -z {path} 0x1000').splitlines() == \
        ["Error: kdump-compressed format doesn't support paging or filter"]
    assert not path.exists()
    assert_untouched(q)


@pytest.mark.parametrize('protocol', ['foo:/x', '', 'File:/tmp/x', 'unix:/tmp/x'])
def test_protocol_must_be_file_or_fd(q, protocol):
    err = dump_error(q, protocol=protocol)
    assert err == {'class': 'GenericError',
                   'desc': "parameter 'protocol' must start with 'file:' or 'fd:'"}
    assert_untouched(q)


def test_unknown_fd_name(q):
    err = dump_error(q, protocol='fd:nosuch')
    assert err == {'class': 'GenericError',
                   'desc': "File descriptor named 'nosuch' has not been found"}
    assert_untouched(q)


def test_unopenable_path(q):
    err = dump_error(q, protocol='file:/nonexistent/dir/x')
    assert err == {'class': 'GenericError',
                   'desc': "Could not open '/nonexistent/dir/x': No such file or directory"}
    assert_untouched(q)


@pytest.mark.parametrize('fmt', ALL_KDUMP)
@pytest.mark.parametrize('how', ['paging', 'filter', 'begin-alone', 'length-alone'])
def test_kdump_refuses_paging_and_filter(q, tmp_path, fmt, how):
    """QEMU tests this before the begin/length pairing, so half a filter gets it too."""
    path = tmp_path / 'out'
    extra = {'paging': {'paging': True}, 'filter': {'begin': 0, 'length': 4096},
             'begin-alone': {'begin': 0}, 'length-alone': {'length': 4096}}[how]
    err = dump_error(q, protocol=f'file:{path}', format=fmt, **extra)
    assert err == {'class': 'GenericError',
                   'desc': "kdump-compressed format doesn't support paging or filter"}
    assert not path.exists()
    assert_untouched(q)


@pytest.mark.parametrize('fmt', KDUMP_RAW_FORMATS)
def test_raw_kdump_on_a_pipe(q, fmt):
    reader = PipeReader()
    try:
        reader.hand_to(q, 'rawpipe')
        err = dump_error(q, protocol='fd:rawpipe', format=fmt)
        # the fd was consumed and closed: the reader sees EOF at once, with no bytes
        assert reader.data(timeout=10) == b''
    finally:
        reader.close()
    assert err == {'class': 'GenericError', 'desc': 'kdump-raw formats require a seekable file'}
    assert_untouched(q)
    assert dump_error(q, protocol='fd:rawpipe', format=fmt)['desc'] == \
        "File descriptor named 'rawpipe' has not been found"


def test_named_fd_outlives_its_client(vm, tmp_path):
    """As QEMU's Monitor: an fd named with getfd belongs to the -qmp socket, not to the
    connection that passed it, so a later client can dump into it."""
    from qmp import QMPClient
    path = tmp_path / 'kept.elf'
    first = QMPClient(str(vm.qmp_path))
    try:
        with open(path, 'wb') as f:
            send_fd(first, 'kept', f.fileno())
    finally:
        first.close()
    second = QMPClient(str(vm.qmp_path))
    try:
        assert second.cmd('dump-guest-memory', paging=False, protocol='fd:kept') == {}
        # taken by that dump: gone for the next one
        assert second.execute('dump-guest-memory', {'paging': False,
                                                    'protocol': 'fd:kept'})['error'] == \
            {'class': 'GenericError', 'desc': "File descriptor named 'kept' has not been found"}
    finally:
        second.close()
    assert ElfCore(path).loads[0]['memsz'] > 0
    assert sum(p['filesz'] for p in ElfCore(path).loads) == MEM     # the whole guest
    vm.qmp.wait_event('DUMP_COMPLETED', timeout=30)    # the other tests' client saw it too
    drain(vm.qmp, 0.2)
    vm.qmp.events.clear()


def test_raw_kdump_on_a_socket(q):
    a, b = socket.socketpair()
    try:
        send_fd(q, 'rawsock', a.fileno())
        a.close()
        err = dump_error(q, protocol='fd:rawsock', format='kdump-raw-snappy')
        b.settimeout(10)
        assert b.recv(10) == b''      # closed by minivm, nothing written
    finally:
        a.close()
        b.close()
    assert err == {'class': 'GenericError', 'desc': 'kdump-raw formats require a seekable file'}
    assert_untouched(q)


def test_dump_while_one_is_active(q, tmp_path):
    reader = PipeReader(gated=True)
    try:
        reader.hand_to(q, 'gate')
        assert q.cmd('dump-guest-memory', paging=False, protocol='fd:gate', detach=True) == {}
        assert q.cmd('query-dump')['status'] == 'active'
        busy = {'class': 'GenericError', 'desc': 'There is a dump in process, please wait.'}
        assert dump_error(q, protocol=f'file:{tmp_path / "a"}') == busy
        assert dump_error(q, protocol=f'file:{tmp_path / "b"}', detach=True) == busy
        assert dump_error(q, protocol=f'file:{tmp_path / "c"}', format='kdump-raw-zstd') == busy
        out = q.hmp(f'dump-guest-memory {tmp_path / "d"}')
        assert out.splitlines() == ['Error: There is a dump in process, please wait.']
        # QEMU: neither stop nor cont while a dump reads guest memory; HMP stop is silent
        assert q.execute('stop')['error'] == busy
        assert q.execute('cont')['error'] == busy
        assert q.hmp('cont').splitlines() == ['Error: There is a dump in process, please wait.']
        assert q.hmp('stop') == ''
        assert status(q) == 'save-vm'
        assert not any((tmp_path / n).exists() for n in 'abcd')
        assert q.cmd('query-dump')['status'] == 'active'
        ev, data = reader.finish(q)
    finally:
        reader.close()
    assert ev['data']['result'] == {'total': MEM, 'status': 'completed', 'completed': MEM}
    drain(q, 0.2)
    assert 'DUMP_COMPLETED' not in event_names(q)
    assert len(data) == ElfCore(data=data).loads[0]['offset'] + MEM
    assert status(q) == 'running'


# ---------------------------------------------------------------- write errors

def check_failed_cleanly(q, err, before, expect_text):
    """Error reply, one DUMP_COMPLETED failed with the same text, query-dump failed, the run
    state as before (STOP/RESUME only for a running VM), and the monitor answering."""
    assert err['class'] == 'GenericError'
    assert expect_text in err['desc'], err
    ev = q.wait_event('DUMP_COMPLETED', timeout=30)
    assert ev['data']['result']['status'] == 'failed'
    assert ev['data']['error'] == err['desc']
    drain(q, 0.2)
    assert 'DUMP_COMPLETED' not in event_names(q)
    p = q.cmd('query-dump')
    assert p['status'] == 'failed' and p['completed'] <= p['total']
    assert status(q) == before
    names = [n for n in event_names(q) if n in ('STOP', 'RESUME')]
    assert names == (['STOP', 'RESUME'] if before == 'running' else [])


@pytest.mark.parametrize('fmt', ['elf', 'kdump-zlib', 'kdump-raw-zstd'])
@pytest.mark.parametrize('before', ['running', 'paused'])
def test_write_error_dev_full(make_vm, tmp_path, fmt, before):
    vm = make_vm(mem='128M')
    q = vm.qmp
    if before == 'paused':
        q.cmd('stop')
    q.events.clear()
    err = dump_error(q, protocol='file:/dev/full', format=fmt)
    check_failed_cleanly(q, err, before, 'No space left on device')
    # the dump subsystem is usable again
    q.events.clear()
    dump(q, tmp_path / 'ok', fmt)
    assert q.wait_event('DUMP_COMPLETED', timeout=30)['data']['result']['status'] == 'completed'
    assert status(q) == before


@pytest.mark.parametrize('fmt, error', [
    ('elf', 'dump: failed to save memory: No space left on device'),
    # the flattened header is written by the dump thread too, with QEMU's text
    ('kdump-zlib', 'dump: failed to write start flat header: No space left on device')])
def test_detached_write_error(make_vm, fmt, error):
    vm = make_vm(mem='128M')
    q = vm.qmp
    q.events.clear()
    assert q.cmd('dump-guest-memory', paging=False, protocol='file:/dev/full', detach=True,
                 format=fmt) == {}
    ev = q.wait_event('DUMP_COMPLETED', timeout=30)
    assert ev['data']['result']['status'] == 'failed'
    assert ev['data']['error'] == error
    drain(q, 0.3)
    assert 'DUMP_COMPLETED' not in event_names(q)
    assert q.cmd('query-dump')['status'] == 'failed'
    assert q.hmp('info dump').splitlines() == ['Status: failed']
    assert status(q) == 'running'
    names = [n for n in event_names(q) if n in ('STOP', 'RESUME')]
    assert names == ['STOP', 'RESUME']


def test_broken_pipe(make_vm):
    """A reader that went away: EPIPE fails the dump; minivm survives (no SIGPIPE death)."""
    vm = make_vm(mem='128M')
    q = vm.qmp
    r, w = os.pipe()
    os.close(r)
    try:
        send_fd(q, 'gone', w)
    finally:
        os.close(w)
    q.events.clear()
    err = dump_error(q, protocol='fd:gone')
    check_failed_cleanly(q, err, 'running', 'Broken pipe')
    assert vm.proc.poll() is None


@pytest.fixture
def mixed_vm(make_vm, tmp_path):
    """A guest whose 32 MiB of RAM (a -mem-path file) holds mixed pages: its dumps need far
    more than 2 MiB whatever the format."""
    make_mem_file(tmp_path / 'ram', 32 << 20)
    vm = make_vm('-mem-path', str(tmp_path / 'ram'), mem='32M', accel='none')
    vm.qmp.events.clear()
    return vm


@pytest.mark.parametrize('fmt', KDUMP_RAW_FORMATS)
def test_raw_kdump_incomplete_flag(small_tmpfs, mixed_vm, fmt):
    q = mixed_vm.qmp
    path = small_tmpfs / 'vmcore'
    err = dump_error(q, protocol=f'file:{path}', format=fmt)
    check_failed_cleanly(q, err, 'running', 'No space left on device')
    h = KdumpHeader(path)
    assert h.signature == b'KDUMP   '
    assert h.status == FORMAT_FLAG[fmt.rsplit('-', 1)[1]] | DUMP_DH_COMPRESSED_INCOMPLETE


@pytest.mark.parametrize('fmt', ['elf', 'kdump-zlib'])
def test_no_space_midway(small_tmpfs, mixed_vm, fmt):
    """ELF and flattened dumps that run out of space after the header fail cleanly too."""
    q = mixed_vm.qmp
    err = dump_error(q, protocol=f'file:{small_tmpfs / "vmcore"}', format=fmt)
    check_failed_cleanly(q, err, 'running', 'No space left on device')
    assert (small_tmpfs / 'vmcore').stat().st_size > 0


def test_detached_raw_kdump_runs_out_of_space(small_tmpfs, mixed_vm):
    q = mixed_vm.qmp
    path = small_tmpfs / 'vmcore'
    assert q.cmd('dump-guest-memory', paging=False, protocol=f'file:{path}', detach=True,
                 format='kdump-raw-zlib') == {}
    ev = q.wait_event('DUMP_COMPLETED', timeout=30)
    assert ev['data']['result']['status'] == 'failed'
    assert 'No space left on device' in ev['data']['error']
    assert q.cmd('query-dump')['status'] == 'failed'
    assert status(q) == 'running'
    h = KdumpHeader(path)
    assert h.status == FORMAT_FLAG['zlib'] | DUMP_DH_COMPRESSED_INCOMPLETE
