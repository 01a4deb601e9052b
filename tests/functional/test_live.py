"""Live dumps (minivm's `live`): the guest runs on while the dump writes one instant of it.

Under KVM the live-counter test guest rewrites all of its memory without pause and its
registers locate every vCPU (livecheck.py): a live dump must show, for every vCPU, exactly
the cut its NT_PRSTATUS registers describe. Without KVM, minivm itself writes guest RAM
(x-pmemwrite) during the dump."""
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import dumpcheck as dc
import livecheck
from qmp import NEED_KVM, QMPError

MEM = 128 << 20


def ts(ev):
    return ev['timestamp']['seconds'] + ev['timestamp']['microseconds'] / 1e6


def counter_vm(make_vm, smp=4, mem=MEM):
    vm = make_vm('-kernel', str(livecheck.GUEST), mem=f'{mem >> 20}M', smp=smp)
    vm.wait_serial('live-counter ready')
    time.sleep(0.2)                      # some passes over every region
    vm.qmp.events.clear()
    return vm


def pause_of(q):
    """STOP and RESUME of a dump: (pause in seconds, the STOP event)."""
    stop, resume = q.wait_event('STOP', timeout=30), q.wait_event('RESUME', timeout=30)
    return ts(resume) - ts(stop)


def dump_to(q, tmp_path, name, fmt, sink, **args):
    """A dump into a file or through an fd: pipe; returns (path, DUMP_COMPLETED)."""
    path = tmp_path / name
    if sink == 'pipe':
        reader = dc.PipeReader()
        reader.hand_to(q, name)
        q.cmd('dump-guest-memory', paging=False, protocol=f'fd:{name}', format=fmt, detach=True,
              **args)
        ev = q.wait_event('DUMP_COMPLETED', timeout=120)
        path.write_bytes(reader.data())
    else:
        q.cmd('dump-guest-memory', paging=False, protocol=f'file:{path}', format=fmt, **args)
        ev = q.wait_event('DUMP_COMPLETED', timeout=120)
    return path, ev


def stopped_image(q, tmp_path, name='stopped.elf'):
    """The guest checked on an ordinary dump of the paused VM, then resumed."""
    q.cmd('stop')
    path, ev = dump_to(q, tmp_path, name, 'elf', 'file')
    assert ev['data']['result']['status'] == 'completed'
    q.cmd('cont')
    return livecheck.Image(path, tmp_path)


def live_image(tmp_path, data):
    """The image of a dump's bytes read from a pipe."""
    (tmp_path / 'live.elf').write_bytes(data)
    return livecheck.Image(tmp_path / 'live.elf', tmp_path)


def assert_one_instant(image):
    assert image.regs, 'no NT_PRSTATUS notes'
    found = image.problems()
    assert not found, found[:8]


# ---------------------------------------------------------------- one instant, under KVM

@NEED_KVM
@pytest.mark.parametrize('fmt, sink, smp', [
    ('elf', 'file', 1), ('elf', 'file', 4), ('elf', 'pipe', 4),
    ('kdump-raw-lzo', 'file', 4), ('kdump-snappy', 'file', 1), ('kdump-zlib', 'pipe', 4),
])
def test_live_dump_is_one_instant(make_vm, tmp_path, fmt, sink, smp):
    vm = counter_vm(make_vm, smp=smp)
    q = vm.qmp
    path, ev = dump_to(q, tmp_path, 'live', fmt, sink, live=True)
    assert ev['data']['result']['status'] == 'completed', ev
    pause = pause_of(q)
    live = q.cmd('query-dump')['live']
    assert live['saved-pages'] > 0, live     # the guest wrote during the dump...
    image = livecheck.Image(path, tmp_path)
    assert_one_instant(image)                # ... and the dump is still one instant
    assert len(image.regs) == smp
    assert q.cmd('query-status')['status'] == 'running'
    after = stopped_image(q, tmp_path)       # the guest ran on, its memory intact
    assert_one_instant(after)
    assert all(b['rax'] > a['rax'] for a, b in zip(image.regs, after.regs))
    assert pause < 0.5, pause


