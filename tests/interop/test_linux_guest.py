"""minivm with real Linux memory: restore QEMU's vmcore of a panicked guest, dump it in
every format, and check that crash, drgn, gdb, makedumpfile and libkdumpfile read
minivm's output as they read QEMU's."""
import hashlib
import os
import random
import re
import subprocess

import pytest

from qmp import Minivm, kvm_available
import readers
from readers import dump

KDUMP_FORMATS = ['kdump-zlib', 'kdump-lzo', 'kdump-snappy', 'kdump-zstd',
                 'kdump-raw-zlib', 'kdump-raw-lzo', 'kdump-raw-snappy', 'kdump-raw-zstd']


@pytest.fixture(scope='module')
def restored(small_linux, tmp_path_factory):
    """minivm restored from QEMU's ELF of the panicked guest, and QEMU's crash report."""
    work = tmp_path_factory.mktemp('linux')
    with Minivm('-load-vmcore', small_linux['elf'], accel='none', workdir=work) as vm:
        vm.baseline = readers.crash_report(small_linux['vmlinux'], small_linux['elf'])
        vm.work = work
        yield vm


def test_restore_state(restored, small_linux):
    status = restored.qmp.cmd('query-status')
    assert status['status'] == 'paused' and not status['running']
    assert len(restored.qmp.cmd('query-cpus-fast')) == 2
    regs = restored.qmp.hmp('info registers')
    rips = re.findall(r'RIP=([0-9a-f]{16})', regs)
    assert len(rips) == 2 and any(r.startswith('ffffffff') for r in rips), regs


def test_restore_leaves_zero_pages_absent(restored, small_linux):
    """Zero pages of the vmcore are not written into guest RAM: minivm's resident memory
    is about the guest's non-zero pages, not its RAM size (and dumps then find the zero
    pages through /proc/self/pagemap)."""
    with open(f'/proc/{restored.proc.pid}/status') as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith('VmRSS:')) << 10
    disk = os.stat(small_linux['elf']).st_size
    assert disk > 500 << 20
    assert rss < 200 << 20, (rss, disk)


def test_same_bytes_from_fresh_processes(small_linux, tmp_path):
    """The same guest dumped by separate minivm processes with 1, 2 and 3 compression
    threads gives identical files. (isa-l's igzip failed this: about every other process
    encoded one page of the fixture differently; the functional test's 32 MiB guest did
    not show it.)"""
    digests = {}
    for run, threads in enumerate((1, 2, 3, 2)):
        work = tmp_path / str(run)
        work.mkdir()
        with Minivm('-load-vmcore', small_linux['elf'], accel='none', workdir=work,
                    env={'MINIVM_DUMP_THREADS': threads}) as vm:
            vm.work = work
            for fmt in ('kdump-raw-zlib', 'kdump-raw-zstd'):
                out = dump(vm, fmt)
                digests.setdefault(fmt, set()).add(hashlib.sha256(out.read_bytes()).hexdigest())
                out.unlink()
    assert all(len(d) == 1 for d in digests.values()), digests


def test_baseline_is_a_panic(restored):
    assert 'sysrq triggered crash' in restored.baseline
    assert 'sysrq_handle_crash' in restored.baseline


@pytest.mark.parametrize('fmt', ['elf'] + KDUMP_FORMATS)
def test_crash_same_report(restored, small_linux, fmt):
    out = dump(restored, fmt)
    report = readers.crash_report(small_linux['vmlinux'], out)
    assert report == restored.baseline


@pytest.fixture(scope='module')
def running(small_linux, tmp_path_factory):
    """The restored guest running on: under KVM its CPUs go on where the panic left them
    (CPU 0 in panic()'s delay loop, writing memory now and then); without KVM it stays
    paused (-accel none runs nothing) and a live dump still goes through write protection."""
    work = tmp_path_factory.mktemp('running')
    kvm = kvm_available()
    with Minivm('-load-vmcore', small_linux['elf'], accel='kvm' if kvm else 'none',
                workdir=work) as vm:
        vm.work = work
        if kvm:
            vm.qmp.cmd('cont')
        yield vm


@pytest.mark.parametrize('fmt', ['elf', 'kdump-raw-zlib', 'kdump-lzo'])
def test_crash_reads_a_live_dump_as_a_stopped_one(running, restored, small_linux, fmt):
    """crash prints the same sys, bt and log for a live dump of the running guest as for
    stopped dumps of it (QEMU's, and minivm's of the paused restored guest)."""
    out = dump(running, fmt, live=True)
    live = running.qmp.cmd('query-dump')['live']
    assert live['pool-pages'] == 16384 and live['pool-waits'] == 0, live
    report = readers.crash_report(small_linux['vmlinux'], out)
    assert report == restored.baseline
    assert report == readers.crash_report(small_linux['vmlinux'], dump(restored, fmt))


