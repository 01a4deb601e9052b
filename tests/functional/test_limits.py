"""Limits and access (issue 8): many idle monitor connections, an oversized QMP message,
nesting beyond the limit, owner-only sockets and dump files under a permissive umask, and
dumps that fail midway always reporting their error."""
import contextlib
import json
import os
import resource
import socket
import stat
import time

import pytest

from dumpcheck import (assert_rss_flat, fd_count, vm_rss_kib, DUMP_DH_COMPRESSED_INCOMPLETE, FORMAT_FLAG, KdumpHeader, drain,
                       kvm_available, make_mem_file, mem_bytes, start_vm, status)
from qmp import HMPClient, QMPClient

QMP_MAX_MESSAGE = 16 << 20       # minivm's limit (monitor/qmp.c)
QMP_MAX_NESTING = 1024


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)




def wait_dump_done(q, timeout=60):
    """Poll query-dump until no dump is active (events of earlier dumps may still be in
    flight, so waiting for DUMP_COMPLETED could pick up a stale one)."""
    deadline = time.time() + timeout
    while True:
        p = q.cmd('query-dump')
        if p['status'] != 'active':
            return p
        assert time.time() < deadline, p
        time.sleep(0.01)


def replies_until(q, want_id, limit=8):
    """Read replies until the one with `want_id`; return (the others, that one)."""
    others = []
    while True:
        msg = q.recv_reply()
        if msg.get('id') == want_id:
            return others, msg
        others.append(msg)
        assert len(others) <= limit, others


@pytest.fixture(scope='module')
def vm(tmp_path_factory):
    """A cheap VM for the protocol limits: -accel none, 16 MiB, with an HMP monitor."""
    v = start_vm(mem='16M', accel='none', hmp=True)
    yield v
    v.close()


# ---------------------------------------------------------------- connections

def test_100_idle_connections_do_not_starve_the_monitor(vm):
    pid = vm.proc.pid
    base_fds = fd_count(pid)
    idle = []
    raw = []
    try:
        for i in range(100):
            kind = i % 4
            if kind == 0:        # connected, greeting never read
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(30)
                s.connect(str(vm.qmp_path))
                raw.append(s)
                continue
            c = QMPClient(str(vm.qmp_path), negotiate=(kind != 1), timeout=30)
            if kind == 3:        # negotiated, half a command sent
                c.send_raw(b'{"execute": "query-')
            idle.append((kind, c))
        t = time.monotonic()
        late = QMPClient(str(vm.qmp_path), timeout=10)
        assert late.cmd('query-status')['status'] == 'running'
        took = time.monotonic() - t
        assert took < 2.0, f'the 101st client waited {took:.2f} s'
        # the monitor also still answers HMP and the first client
        h = HMPClient(vm.hmp_path, timeout=10)
        assert h.run('info status').strip() == 'VM status: running'
        h.close()
        assert vm.qmp.cmd('query-status')['status'] == 'running'
        # events reach every negotiated idle client; the half command completes
        vm.qmp.cmd('stop')
        vm.qmp.cmd('cont')
        for kind, c in idle:
            if kind == 2:
                assert c.wait_event('RESUME', timeout=10)
            elif kind == 3:
                c.send_raw(b'status", "id": 3}\n')
                assert c.recv_reply() == {'return': {'status': 'running', 'singlestep': False,
                                                     'running': True}, 'id': 3}
            else:
                assert c.execute('query-status')['error']['desc'] == \
                    "Expecting capabilities negotiation with 'qmp_capabilities'"
        late.close()
    finally:
        for _, c in idle:
            c.close()
        for s in raw:
            s.close()
    drain(vm.qmp, 0.1)
    vm.qmp.events.clear()
    # every dropped connection was closed by minivm
    deadline = time.time() + 10
    while fd_count(pid) != base_fds and time.time() < deadline:
        time.sleep(0.05)
    assert fd_count(pid) == base_fds


# ---------------------------------------------------------------- message size and nesting