@NEED_KVM
def test_live_paging_dump_of_a_range(make_vm, tmp_path):
    """paging=true and begin/length, live: the PT_LOADs of the guest's identity map clipped
    to the first 96 MiB, holding the instant of the three vCPUs that work there."""
    vm = counter_vm(make_vm, smp=4)
    q = vm.qmp
    path = tmp_path / 'live.elf'
    q.cmd('dump-guest-memory', paging=True, protocol=f'file:{path}', live=True, detach=True,
          begin=0, length=96 << 20)
    assert q.wait_event('DUMP_COMPLETED')['data']['result']['status'] == 'completed'
    image = livecheck.Image(path, tmp_path)
    core = dc.ElfCore(path)
    assert [(p['vaddr'], p['paddr'], p['filesz']) for p in core.loads] == [(0, 0, 96 << 20)]
    inside = [r for r in image.regs if r['r8'] + 8 * r['r9'] <= 96 << 20]
    assert len(inside) == 3
    found = livecheck.problems(image.read, inside)
    assert not found, found[:8]


@NEED_KVM
@pytest.mark.parametrize('fmt', ['elf', 'kdump-raw-zstd'])
def test_small_pool_makes_the_guest_wait(make_vm, tmp_path, fmt):
    """With room for 16 saved pages, vCPUs that write ahead of the dump wait for it: the
    image is still one instant and the pool never holds more than its size."""
    vm = counter_vm(make_vm, smp=4)
    q = vm.qmp
    path, ev = dump_to(q, tmp_path, 'live', fmt, 'file', live=True, **{'live-pool': 16 * 4096})
    assert ev['data']['result']['status'] == 'completed', ev
    live = q.cmd('query-dump')['live']
    assert live['pool-pages'] == 16 and 0 < live['pool-peak'] <= 16, live
    assert live['pool-waits'] > 0, live
    assert_one_instant(livecheck.Image(path, tmp_path))
    assert_one_instant(stopped_image(q, tmp_path))


@NEED_KVM
def test_memory_read_while_running_fails_the_check(make_vm, tmp_path):
    """The check can fail: guest RAM copied while the guest runs, without protection, is no
    instant of it."""
    vm = counter_vm(make_vm, smp=4)
    q = vm.qmp
    raw = tmp_path / 'running.mem'
    q.hmp(f'pmemsave 0 {MEM} {raw}')
    regs = stopped_image(q, tmp_path).regs
    data = raw.read_bytes()
    found = livecheck.problems(lambda gpa, size: data[gpa:gpa + size], regs)
    assert found, 'a copy of running memory passed the one-instant check'


@NEED_KVM
def test_pages_first_written_during_the_dump_stay_zero(make_vm, tmp_path):
    """The tail is never written before the dump; the guest starts writing it while the
    dump waits on its reader. The dump must hold the tail's zeros and the trigger's 0."""
    vm = counter_vm(make_vm, smp=2)
    q = vm.qmp
    reader = dc.PipeReader(gated=True)
    reader.hand_to(q, 'pipe')
    q.cmd('dump-guest-memory', paging=False, protocol='fd:pipe', format='elf', detach=True,
          live=True, **{'live-pool': 256 << 20})
    trigger = livecheck.symbols()['live_trigger']
    q.cmd('x-pmemwrite', val=trigger, data=struct.pack('<Q', 1).hex())
    tail = MEM - livecheck.TAIL
    deadline = time.time() + 30
    while f'{livecheck.TAIL_MARK:x}' not in q.hmp(f'xp /1xg {tail + livecheck.TAIL - 4096}'):
        assert time.time() < deadline, 'the guest never wrote its tail'
        time.sleep(0.01)
    ev, data = reader.finish(q)
    assert ev['data']['result']['status'] == 'completed', ev
    image = live_image(tmp_path, data)
    assert_one_instant(image)
    assert image.trigger() == 0
    assert set(image.tail(MEM)) == {0}
    assert set(stopped_image(q, tmp_path).tail(MEM)) == {livecheck.TAIL_MARK}


# ---------------------------------------------------------------- faults during a live dump

def gated_live_dump(q, fmt='elf', **args):
    reader = dc.PipeReader(gated=True)
    reader.hand_to(q, 'pipe')
    q.cmd('dump-guest-memory', paging=False, protocol='fd:pipe', format=fmt, detach=True,
          live=True, **args)
    return reader


def assert_guest_runs_on(q, tmp_path, before):
    """The guest is running, writes freely (no vCPU stays blocked) and its memory is right."""
    assert q.cmd('query-status')['status'] == 'running'
    time.sleep(0.1)
    after = stopped_image(q, tmp_path, 'after.elf')
    assert_one_instant(after)
    assert all(b['rax'] > a['rax'] + 1 for a, b in zip(before.regs, after.regs))


