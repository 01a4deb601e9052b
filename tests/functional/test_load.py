"""Load (issue 8): N detached dumps in a row while 4 QMP clients poll query-dump at about
100 Hz and an HMP client runs `info dump` in a loop. Every dump completes and is readable,
every poller sees every DUMP_COMPLETED, and minivm's fd count and RSS stay flat.

N is the issue's 200: the guest is small (16 MiB: the KVM demo guest, or -accel none over a
-mem-path file of zero, text and random pages without KVM), so a dump takes tens of
milliseconds and the run stays around 15-30 s on a 2-core machine."""
import re
import shutil
import subprocess
import threading
import time

import pytest

from dumpcheck import (assert_rss_flat, fd_count, vm_rss_kib, KdumpHeader, ElfCore, MemImage, FORMAT_FLAG, codec_of, drain,
                       is_flattened, kdumpfile_open, kdumpfile_page, kvm_available,
                       make_mem_file, missing_reader, pmemsave, reassemble, start_vm)
from qmp import HMPClient, QMPClient

N = 200
MEM = '16M'
MEM_BYTES = 16 << 20
POLLERS = 4
POLL_HZ = 100
FORMATS = ['elf', 'kdump-zlib', 'kdump-raw-lzo', 'kdump-snappy', 'kdump-raw-zstd',
           'kdump-raw-zlib', 'kdump-lzo', 'kdump-raw-snappy']
SPOT_EVERY = 23          # keep and check every 23rd dump: every format gets checked
RSS_MARGIN_KIB = 8 * 1024