def oversized(kind):
    """Unterminated JSON of exactly QMP_MAX_MESSAGE + 1 bytes."""
    size = QMP_MAX_MESSAGE + 1
    if kind == 'string':
        head = b'{"execute": "query-status", "id": "'
        return head + b'a' * (size - len(head))
    if kind == 'array':
        head = b'{"execute": "query-status", "arguments": {"x": ['
        body = b'1,' * ((size - len(head)) // 2)
        return (head + body + b'1' * (size - len(head) - len(body)))
    return b'x' * size            # one bare token, no whitespace


@pytest.mark.parametrize('kind', ['string', 'array', 'token'])
def test_oversized_message(vm, kind):
    pid = vm.proc.pid
    rss0 = vm_rss_kib(pid)
    c = vm.connect()
    try:
        data = oversized(kind)
        assert len(data) == QMP_MAX_MESSAGE + 1
        c.send_raw(data)
        c.sock.settimeout(60)
        reply = c.recv_reply()
        assert reply['error']['class'] == 'GenericError', reply
        assert reply['error']['desc'], reply
        # the connection survives and answers the next command
        c.send_raw(b'\n{"execute": "query-status", "id": "after"}\n')
        others, msg = replies_until(c, 'after')
        assert all('error' in o for o in others), others
        assert msg['return']['status'] == 'running'
        assert vm.qmp.cmd('query-status')['status'] == 'running'
    finally:
        c.close()
    # the 16 MiB buffer went with the connection
    time.sleep(0.3)
    assert vm.qmp.cmd('query-version')['package'] == 'minivm'
    assert_rss_flat(rss0, vm_rss_kib(pid), 'after an oversized message')


def test_message_just_under_the_limit_is_accepted(vm):
    c = vm.connect()
    try:
        pad = 'p' * (QMP_MAX_MESSAGE - 100)
        c.send_raw(json.dumps({'execute': 'query-status', 'id': pad}).encode() + b'\n')
        c.sock.settimeout(60)
        reply = c.recv_reply()
        assert reply.get('id') == pad and reply['return']['status'] == 'running', \
            str(reply)[:200]
    finally:
        c.close()


def nested(depth, kind):
    if kind == 'array':
        return b'[' * depth + b']' * depth
    return b'{"a": ' * depth + b'1' + b'}' * depth


@pytest.mark.parametrize('kind', ['array', 'object'])
def test_nesting_limit(vm, kind):
    c = vm.connect()
    try:
        c.send_raw(nested(QMP_MAX_NESTING + 1, kind) + b'\n')
        c.sock.settimeout(30)
        reply = c.recv_reply()
        assert reply['error']['class'] == 'GenericError', reply
        assert 'nesting' in reply['error']['desc'].lower(), reply
        c.send_raw(b'\n{"execute": "query-status", "id": "after"}\n')
        others, msg = replies_until(c, 'after')
        assert all('error' in o for o in others), others
        assert msg['return']['status'] == 'running'
        # at the limit the message is parsed (and refused for what it is, not its depth)
        c.send_raw(nested(QMP_MAX_NESTING, kind) + b'\n')
        reply = c.recv_reply()
        assert reply['error']['class'] == 'GenericError', reply
        assert 'nesting' not in reply['error']['desc'].lower(), reply
        c.send_raw(b'{"execute": "query-status", "id": "again"}\n')
        others, msg = replies_until(c, 'again')
        assert msg['return']['status'] == 'running'
    finally:
        c.close()


# ---------------------------------------------------------------- owner-only files

@pytest.fixture(scope='module')
def open_vm(tmp_path_factory):
    """A VM started with umask 0: whatever it creates must restrict itself."""
    d = tmp_path_factory.mktemp('umask0')
    with umask(0):
        v = start_vm('-qmp', f'unix:{d / "second.sock"},server=on,wait=off',
                     mem='16M', accel='none', hmp=True, workdir=d / 'vm')
    yield v, d
    v.close()


def owner_only(path):
    mode = os.stat(path).st_mode
    return mode & 0o077 == 0


def test_unix_sockets_are_owner_only(open_vm):
    v, d = open_vm
    for path in (v.qmp_path, d / 'second.sock', v.hmp_path):
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode), path
        assert st.st_mode & 0o077 == 0, f'{path}: {oct(st.st_mode)}'
    # the serial log minivm created is owner-only too
    assert owner_only(v.serial_path), oct(os.stat(v.serial_path).st_mode)