@NEED_KVM
@pytest.mark.parametrize('fault', ['cancel', 'epipe'])
def test_live_dump_fault_leaves_the_guest_running(make_vm, tmp_path, fault):
    vm = counter_vm(make_vm, smp=4)
    q = vm.qmp
    before = stopped_image(q, tmp_path, 'before.elf')
    q.events.clear()
    reader = gated_live_dump(q, **{'live-pool': 64 * 4096})
    time.sleep(0.3)                      # the pool fills and vCPUs wait for the dump
    assert q.cmd('query-dump')['live']['pool-waits'] > 0
    assert q.cmd('query-dump-guest-memory-capability')['live'] is True
    if fault == 'cancel':
        q.cmd('dump-cancel')
        expect = 'dump: cancelled'
    else:
        reader.abandon()                 # the reader goes away
        expect = 'Broken pipe'
    ev = q.wait_event('DUMP_COMPLETED', timeout=30)
    assert ev['data']['result']['status'] == 'failed' and expect in ev['data']['error'], ev
    reader.release()
    assert_guest_runs_on(q, tmp_path, before)


@NEED_KVM
def test_live_dump_out_of_space(make_vm, tmp_path, small_tmpfs):
    vm = counter_vm(make_vm, smp=4)
    q = vm.qmp
    before = stopped_image(q, tmp_path, 'before.elf')
    q.events.clear()
    with pytest.raises(QMPError) as e:
        q.cmd('dump-guest-memory', paging=False, protocol=f'file:{small_tmpfs / "vmcore"}',
              format='elf', live=True)     # 128 MiB of non-zero pages
    assert 'No space left on device' in e.value.desc
    ev = q.wait_event('DUMP_COMPLETED', timeout=30)
    assert ev['data']['result']['status'] == 'failed'
    assert_guest_runs_on(q, tmp_path, before)


@NEED_KVM
def test_quit_during_a_live_dump(make_vm, tmp_path):
    vm = counter_vm(make_vm, smp=4)
    q = vm.qmp
    reader = gated_live_dump(q, **{'live-pool': 64 * 4096})
    time.sleep(0.3)
    q.cmd('quit')
    assert vm.proc.wait(timeout=30) == 0
    reader.release()


@NEED_KVM
def test_guest_shutdown_during_a_live_dump(make_vm, tmp_path):
    """The guest shuts down while the dump waits on its reader: the dump completes with the
    instant it was started on."""
    vm = counter_vm(make_vm, smp=2)
    q = vm.qmp
    reader = gated_live_dump(q, **{'live-pool': 256 << 20})
    q.cmd('x-pmemwrite', val=livecheck.symbols()['live_trigger'], data=struct.pack('<Q', 2).hex())
    q.wait_event('SHUTDOWN', timeout=30)
    ev, data = reader.finish(q)
    assert ev['data']['result']['status'] == 'completed', ev
    image = live_image(tmp_path, data)
    assert_one_instant(image)
    assert image.trigger() == 0
    assert q.cmd('query-status')['status'] == 'shutdown'


# ---------------------------------------------------------------- minivm's own writes

@pytest.mark.parametrize('ram', ['anonymous', 'tmpfs'])
def test_writes_by_minivm_during_a_live_dump(make_vm, tmp_path, ram):
    """Without KVM: minivm writes guest RAM (x-pmemwrite) while a live dump waits on its
    reader; the dump holds the old bytes, guest RAM the new ones. With room for 2 saved
    pages, the third write (to a page never touched before) waits in the kernel until the
    dump goes on and frees a copy. Anonymous RAM, and -mem-path on tmpfs (shared memory)."""
    args = []
    if ram == 'tmpfs':
        if not os.path.isdir('/dev/shm'):
            pytest.skip('no /dev/shm here')
        args = ['-mem-path', '/dev/shm']            # an unlinked file of its own there
    vm = make_vm(*args, mem='64M', accel='none')
    q = vm.qmp
    pages = {0x1000000: b'A', 0x2000000: b'B', 0x3f00000: b'D'}
    for addr, c in pages.items():
        q.cmd('x-pmemwrite', val=addr, data=(c * 4096).hex())
    untouched = 0x3e00000
    reader = gated_live_dump(q, **{'live-pool': 2 * 4096})
    for addr in (0x1000000, 0x2000000):
        q.cmd('x-pmemwrite', val=addr, data=(pages[addr].lower() * 4096).hex())
    q.send_raw(b'{"execute": "x-pmemwrite", "arguments": {"val": %d, "data": "%s"}}\n'
               % (untouched, (b'n' * 64).hex().encode()))
    time.sleep(0.3)
    assert not q.buf and not select.select([q.sock], [], [], 0)[0], \
        'the write did not wait for room in the pool'
    reader.release()
    assert q.recv_reply() == {'return': {}}
    q.cmd('x-pmemwrite', val=0x3f00000, data=(b'd' * 4096).hex())
    ev = q.wait_event('DUMP_COMPLETED', timeout=60)
    assert ev['data']['result']['status'] == 'completed', ev
    live = q.cmd('query-dump')['live']
    assert live['saved-pages'] >= 3 and live['pool-peak'] == 2 and live['pool-waits'] >= 1, live
    (tmp_path / 'live.elf').write_bytes(reader.data())
    core = dc.ElfCore(tmp_path / 'live.elf')
    for addr, c in pages.items():
        assert core.phys(addr, 4096) == c * 4096, hex(addr)
    assert core.phys(untouched, 4096) == bytes(4096)
    now = tmp_path / 'now.mem'
    q.hmp(f'pmemsave 0 {64 << 20} {now}')
    mem = now.read_bytes()
    for addr, c in pages.items():
        assert mem[addr:addr + 4096] == c.lower() * 4096, hex(addr)
    assert mem[untouched:untouched + 64] == b'n' * 64