@pytest.mark.parametrize('which', ['kdump', 'kdump_raw'])
def test_restore_from_qemus_kdump(restored, small_linux, tmp_path, which):
    """-load-vmcore of QEMU's own kdump-zlib file (flattened, and reassembled by
    makedumpfile -R): minivm's ELF of it reads in crash as QEMU's ELF of the guest does,
    and holds the same pages as QEMU's ELF (libkdumpfile on both)."""
    src = small_linux[which]
    assert src and os.path.exists(src)
    with Minivm('-load-vmcore', src, accel='none', workdir=tmp_path) as vm:
        vm.work = tmp_path
        out = dump(vm, 'elf')
    assert readers.crash_report(small_linux['vmlinux'], out) == restored.baseline
    rng = random.Random(7)
    addrs = [0x1000000] + [rng.randrange(0x100, 0x20000) << 12 for _ in range(64)]  # 1M-512M
    assert readers.kdump_pages(out, addrs) == readers.kdump_pages(small_linux['elf'], addrs)


def makedumpfile_codecs():
    """The page codecs this makedumpfile was built with (zlib always; Debian 12's has lzo,
    not snappy or zstd)."""
    out = subprocess.run(['makedumpfile', '-v'], capture_output=True, text=True).stdout
    return {'zlib'} | {m.group(1) for m in re.finditer(r'^(\w+)\s+enabled$', out, re.M)}