class Poller(threading.Thread):
    """A QMP client that asks query-dump about POLL_HZ times a second and counts the
    DUMP_COMPLETED events it receives in between."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.q = QMPClient(path, timeout=60)
        self.stop = threading.Event()
        self.polls = 0
        self.statuses = set()
        self.errors = []

    def run(self):
        period = 1.0 / POLL_HZ
        try:
            while not self.stop.is_set():
                t = time.time()
                p = self.q.cmd('query-dump')
                self.polls += 1
                self.statuses.add(p['status'])
                if not 0 <= p['completed'] <= p['total']:
                    self.errors.append(p)
                time.sleep(max(0.0, period - (time.time() - t)))
        except Exception as e:       # reported by the test
            self.errors.append(repr(e))

    def completed_events(self):
        return [e for e in self.q.events if e['event'] == 'DUMP_COMPLETED']


class HmpLooper(threading.Thread):
    def __init__(self, path):
        super().__init__(daemon=True)
        self.h = HMPClient(path, timeout=60)
        self.stop = threading.Event()
        self.runs = 0
        self.bad = []

    def run(self):
        try:
            while not self.stop.is_set():
                out = self.h.run('info dump')
                self.runs += 1
                if not re.fullmatch(r'Status: (none|completed)\r?\n|'
                                    r'Status: active\r?\n(Finished: \d+\.\d\d %\r?\n)?', out):
                    self.bad.append(out)
                time.sleep(0.002)
        except Exception as e:
            self.bad.append(repr(e))


def check_readable(path, fmt, mem, tmp_path):
    """The dump opens in a real reader and carries the guest's pages."""
    pfns = [0, 0x400, 0x401, 0x800, 0x9ff, MEM_BYTES // 4096 - 1]
    if fmt == 'elf':
        if not shutil.which('readelf'):
            missing_reader('readelf (binutils) is not installed')
        proc = subprocess.run(['readelf', '-h', str(path)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0 and 'Type:' in proc.stdout and 'CORE' in proc.stdout, \
            proc.stdout + proc.stderr
        core = ElfCore(path)
        assert sum(p['memsz'] for p in core.loads) == MEM_BYTES
        for pfn in pfns:
            assert core.phys(pfn * 4096, 4096) == mem.page(pfn), pfn
        return
    if is_flattened(path):
        assert not fmt.startswith('kdump-raw-')
        path = reassemble(path, tmp_path / (path.name + '.raw'))
    h = KdumpHeader(path)
    assert h.signature == b'KDUMP   ' and h.status == FORMAT_FLAG[codec_of(fmt)], hex(h.status)
    k = kdumpfile_open(path)
    for pfn in pfns:
        assert kdumpfile_page(k, pfn) == mem.page(pfn), pfn


@pytest.fixture
def loaded_vm(tmp_path):
    if kvm_available():
        vm = start_vm(mem=MEM, smp=1, hmp=True)
    else:
        ram = make_mem_file(tmp_path / 'ram', MEM_BYTES, zero_below=0x400000)
        vm = start_vm('-mem-path', str(ram), mem=MEM, smp=1, hmp=True, accel='none')
    yield vm
    vm.close()


def test_detached_dumps_under_polling(loaded_vm, tmp_path):
    vm, q = loaded_vm, loaded_vm.qmp
    pid = vm.proc.pid
    formats = [f for f in FORMATS
               if f in q.cmd('query-dump-guest-memory-capability')['formats']]
    # the guest's memory, to compare the spot-checked dumps with (stable once ready)
    pmemsave(q, tmp_path / 'mem', MEM_BYTES)
    mem = MemImage(tmp_path / 'mem')
    pollers = [Poller(str(vm.qmp_path)) for _ in range(POLLERS)]
    hmp = HmpLooper(vm.hmp_path)
    for t in pollers + [hmp]:
        t.start()
    kept = []
    results = []
    baseline = None
    t0 = time.time()
    try:
        for i in range(N):
            fmt = formats[i % len(formats)]
            path = tmp_path / (f'keep{i}' if i % SPOT_EVERY == 0 else f'out{i % 3}')
            assert q.cmd('dump-guest-memory', paging=False, protocol=f'file:{path}',
                         format=fmt, detach=True) == {}
            ev = q.wait_event('DUMP_COMPLETED', timeout=120)
            results.append(ev['data'])
            if i % SPOT_EVERY == 0:
                kept.append((path, fmt))
            if i % 20 == 19:
                q.events.clear()          # STOP/RESUME pairs
            if i == 9:
                # after the first dumps warmed up threads and allocator arenas
                baseline = (fd_count(pid), vm_rss_kib(pid))
        elapsed = time.time() - t0
    finally:
        for t in pollers + [hmp]:
            t.stop.set()
        for t in pollers + [hmp]:
            t.join(30)
    end = (fd_count(pid), vm_rss_kib(pid))

    # every dump completed, whole
    want = {'result': {'total': MEM_BYTES, 'status': 'completed', 'completed': MEM_BYTES}}
    bad = [(i, r) for i, r in enumerate(results) if r != want]
    assert len(results) == N and not bad, bad[:5]
    drain(q, 0.3)
    assert not [e for e in q.events if e['event'] == 'DUMP_COMPLETED']
    assert q.cmd('query-dump') == want['result']
    assert q.cmd('query-status')['status'] == 'running'

    # the pollers were served all along and saw every event
    for p in pollers:
        assert not p.errors, p.errors[:3]
        deadline = time.time() + 30
        while len(p.completed_events()) < N and time.time() < deadline:
            drain(p.q, 0.2)
        evs = p.completed_events()
        assert len(evs) == N and all(e['data'] == want for e in evs), len(evs)
        assert p.statuses <= {'none', 'active', 'completed'}, p.statuses
        # about POLL_HZ per second: at least a third of it on a busy machine
        assert p.polls >= elapsed * POLL_HZ / 3, (p.polls, elapsed)
        p.q.close()
    assert not hmp.bad, hmp.bad[:3]
    assert hmp.runs >= N, hmp.runs
    hmp.h.close()

    # readable: every SPOT_EVERY-th dump through readelf/libkdumpfile/makedumpfile -R
    for path, fmt in kept:
        check_readable(path, fmt, mem, tmp_path)

    # flat: fds (the pollers' sockets are still counted in both) and RSS
    assert end[0] == baseline[0], f'fd count {baseline[0]} after 10 dumps, {end[0]} after {N}'
    assert_rss_flat(baseline[1], end[1], f'after 10 and after {N} dumps', RSS_MARGIN_KIB)