@pytest.fixture
def hugetlbfs(tmp_path):
    """A hugetlbfs mount with 32 huge pages set aside for it (needs root)."""
    if os.geteuid() != 0:
        pytest.skip('hugetlbfs needs root')
    knob = Path('/proc/sys/vm/nr_hugepages')
    before = knob.read_text().strip()
    mnt = tmp_path / 'huge'
    mnt.mkdir()
    knob.write_text(str(int(before) + 32))
    proc = subprocess.run(['mount', '-t', 'hugetlbfs', 'none', str(mnt)], capture_output=True,
                          text=True)
    try:
        if proc.returncode != 0 or int(knob.read_text()) < int(before) + 16:
            pytest.skip(f'no hugetlbfs here: {proc.stderr.strip()}')
        yield mnt
    finally:
        for _ in range(50):        # busy while a minivm still maps a file there
            if subprocess.run(['umount', str(mnt)], capture_output=True).returncode != 32 or \
                    not os.path.ismount(mnt):
                break
            time.sleep(0.1)
        knob.write_text(before)


def test_live_dump_on_hugetlbfs(hugetlbfs, make_vm, tmp_path):
    """-mem-path on hugetlbfs: a write saves and unprotects its whole 2 MiB page; a pool that
    cannot hold one is refused before anything stops."""
    vm = make_vm('-mem-path', str(hugetlbfs), mem='32M', accel='none')
    q = vm.qmp
    q.cmd('x-pmemwrite', val=0x800000, data=(b'A' * 4096).hex())
    with pytest.raises(QMPError) as e:
        q.cmd('dump-guest-memory', paging=False, protocol='file:/dev/null', live=True,
              **{'live-pool': 1 << 20})
    assert "'live-pool' must hold a whole page of guest RAM 'pc.ram' (2048 KiB" in e.value.desc
    reader = gated_live_dump(q)
    q.cmd('x-pmemwrite', val=0x800000, data=(b'a' * 4096).hex())
    q.cmd('x-pmemwrite', val=0x900000, data=(b'a' * 4096).hex())    # the same huge page
    ev, data = reader.finish(q)
    assert ev['data']['result']['status'] == 'completed', ev
    assert q.cmd('query-dump')['live']['saved-pages'] == 512
    (tmp_path / 'live.elf').write_bytes(data)
    core = dc.ElfCore(tmp_path / 'live.elf')
    assert core.phys(0x800000, 4096) == b'A' * 4096
    assert core.phys(0x900000, 4096) == bytes(4096)


# ---------------------------------------------------------------- surface and refusals

def test_capability_and_arguments(make_vm):
    vm = make_vm(mem='64M', accel='none')
    q = vm.qmp
    cap = q.cmd('query-dump-guest-memory-capability')
    assert cap['live'] is True, cap          # make check runs as root on Linux >= 5.7
    assert 'live-error' not in cap
    for args, text in [({'live-pool': 1 << 20}, "Parameter 'live-pool' needs 'live'"),
                       ({'live': True, 'live-pool': 100}, "at least one page")]:
        with pytest.raises(QMPError) as e:
            q.cmd('dump-guest-memory', paging=False, protocol='file:/dev/null', **args)
        assert text in e.value.desc
    assert 'live' not in q.cmd('query-dump')