def test_dump_files_are_owner_only(open_vm):
    v, d = open_vm
    q = v.qmp
    out = d / 'out'
    out.mkdir()
    out.chmod(0o777)
    made = []
    for fmt in ('elf', 'kdump-zlib', 'kdump-raw-snappy'):
        p = out / f'qmp-{fmt}'
        q.cmd('dump-guest-memory', paging=False, protocol=f'file:{p}', format=fmt)
        made.append(p)
    p = out / 'qmp-detached'
    q.cmd('dump-guest-memory', paging=False, protocol=f'file:{p}', detach=True)
    assert wait_dump_done(q)['status'] == 'completed'
    made.append(p)
    h = HMPClient(v.hmp_path)
    try:
        for flags, name in (('', 'hmp-elf'), ('-z -R', 'hmp-raw'), ('-d -l', 'hmp-detached')):
            assert h.run(f'dump-guest-memory {flags} {out / name}').strip() == ''
            made.append(out / name)
            assert wait_dump_done(q)['status'] == 'completed'
        assert h.run(f'pmemsave 0 4096 {out / "pmem"}').strip() == ''
        assert h.run(f'memsave 0x400000 4096 {out / "vmem"}').strip() == ''
        made += [out / 'pmem', out / 'vmem']
    finally:
        h.close()
    # a dump that fails still leaves no world-readable partial file behind
    assert q.execute('dump-guest-memory', {'paging': False,
                                           'protocol': f'file:{out / "x" / "y"}'})['error']
    for p in made:
        mode = os.stat(p).st_mode & 0o777
        assert mode == 0o600, f'{p.name}: {oct(mode)}'
    drain(q, 0.1)
    q.events.clear()


# ---------------------------------------------------------------- failures midway

def start_filled(tmp_path, mem='64M'):
    if kvm_available():
        return start_vm(mem=mem, smp=1)
    ram = make_mem_file(tmp_path / 'ram', mem_bytes(mem), zero_below=0x400000)
    return start_vm('-mem-path', str(ram), mem=mem, smp=1, accel='none')


FSIZE = 4 << 20


@pytest.mark.parametrize('fmt,detach', [('elf', False), ('kdump-raw-zlib', False),
                                        ('kdump-zlib', False), ('elf', True)],
                         ids=['elf', 'kdump-raw-zlib', 'kdump-zlib', 'elf-detached'])
def test_file_size_limit_midway(tmp_path, fmt, detach):
    """RLIMIT_FSIZE (ulimit -f, a quota-like limit) hit midway: write() fails with EFBIG and
    the kernel sends SIGXFSZ. minivm must survive it, report 'File too large' and keep the VM
    and monitor going (a raw kdump marked INCOMPLETE), like any other write error."""
    vm = start_filled(tmp_path)
    try:
        q = vm.qmp
        resource.prlimit(vm.proc.pid, resource.RLIMIT_FSIZE, (FSIZE, FSIZE))
        path = tmp_path / 'vmcore'
        q.events.clear()
        try:
            reply = q.execute('dump-guest-memory', {'paging': False, 'format': fmt,
                                                    'protocol': f'file:{path}',
                                                    'detach': detach})
            ev = q.wait_event('DUMP_COMPLETED', timeout=60)
        except EOFError:
            vm.proc.wait(10)
            pytest.fail(f'minivm died during the dump (exit status {vm.proc.returncode}): '
                        'SIGXFSZ is not ignored')
        if detach:
            assert reply == {'return': {}}
        else:
            assert reply['error']['class'] == 'GenericError', reply
            assert 'File too large' in reply['error']['desc'], reply
            assert ev['data']['error'] == reply['error']['desc']
        assert ev['data']['result']['status'] == 'failed'
        assert 'File too large' in ev['data']['error']
        assert q.cmd('query-dump')['status'] == 'failed'
        assert status(q) == 'running'
        assert vm.proc.poll() is None
        assert os.path.getsize(path) <= FSIZE
        if fmt.startswith('kdump-raw-'):
            assert KdumpHeader(path).status == FORMAT_FLAG['zlib'] | \
                DUMP_DH_COMPRESSED_INCOMPLETE
    finally:
        vm.close()


def test_hmp_reports_a_failed_dump(tmp_path):
    vm = start_vm(mem='16M', accel='none', hmp=True)
    try:
        q = vm.qmp
        h = HMPClient(vm.hmp_path)
        try:
            out = h.run('dump-guest-memory /dev/full')
            assert out.splitlines() == ['Error: dump: failed to save memory: '
                                        'No space left on device'], out
            out = h.run('dump-guest-memory -d -z /dev/full')
            assert out.strip() == '' or out.startswith('Error: '), out
            assert wait_dump_done(q)['status'] == 'failed'
            assert h.run('info dump').splitlines() == ['Status: failed']
            assert h.run('info status').strip() == 'VM status: running'
        finally:
            h.close()
    finally:
        vm.close()