def test_makedumpfile_dmesg(restored, small_linux, tmp_path):
    """makedumpfile reads minivm's ELF and kdump files as dumps (--dump-dmesg walks the
    printk ring through VMCOREINFO): the log equals crash's `log` of QEMU's ELF. (It
    cannot read QEMU 7.2's own files: "Can't get the number of PT_LOAD" for the ELF, no
    utsname for the kdump.)"""
    log = readers.crash_report(small_linux['vmlinux'], small_linux['elf'], 'log\nquit\n')
    want = [line for line in log.splitlines() if line.startswith('[')]
    assert any('Kernel panic' in line for line in want), log
    codecs = makedumpfile_codecs()
    formats = ['elf'] + [f for f in KDUMP_FORMATS if f.startswith('kdump-raw-')
                         and f.rsplit('-', 1)[1] in codecs]
    assert {'elf', 'kdump-raw-zlib', 'kdump-raw-lzo'} <= set(formats), codecs
    for fmt in formats:
        out = dump(restored, fmt)
        text = tmp_path / f'{fmt}.dmesg'
        r = subprocess.run(['makedumpfile', '--dump-dmesg', str(out), str(text)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (fmt, r.stdout + r.stderr)
        got = [line for line in text.read_text().splitlines() if line.startswith('[')]
        assert got == want, fmt
        out.unlink()


def test_drgn_reads_minivm_kdump_but_not_qemus(restored, small_linux):
    out = dump(restored, 'kdump-raw-zlib')
    rc, text = readers.drgn_crashed_stack(out, small_linux['vmlinux'])
    assert rc == 0, text
    assert 'sysrq_handle_crash' in text and 'pid 1' in text, text
    # QEMU 7.2's kdump output (reassembled) of the same guest lacks the utsname
    # drgn needs, so drgn cannot open it: keep that comparison in the test.
    assert small_linux['kdump_raw'] and os.path.exists(small_linux['kdump_raw'])
    rc_q, text_q = readers.drgn_crashed_stack(small_linux['kdump_raw'], small_linux['vmlinux'])
    assert rc_q != 0, text_q
    assert 'KDUMP_ATTR_ARCH_NAME' in text_q, text_q


def test_drgn_elf_matches_qemu(restored, small_linux):
    out = dump(restored, 'elf')
    rc, mine = readers.drgn_crashed_stack(out, small_linux['vmlinux'], True)
    rc_q, theirs = readers.drgn_crashed_stack(small_linux['elf'], small_linux['vmlinux'], True)
    assert rc == 0 and rc_q == 0, mine + theirs
    assert mine == theirs


def test_libkdumpfile_identical_pages(restored, small_linux):
    out = dump(restored, 'elf')
    raw = dump(restored, 'kdump-raw-lzo')
    rng = random.Random(7)
    addrs = [0, 0x1000] + [rng.randrange(0xc0000, 0x20000000) & ~0xfff for _ in range(500)]
    want = readers.kdump_pages(small_linux['elf'], addrs)
    assert readers.kdump_pages(out, addrs) == want
    assert readers.kdump_pages(raw, addrs) == want


def test_makedumpfile_reassembles_flattened(restored):
    for fmt in ('kdump-zlib', 'kdump-zstd'):
        flat = dump(restored, fmt)
        raw = dump(restored, fmt.replace('kdump-', 'kdump-raw-'))
        rebuilt = readers.reassemble(flat, restored.work / 'rebuilt')
        assert rebuilt.read_bytes() == raw.read_bytes(), fmt
        rebuilt.unlink()


@pytest.mark.parametrize('fmt', ['elf', 'kdump-raw-zstd', 'kdump-snappy'])
def test_round_trip(restored, small_linux, fmt):
    """Restoring minivm's own output and dumping again gives identical bytes."""
    first = dump(restored, fmt, name=f'first.{fmt}')
    with Minivm('-load-vmcore', str(first), accel='none', workdir=restored.work / fmt) as vm2:
        vm2.work = restored.work / fmt
        second = dump(vm2, fmt, name=f'second.{fmt}')
        assert second.read_bytes() == first.read_bytes()


def test_big_fixture_above_4g(big_linux, tmp_path):
    with Minivm('-load-vmcore', big_linux['elf'], accel='none', workdir=tmp_path) as vm:
        blocks = vm.qmp.hmp('info ramblock')
        spans = [(int(f[3], 16), int(f[3], 16) + int(f[4], 16))
                 for f in (line.split() for line in blocks.splitlines()[1:]) if len(f) == 6]
        # RAM from 4 GiB up (QEMU's BIOS ROM ends at 4 GiB, so the blocks join)
        assert any(lo <= 0x100000000 < hi and hi >= 0x140000000 for lo, hi in spans), blocks
        vm.work = tmp_path
        out = dump(vm, 'kdump-raw-zstd')
        import kdumpfile
        k = kdumpfile.kdumpfile(str(out))
        q = kdumpfile.kdumpfile(big_linux['elf'])
        addrs = [0x100000000 + i * 0x1000000 for i in range(64)]
        for a in addrs:
            assert k.read(kdumpfile.KDUMP_MACHPHYSADDR, a, 4096) == \
                q.read(kdumpfile.KDUMP_MACHPHYSADDR, a, 4096)
        report = readers.crash_report(big_linux['vmlinux'], out)
        assert 'sysrq triggered crash' in report
        assert report == readers.crash_report(big_linux['vmlinux'], big_linux['elf'])
        # the guest's pattern lies above 4 GiB in this fixture: find it there, then read
        # the same page back through the dump
        hi = tmp_path / 'above-4g.bin'
        vm.qmp.hmp(f'pmemsave 0x100000000 0x40000000 {hi}')
        data = hi.read_bytes()
        full = big_linux['pattern'] * (4096 // len(big_linux['pattern']))
        pages = [off for off in range(0, len(data), 4096) if data[off:off + 4096] == full]
        assert pages, 'the fixture pattern is not in RAM above 4 GiB'
        for off in pages[:64]:
            assert k.read(kdumpfile.KDUMP_MACHPHYSADDR, 0x100000000 + off, 4096) == full


def test_paging_dump_gdb(restored, small_linux):
    out = dump(restored, 'elf', name='paging.elf', paging=True)
    stdout, text = readers.gdb_print(small_linux['vmlinux'], out, readers.kaslr_offset(out),
                                     'init_uts_ns.name.release', 'jiffies')
    release = re.escape(small_linux['kernel_version'])
    assert re.search(rf'^\$1 = "{release}"', stdout, re.M), text
    assert 'Cannot access memory' not in text, text
    # jiffies through the page tables (gdb) equals jiffies in QEMU's ELF (crash)
    m = re.search(r'^\$2 = (\d+)$', stdout, re.M)
    assert m, text
    baseline = readers.crash_report(small_linux['vmlinux'], small_linux['elf'],
                                    'p jiffies\nquit\n')
    b = re.search(r'jiffies = \$1 = (\d+)', baseline)
    assert b, baseline
    assert m.group(1) == b.group(1), (text, baseline)
    report = readers.crash_report(small_linux['vmlinux'], out)
    assert 'sysrq triggered crash' in report