def test_live_with_a_dump_level(make_vm, tmp_path):
    """Level 1 (zero pages, no struct pages read) works live; a level that reads struct
    pages is refused with live, before anything stops."""
    vm = make_vm(mem='64M', accel='none')
    q = vm.qmp
    q.events.clear()
    with pytest.raises(QMPError) as e:
        q.cmd('dump-guest-memory', paging=False, protocol=f'file:{tmp_path / "x"}',
              format='kdump-raw-lzo', live=True, **{'dump-level': 31})
    assert e.value.desc == 'dump-level above 1 cannot be combined with live yet'
    with pytest.raises(QMPError) as e:
        q.cmd('dump-guest-memory', paging=False, protocol=f'file:{tmp_path / "x"}',
              format='kdump-raw-lzo', live=True, **{'dump-level': 99})
    assert 'expects a value from 0 to 31' in e.value.desc
    dc.drain(q, 0.2)
    assert dc.event_names(q) == []
    q.cmd('dump-guest-memory', paging=False, protocol=f'file:{tmp_path / "l1"}',
          format='kdump-raw-lzo', live=True, **{'dump-level': 1})
    assert dc.KdumpHeader(tmp_path / 'l1').dump_level == 1
    assert 'live' in q.cmd('query-dump')


def test_live_refused_before_anything_stops(make_vm, tmp_path):
    """RAM in a file on a disk file system cannot be write-protected: live fails naming the
    RAM and the reason, before the guest stops; an ordinary dump still works."""
    ram = tmp_path / 'ram'
    ram.write_bytes(bytes(32 << 20))
    fs = subprocess.run(['stat', '-f', '-c', '%T', str(tmp_path)], capture_output=True,
                        text=True).stdout.strip()
    if fs in ('tmpfs', 'hugetlbfs'):
        pytest.skip(f'{tmp_path} is on {fs}, which supports write protection')
    vm = make_vm('-mem-path', str(ram), mem='32M', accel='none')
    q = vm.qmp
    cap = q.cmd('query-dump-guest-memory-capability')
    assert cap['live'] is False and "guest RAM 'pc.ram'" in cap['live-error'], cap
    q.events.clear()
    with pytest.raises(QMPError) as e:
        q.cmd('dump-guest-memory', paging=False, protocol=f'file:{tmp_path / "x"}', live=True)
    assert e.value.desc == cap['live-error']
    dc.drain(q, 0.2)
    assert dc.event_names(q) == []
    assert q.cmd('query-status')['status'] == 'running'
    dc.dump(q, tmp_path / 'ok', 'elf')
    assert q.wait_event('DUMP_COMPLETED')['data']['result']['status'] == 'completed'


def test_live_refused_without_permission(make_vm, tmp_path):
    """An unprivileged minivm (no CAP_SYS_PTRACE, /dev/userfaultfd root's only,
    vm.unprivileged_userfaultfd 0) cannot take KVM's write faults: live is refused, naming
    what would allow it, before anything stops."""
    if os.geteuid() != 0:
        pytest.skip('running minivm as another user needs root')
    if open('/proc/sys/vm/unprivileged_userfaultfd').read().strip() != '0':
        pytest.skip('vm.unprivileged_userfaultfd is 1 here: unprivileged users may')
    work = Path(tempfile.mkdtemp(prefix='minivm-nobody-'))   # pytest's tmp_path is root's only
    work.chmod(0o777)
    try:
        check_refused_as_nobody(make_vm, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_refused_as_nobody(make_vm, work):
    vm = make_vm(mem='32M', accel='none', workdir=work,
                 prefix=['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'])
    q = vm.qmp
    cap = q.cmd('query-dump-guest-memory-capability')
    assert cap['live'] is False and 'CAP_SYS_PTRACE' in cap['live-error'], cap
    q.events.clear()
    with pytest.raises(QMPError) as e:
        q.cmd('dump-guest-memory', paging=False, protocol='file:/dev/null', live=True)
    assert e.value.desc == cap['live-error']
    dc.drain(q, 0.2)
    assert dc.event_names(q) == []


@pytest.mark.parametrize('fmt', ['elf', 'kdump-raw-lzo'])
def test_hmp_live_dump_and_info_dump(make_vm, tmp_path, fmt):
    vm = make_vm(mem='64M', accel='none')
    q = vm.qmp
    assert '-L: live' in q.hmp('help dump-guest-memory')
    flag = '-l -R' if fmt == 'kdump-raw-lzo' else ''
    assert q.hmp(f'dump-guest-memory -L {flag} {tmp_path / "live"}') == ''
    assert q.wait_event('DUMP_COMPLETED')['data']['result']['status'] == 'completed'
    info = q.hmp('info dump')
    assert 'Status: completed' in info and 'Live: 0 pages saved' in info, info
    names = dc.event_names(q)
    assert names.count('STOP') == 1 and names.count('RESUME') == 1, names
